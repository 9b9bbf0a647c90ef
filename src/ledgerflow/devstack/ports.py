"""Port probes and the errors the dev stack raises when a process cannot start."""

import random
import socket
from pathlib import Path
from typing import Final


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
    """Return a TCP port on `host` that is free right now and that nothing else will pick.

    The port comes from below the kernel's ephemeral range, and never twice from one process.
    A port the kernel hands out (`bind(host, 0)`) can be handed out again before the caller
    binds it, to any process asking for a free port the same way (the Temporal dev server
    does, for its internal services) or as the local end of an outgoing connection: both
    made servers of the test suite fail to bind. Where the ephemeral range leaves no room
    below it, the kernel's choice is taken after all.
    """
    port = _draw_block(1, host)
    if port is not None:
        return port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        chosen: int = probe.getsockname()[1]
    return chosen


def free_port_block(count: int, host: str = "127.0.0.1") -> int:
    """Return the first of `count` consecutive TCP ports on `host` that are free right now,
    drawn like `free_port`, for a command that takes a base port and counts up from it
    (`ledgerflow dev`).

    Raises:
        DevStackError: no such block below the ephemeral range.
    """
    base = _draw_block(count, host)
    if base is None:
        low, high = _ASSIGNED_PORT_RANGE
        raise DevStackError(f"no {count} consecutive free ports on {host} in {low}-{high}")
    return base


def _draw_block(count: int, host: str) -> int | None:
    """A random block of `count` ports below the ephemeral range, free and never given out
    by this process; None when the range is too small or no block was found."""
    assert 0 < count <= ASSIGNED_PORTS_MIN
    low, high = _ASSIGNED_PORT_RANGE
    if high - low < ASSIGNED_PORTS_MIN:
        return None
    for _ in range(FREE_PORT_ATTEMPTS_MAX):
        base = _random.randint(low, high - count + 1)
        block = range(base, base + count)
        if any(p in _ports_given or port_in_use(host, p) for p in block):
            continue
        _ports_given.update(block)
        return base
    return None


def _assigned_port_range() -> tuple[int, int]:
    """The ports `free_port` draws from: from 10000 to just below the ephemeral range."""
    try:
        ephemeral_low = int(EPHEMERAL_PORT_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768  # Linux's default
    return ASSIGNED_PORT_LOW, ephemeral_low - 1


ASSIGNED_PORT_LOW: Final = 10_000
ASSIGNED_PORTS_MIN: Final = 1_000
FREE_PORT_ATTEMPTS_MAX: Final = 1_000
EPHEMERAL_PORT_RANGE_FILE: Final = Path("/proc/sys/net/ipv4/ip_local_port_range")
_ASSIGNED_PORT_RANGE: Final = _assigned_port_range()
_ports_given: set[int] = set()
_random = random.SystemRandom()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
