"""How the long-running processes run: the event loop, and the garbage collector.

`ledgerflow api`, `worker` and `dev`, and the benchmark stack's children, all go through
here, so what is measured is what is deployed.

- The event loop is uvloop where it is installed (`uvicorn[standard]` brings it on Linux
  and macOS), as uvicorn's own command would pick: it does the API's socket and protocol
  work in C, and every database round trip of a posting batch waits for the loop.
- `tune_gc` takes what was allocated while starting (the imported modules of FastAPI,
  pydantic, the Temporal SDK, asyncpg) out of the collector's reach, and lets the young
  generation grow to 50,000 objects before it is scanned. With 512 requests in flight,
  each alive for about a second, the default threshold (700) scans the same live objects
  again and again: over one start and a 20-second run of the cross-shard benchmark, with
  the start-up heap frozen, the API's collector ran 1,977 times at the default threshold
  for 3.7 s in all (the longest pause 101 ms, a full collection); at 50,000, 3 times for
  87 ms. A pause that stops the loop while a posting batch holds its account locks stops
  every batch waiting for those locks too.
"""

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_loop(body: Coroutine[Any, Any, T]) -> T:
    """Run `body` to completion on a new event loop: uvloop's when it is installed."""
    try:
        import uvloop  # noqa: PLC0415 - optional: not on Windows
    except ImportError:
        return asyncio.run(body)
    return uvloop.run(body)


GC_THRESHOLDS = (50_000, 20, 10)
"""`gc.set_threshold` for the serving processes; Python's default is (700, 10, 10)."""


def tune_gc() -> None:
    """Collect once, exempt every object alive now from later collections, and raise the
    collection thresholds to `GC_THRESHOLDS`.

    Call it when the process has imported and built what it keeps for its lifetime, just
    before it starts serving. Garbage made afterwards is collected as usual, less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
