"""Port probes and the errors the dev stack raises when a process cannot start."""

import socket


class DevStackError(Exception):
    """A dev-stack process could not be started or did not become ready."""


class PortInUseError(DevStackError):
    """The TCP port a dev-stack process needs is already taken by another process."""

    def __init__(self, port: int, what: str) -> None:
        super().__init__(f"port {port} is already in use; it is needed for {what}")
        self.port = port
        self.what = what


def port_in_use(host: str, port: int) -> bool:
    """Return True when binding `host:port` fails because another socket listens there.

    Binding with SO_REUSEADDR, as the servers themselves do, ignores connections lingering in
    TIME_WAIT and reports exactly the conflicts the server would hit.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on `host` that is free right now (another process may take it later)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
