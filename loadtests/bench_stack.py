"""A stack to benchmark on this machine: shards, Temporal, one worker and one API process.

    python loadtests/bench_stack.py --data-dir /tmp/ledgerflow-bench

starts 2 embedded PostgreSQL shards (durable: fsync on; `--shards N`), the Temporal dev
server (SQLite with WAL and synchronous=normal, as `ledgerflow dev` runs it), then the
settlement worker and the API in two child processes, so they do not share one interpreter
lock. Once the API answers `/readyz`, it prints the API URL, an API key and the Temporal
address for `bench_cross_shard.py` (and writes them to DATA_DIR/bench-stack.json), and stops
everything on Ctrl-C or SIGTERM. Everything listens on loopback only. With
`OTEL_EXPORTER_OTLP_ENDPOINT` set, both children trace and export as `ledgerflow api` and
`worker` do (docs/observability.md).

Two shards by default: one per core of the 2-core machine docs/performance.md's figures come
from.
Every shard is a PostgreSQL server with its own commits and its own batches, so on one
machine more shards than cores cost CPU per transfer and add no capacity: `--shards 4` (the
dev stack's count) settles about a quarter fewer cross-shard transfers per second there.
"""

import argparse
import asyncio
import json
import multiprocessing
import signal
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from ulid import ULID

from api.app import ApiConfig, create_app
from ledgerflow.devstack import EmbeddedPostgres, TemporalDevServer, free_port
from ledgerflow.logs import configure_logging
from ledgerflow.runtime import run_loop, tune_gc
from ledgerflow.serving import serve_api, stop_on_signals
from ledgerflow.tracing import process_tracing, temporal_interceptors
from shards.api_keys import ApiKeyCatalog
from shards.cluster import ShardCluster
from shards.migrate import migrate_all
from workflows.handover.connect import open_settlement
from workflows.search_attributes import SEARCH_ATTRIBUTE_TYPES
from workflows.worker import run_worker

HOST = "127.0.0.1"
TASK_QUEUE = "ledgerflow-bench"
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class StackConfig:
    """What the child processes need to find the shards and Temporal."""

    shard_dsns: list[str]
    temporal_address: str
    api_port: int
    batch_window_ms: int
    batch_size_max: int
    in_flight_max: int
    sync_wait_s: float
    pool_size_max: int


async def _serve_api(config: StackConfig, *, tracing: bool) -> None:
    configure_logging(level="warning")
    stop = asyncio.Event()
    stop_on_signals(stop)
    settlement = partial(
        open_settlement,
        temporal_address=config.temporal_address,
        namespace="default",
        task_queue=TASK_QUEUE,
        batch_window_ms=config.batch_window_ms,
        batch_size_max=config.batch_size_max,
        in_flight_max=config.in_flight_max,
        interceptors=temporal_interceptors(tracing=tracing),
    )
    app = create_app(
        ApiConfig(
            shard_dsns=config.shard_dsns,
            pool_size_max=config.pool_size_max,
            saga_sync_wait_s=config.sync_wait_s,
            settlement=settlement,
            tracing=tracing,
        )
    )
    tune_gc()
    await serve_api(app, host=HOST, port=config.api_port, stop=stop)


async def _run_worker(config: StackConfig, *, tracing: bool) -> None:
    from temporalio.client import Client  # noqa: PLC0415 - only the worker child needs it

    configure_logging(level="warning")
    stop = asyncio.Event()
    stop_on_signals(stop)
    cluster = await ShardCluster.connect(config.shard_dsns, pool_size_max=config.pool_size_max)
    try:
        client = await Client.connect(
            config.temporal_address, interceptors=temporal_interceptors(tracing=tracing)
        )
        tune_gc()
        await run_worker(client=client, cluster=cluster, task_queue=TASK_QUEUE, stop_event=stop)
    finally:
        await cluster.close()


def run_child(role: str, config: StackConfig) -> None:
    """The body of the `api` or `worker` child process (spawned, so it needs a top-level
    function). It traces, as `ledgerflow api` and `worker` do, when the environment names
    an OTLP endpoint (`ledgerflow.tracing`)."""
    with process_tracing(f"ledgerflow-bench-{role}") as tracing:
        body = _serve_api if role == "api" else _run_worker
        run_loop(body(config, tracing=tracing))


