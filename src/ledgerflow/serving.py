"""Running the API and the worker inside one event loop until a stop signal."""

import asyncio
import contextlib
import signal
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its caller.

    uvicorn re-raises the signals it captured once it stops; the dev stack handles SIGINT
    and SIGTERM itself so it can stop the worker, Temporal and the shards in order.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing."""
        yield


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set `stop` on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def serve_api(app: FastAPI, *, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve `app` until `stop` is set; raises if the server fails to start."""
    server = QuietServer(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
    )
    task = asyncio.create_task(server.serve())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        stopper.cancel()
        task.result()
        if not server.started:
            raise RuntimeError(f"the API could not start on {host}:{port}")
        return
    server.should_exit = True
    await task
