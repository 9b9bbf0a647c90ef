"""A stack to benchmark on one machine: durable embedded PostgreSQL shards, the Temporal dev
server, one settlement worker and one API process, on free loopback ports.

`ledgerflow bench` starts one per `--shards` count on a fresh data directory, and
`loadtests/bench_stack.py` keeps one running for other tools. The shards are durable
(fsync on) and the Temporal dev server keeps SQLite with WAL and synchronous=normal, as
`ledgerflow dev` runs them. The worker and the API run in two spawned child processes, so
they do not share one interpreter lock. With `OTEL_EXPORTER_OTLP_ENDPOINT` set, both
children trace and export as `ledgerflow api` and `worker` do (docs/observability.md).
"""

import asyncio
import contextlib
import multiprocessing
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ulid import ULID

from ledgerflow.composition import Wiring, run_worker_process, serve_api_process
from ledgerflow.devstack import EmbeddedPostgres, TemporalDevServer, free_port
from ledgerflow.logs import configure_logging
from ledgerflow.runtime import run_loop
from ledgerflow.tracing import process_tracing
from shards.api_keys import ApiKeyCatalog
from shards.cluster import ShardCluster
from shards.migrate import migrate_all
from workflows.search_attributes import SEARCH_ATTRIBUTE_TYPES

HOST = "127.0.0.1"
TASK_QUEUE = "ledgerflow-bench"
READY_TIMEOUT_S = 120.0
CHILD_STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class StackConfig:
    """What the child processes need to find the shards and Temporal."""

    shard_dsns: list[str]
    temporal_address: str
    api_port: int
    batch_window_ms: int = 5
    batch_size_max: int = 60
    in_flight_max: int = 1
    sync_wait_s: float = 1.0
    pool_size_max: int = 16

    def wiring(self, *, tracing: bool) -> Wiring:
        """The system both children build: the API settles on `TASK_QUEUE`, where the
        worker polls."""
        return Wiring(
            shard_dsns=self.shard_dsns,
            temporal_address=self.temporal_address,
            task_queue=TASK_QUEUE,
            pool_size_max=self.pool_size_max,
            saga_sync_wait_s=self.sync_wait_s,
            saga_batch_window_ms=self.batch_window_ms,
            saga_batch_size_max=self.batch_size_max,
            saga_in_flight_max=self.in_flight_max,
            tracing=tracing,
        )


@dataclass(frozen=True)
class Target:
    """A running stack to drive: its API, a key, its Temporal server and its shards.

    `temporal_address` and `shard_dsns` may be unknown for a stack the bench did not start;
    then the baseline is skipped and the books are not checked (the table says so)."""

    url: str
    api_key: str
    temporal_address: str | None = None
    shard_dsns: list[str] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)


def run_child(role: str, config: StackConfig) -> None:
    """The body of the `api` or `worker` child process (spawned, so it needs a top-level
    function). It traces, as `ledgerflow api` and `worker` do, when the environment names
    an OTLP endpoint (`ledgerflow.tracing`)."""
    configure_logging(level="warning")
    with process_tracing(f"ledgerflow-bench-{role}") as tracing:
        wiring = config.wiring(tracing=tracing)
        if role == "api":
            run_loop(serve_api_process(wiring, host=HOST, port=config.api_port))
        else:
            run_loop(run_worker_process(wiring))


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


def wait_until_serving(url: str, children: list[multiprocessing.process.BaseProcess]) -> None:
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
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310 - loopback URL built here
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API at {url} was not ready within {READY_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def start_children(config: StackConfig) -> list[multiprocessing.process.BaseProcess]:
    """Spawn the worker and the API child processes (worker first)."""
    context = multiprocessing.get_context("spawn")
    children: list[multiprocessing.process.BaseProcess] = [
        context.Process(target=run_child, args=(role, config), name=role)
        for role in ("worker", "api")
    ]
    for child in children:
        child.start()
    return children


def stop_children(children: list[multiprocessing.process.BaseProcess]) -> None:
    """SIGTERM each child that runs, and wait for it."""
    for child in children:
        if child.pid is not None and child.is_alive():
            child.terminate()
        child.join(timeout=CHILD_STOP_TIMEOUT_S)


@contextlib.contextmanager
def started_stack(
    data_dir: Path, *, shard_count: int, config: StackConfig | None = None
) -> Iterator[tuple[Target, StackConfig]]:
    """Start a whole stack under `data_dir` and yield it once the API is ready; stop every
    piece on the way out, whatever happened.

    `config` supplies the tuning (its DSNs, address and port are replaced).

    Raises:
        RuntimeError: a child process exited, or the API was not ready in time.
        DevStackError: a server did not start.
    """
    assert shard_count >= 1, shard_count
    services = Services.under(data_dir, shard_count=shard_count)
    children: list[multiprocessing.process.BaseProcess] = []
    try:
        dsns = services.start()
        tuning = config or StackConfig(shard_dsns=[], temporal_address="", api_port=0)
        config = StackConfig(
            shard_dsns=dsns,
            temporal_address=services.temporal.address,
            api_port=free_port(),
            batch_window_ms=tuning.batch_window_ms,
            batch_size_max=tuning.batch_size_max,
            in_flight_max=tuning.in_flight_max,
            sync_wait_s=tuning.sync_wait_s,
            pool_size_max=tuning.pool_size_max,
        )
        children = start_children(config)
        url = f"http://{HOST}:{config.api_port}"
        wait_until_serving(url, children)
        target = Target(
            url=url,
            api_key=asyncio.run(new_api_key(dsns, tenant_prefix="bench")),
            temporal_address=services.temporal.address,
            shard_dsns=dsns,
            pids={c.name: c.pid for c in children if c.pid is not None},
        )
        yield target, config
    finally:
        stop_children(children)
        services.stop()
