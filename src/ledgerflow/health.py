"""Kubernetes probes for `ledgerflow worker`: `/healthz` (alive) and `/readyz` (ready).

The worker serves no HTTP otherwise, and its metrics port belongs to the Temporal SDK's
Rust runtime, which answers as long as the process exists, whether or not the worker polls.
So the probes are a few lines of asyncio on their own port: they answer from the worker's
event loop, and a loop that is blocked answers nothing, which fails the probe as it should.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from ledger.errors import ErrorCode, LedgerError

_REQUEST_LINE_BYTES_MAX = 1024
_READ_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class WorkerProbes:
    """What the probes report, asked at each request."""

    ready: Callable[[], bool]
    """Polling its task queue and not shutting down: may take new work."""
    alive: Callable[[], bool]
    """Not stuck: False only when the process should be restarted."""


def _status(probes: WorkerProbes, path: str) -> tuple[int, bytes]:
    if path == "/healthz":
        return (200, b"alive\n") if probes.alive() else (503, b"worker stopped\n")
    if path == "/readyz":
        return (200, b"ready\n") if probes.ready() else (503, b"not polling\n")
    return 404, b"not found\n"


async def _answer(
    probes: WorkerProbes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        async with asyncio.timeout(_READ_TIMEOUT_S):
            line = await reader.readline()
        method, path, *_ = line[:_REQUEST_LINE_BYTES_MAX].decode("latin-1").split() or ["", ""]
        status, body = _status(probes, path) if method == "GET" else (405, b"GET only\n")
        reason = {200: "OK", 404: "Not Found", 405: "Method Not Allowed"}.get(
            status, "Service Unavailable"
        )
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
    except (TimeoutError, ValueError, ConnectionError):
        pass  # a probe that hangs up or sends garbage gets nothing; the next one will do
    finally:
        writer.close()


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST,
            f"LEDGERFLOW_WORKER_HEALTH_ADDRESS={address}: expected host:port",
        )
    return host, int(port)


@asynccontextmanager
async def serve_probes(address: str | None, probes: WorkerProbes) -> AsyncIterator[None]:
    """Answer `/healthz` and `/readyz` on `address` (host:port) while the block runs; with
    no address, serve nothing.

    Raises:
        LedgerError(invalid_request): the address is malformed or cannot be bound.
    """
    if address is None:
        yield
        return
    host, port = _host_port(address)
    try:
        server = await asyncio.start_server(
            lambda r, w: _answer(probes, r, w), host, port, limit=_REQUEST_LINE_BYTES_MAX * 4
        )
    except OSError as error:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST, f"LEDGERFLOW_WORKER_HEALTH_ADDRESS={address}: {error}"
        ) from error
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