@dataclass
class Services:
    """The stack's servers: durable embedded PostgreSQL shards and the Temporal dev server
    (SQLite), on free loopback ports under one data directory."""

    shards: list[EmbeddedPostgres]
    temporal: TemporalDevServer

    @classmethod
    def under(cls, data_dir: Path, *, shard_count: int) -> "Services":
        """The servers, not started yet."""
        return cls(
            shards=[
                EmbeddedPostgres(data_dir / f"shard-{i}", port=free_port(), durable=True)
                for i in range(shard_count)
            ],
            temporal=TemporalDevServer(
                db_file=data_dir / "temporal.db",
                port=free_port(),
                ui_port=None,
                search_attributes=SEARCH_ATTRIBUTE_TYPES,
                log_file=data_dir / "temporal.log",
            ),
        )

    def start(self) -> list[str]:
        """Start every server and migrate the shards; returns their DSNs."""
        for shard in self.shards:
            shard.start()
        self.temporal.start()
        dsns = [s.dsn for s in self.shards]
        asyncio.run(migrate_all(dsns))
        return dsns

    def stop(self) -> None:
        """Stop whatever runs."""
        self.temporal.stop()
        for shard in self.shards:
            shard.stop()


async def new_api_key(dsns: list[str], *, tenant_prefix: str) -> str:
    """A key of a fresh tenant, so every run moves money among its own accounts."""
    cluster = await ShardCluster.connect(dsns, pool_size_max=1)
    try:
        _, secret = await ApiKeyCatalog(cluster).create(tenant_id=f"{tenant_prefix}_{ULID()}")
        return secret
    finally:
        await cluster.close()


def wait_until_serving(url: str, children: list[multiprocessing.Process]) -> None:
    """Return once the API answers `/readyz` with 200 (every shard reachable), so whoever
    reads the stack file can send load at once.

    Raises:
        RuntimeError: a child process exited, or the API was not ready in READY_TIMEOUT_S.
    """
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        for child in children:
            if not child.is_alive():
                raise RuntimeError(f"the {child.name} process exited with code {child.exitcode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API at {url} was not ready within {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def main() -> None:
    """Start the stack, print where it is, and run until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--batch-window-ms", type=int, default=5)
    parser.add_argument("--batch-size-max", type=int, default=60)
    parser.add_argument("--in-flight-max", type=int, default=1)
    parser.add_argument("--sync-wait-s", type=float, default=1.0)
    parser.add_argument("--pool-size-max", type=int, default=16)
    args = parser.parse_args()

    services = Services.under(args.data_dir, shard_count=args.shards)
    children: list[multiprocessing.Process] = []
    try:
        dsns = services.start()
        config = StackConfig(
            shard_dsns=dsns,
            temporal_address=services.temporal.address,
            api_port=free_port(),
            batch_window_ms=args.batch_window_ms,
            batch_size_max=args.batch_size_max,
            in_flight_max=args.in_flight_max,
            sync_wait_s=args.sync_wait_s,
            pool_size_max=args.pool_size_max,
        )
        context = multiprocessing.get_context("spawn")
        children = [
            context.Process(target=run_child, args=(r, config), name=r) for r in ("worker", "api")
        ]
        for child in children:
            child.start()
        url = f"http://{HOST}:{config.api_port}"
        wait_until_serving(url, children)
        info = {
            "url": url,
            "api_key": asyncio.run(new_api_key(dsns, tenant_prefix="bench")),
            "temporal_address": services.temporal.address,
            "pids": {"worker": children[0].pid, "api": children[1].pid},
            "config": asdict(config),
        }
        # Written whole and then renamed, so a reader polling for the file never sees half.
        stack_file = args.data_dir / "bench-stack.json"
        partial_file = stack_file.with_suffix(".json.partial")
        partial_file.write_text(json.dumps(info, indent=2))
        partial_file.replace(stack_file)
        print(json.dumps(info, indent=2), flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    except RuntimeError as error:
        raise SystemExit(f"bench stack: {error}") from error
    finally:
        for child in children:
            if child.pid is not None and child.is_alive():
                child.terminate()
            child.join(timeout=15)
        services.stop()


def interrupt_once(signum: int, frame: object) -> None:
    """SIGTERM stops the stack like Ctrl-C does, through the `finally` that stops each piece.
    Later SIGTERMs are ignored, so a second one (a signal sent to the whole process group
    reaches this process again) cannot cut that shutdown short and leave servers running."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupt_once)
    main()
