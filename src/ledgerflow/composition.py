"""The composition root: how one Ledgerflow system is put together, in one place.

`Wiring` says where the shards and Temporal are and how a process uses them; its methods
build what every process needs from that: the shard pools, the Temporal client, the
settlement worker (with its outbox sweeper), the API's cross-shard hand-over and the API
app. `ledgerflow api`, `worker` and `dev`, the benchmark stack (`loadtests/bench_stack.py`)
and the tests (`tests/conftest.py`) all build the system through it and differ only in the
fields they set, so what the tests and the benchmarks run is what is deployed.

`serve_api_process` and `run_worker_process` are the bodies of the two serving processes
(`ledgerflow api`, `ledgerflow worker`, and the benchmark stack's two children).
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

from fastapi import FastAPI
from temporalio.client import Client
from temporalio.worker import Worker

from api.app import ApiConfig, SettlementFactory, create_app
from ledger import limits
from ledgerflow.health import WorkerProbes, serve_probes
from ledgerflow.runtime import tune_gc
from ledgerflow.serving import serve_api, stop_on_signals
from ledgerflow.settings import Settings
from ledgerflow.temporal import TemporalAuth, connect_temporal
from ledgerflow.tracing import temporal_interceptors
from shards.cluster import ShardCluster
from workflows.funds_timers.start import ensure_funds_timers
from workflows.handover.connect import open_settlement
from workflows.sweep.start import ensure_sweeper
from workflows.worker import build_worker


@dataclass(frozen=True, slots=True)
class Wiring:
    """Where the services are and how this process uses them (picklable: the benchmark
    stack hands it to its child processes)."""

    shard_dsns: list[str]
    temporal_address: str
    namespace: str = "default"
    task_queue: str = "ledgerflow-settlement"
    """Where the settlement sagas run: the API starts them there, the worker polls it."""
    temporal_auth: TemporalAuth = field(default_factory=TemporalAuth)
    pool_size_max: int = limits.POOL_SIZE_DEFAULT
    saga_sync_wait_s: float = limits.SAGA_SYNC_WAIT_S_DEFAULT
    saga_batch_window_ms: int = limits.SAGA_BATCH_WINDOW_MS_DEFAULT
    saga_batch_size_max: int = limits.SAGA_BATCH_SIZE_MAX
    saga_in_flight_max: int = limits.SAGA_IN_FLIGHT_PER_SOURCE_DEFAULT
    """Sagas settling at once per source shard and currency before the next batch waits."""
    rate_limit_per_s: float = limits.RATE_LIMIT_PER_S_DEFAULT
    rate_limit_burst: int = limits.RATE_LIMIT_BURST_DEFAULT
    review_timeout_s: float = limits.REVIEW_TIMEOUT_S_DEFAULT
    """A transfer waiting for review is rejected after this long (`ReviewTransfer`)."""
    reviews_waiting_max: int = limits.REVIEWS_WAITING_MAX_DEFAULT
    """The most transfers one tenant may have waiting for review."""
    tracing: bool = False
    """Trace requests and sagas (`ledgerflow.tracing` installed an exporter)."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        shard_dsns: list[str],
        temporal_address: str,
        temporal_auth: TemporalAuth | None = None,
        tracing: bool = False,
    ) -> "Wiring":
        """The wiring the `LEDGERFLOW_*` settings describe, for the shards and Temporal
        found at the given places (`ledgerflow.config.endpoints`, or the dev stack's)."""
        return cls(
            shard_dsns=shard_dsns,
            temporal_address=temporal_address,
            namespace=settings.temporal_namespace,
            task_queue=settings.task_queue,
            temporal_auth=temporal_auth or TemporalAuth(),
            pool_size_max=settings.pool_size_max,
            saga_sync_wait_s=settings.saga_sync_wait_s,
            review_timeout_s=settings.review_timeout_s,
            reviews_waiting_max=settings.reviews_waiting_max,
            saga_batch_window_ms=settings.saga_batch_window_ms,
            saga_batch_size_max=settings.saga_batch_size_max,
            rate_limit_per_s=settings.rate_limit_per_s,
            rate_limit_burst=settings.rate_limit_burst,
            tracing=tracing,
        )

    def settlement(self) -> SettlementFactory:
        """How the API opens its cross-shard hand-over: a lazy Temporal client and the
        batching dispatcher (`workflows.handover`); with `tracing`, each saga continues the
        trace of the request (or the batch) that started it."""
        return partial(
            open_settlement,
            temporal_address=self.temporal_address,
            temporal_tls=self.temporal_auth.tls,
            temporal_api_key=self.temporal_auth.api_key,
            namespace=self.namespace,
            task_queue=self.task_queue,
            batch_window_ms=self.saga_batch_window_ms,
            batch_size_max=self.saga_batch_size_max,
            in_flight_max=self.saga_in_flight_max,
            review_timeout_s=self.review_timeout_s,
            interceptors=temporal_interceptors(tracing=self.tracing),
        )

    def api_config(self) -> ApiConfig:
        """The API's configuration: its shards, pools, limits and settlement."""
        return ApiConfig(
            shard_dsns=self.shard_dsns,
            pool_size_max=self.pool_size_max,
            saga_sync_wait_s=self.saga_sync_wait_s,
            settlement=self.settlement(),
            rate_limit_per_s=self.rate_limit_per_s,
            rate_limit_burst=self.rate_limit_burst,
            reviews_waiting_max=self.reviews_waiting_max,
            tracing=self.tracing,
        )

    def app(self) -> FastAPI:
        """The API app; its pools and clients open in its lifespan."""
        return create_app(self.api_config())

    @asynccontextmanager
    async def cluster(self, *, pool_size_max: int | None = None) -> AsyncIterator[ShardCluster]:
        """Pools to every shard (`pool_size_max`, or this wiring's), closed on exit.

        Raises:
            LedgerError(shard_unavailable): a shard could not be reached.
            ShardMapError: the DSNs do not match the stored shard map.
        """
        connected = await ShardCluster.connect(
            self.shard_dsns, pool_size_max=pool_size_max or self.pool_size_max
        )
        try:
            yield connected
        finally:
            await connected.close()

    async def temporal_client(self, *, metrics_address: str | None = None) -> Client:
        """A Temporal client for the namespace (`ledgerflow.temporal.connect_temporal`).

        Raises:
            LedgerError(settlement_unavailable): Temporal cannot be reached.
            LedgerError(invalid_request): the metrics address is malformed or taken.
        """
        return await connect_temporal(
            self.temporal_address,
            self.namespace,
            metrics_address=metrics_address,
            auth=self.temporal_auth,
            tracing=self.tracing,
        )

    @asynccontextmanager
    async def worker(self, *, client: Client, cluster: ShardCluster) -> AsyncIterator[Worker]:
        """The settlement worker polling `task_queue`, running until exit, with the outbox
        sweeper and each shard's funds timers made sure of first (those already running are
        left as they are).

        Raises:
            temporalio.service.RPCError: Temporal refused the sweeper.
        """
        await ensure_sweeper(client, self.task_queue)
        await ensure_funds_timers(
            client,
            self.task_queue,
            shards=len(cluster.shards),
            review_timeout_s=self.review_timeout_s,
        )
        running = build_worker(client=client, cluster=cluster, task_queue=self.task_queue)
        async with running:
            yield running

    async def run_worker(
        self,
        *,
        client: Client,
        cluster: ShardCluster,
        stop: asyncio.Event,
        health_address: str | None = None,
    ) -> None:
        """Run the settlement worker (`worker`) until `stop`.

        With `health_address` (host:port), answer Kubernetes' probes there meanwhile: ready
        while the worker polls and `stop` is not set, alive until the worker stopped on its
        own (a worker that failed fatally leaves this waiting for `stop`, and the liveness
        probe is what restarts the pod).

        Raises:
            temporalio.service.RPCError: Temporal refused the sweeper.
            LedgerError(invalid_request): the health address is malformed or taken.
        """
        running: list[Worker] = []
        probes = WorkerProbes(
            ready=lambda: bool(running) and running[0].is_running and not stop.is_set(),
            alive=lambda: not running or not running[0].is_shutdown or stop.is_set(),
        )
        async with (
            serve_probes(health_address, probes),
            self.worker(client=client, cluster=cluster) as worker,
        ):
            running.append(worker)
            await stop.wait()


async def serve_api_process(wiring: Wiring, *, host: str, port: int) -> None:
    """The body of an API process: serve the app on host:port until SIGINT or SIGTERM.

    Raises:
        RuntimeError: the server could not start.
    """
    stop = asyncio.Event()
    stop_on_signals(stop)
    app = wiring.app()
    tune_gc()
    await serve_api(app, host=host, port=port, stop=stop)


async def run_worker_process(
    wiring: Wiring, *, metrics_address: str | None = None, health_address: str | None = None
) -> None:
    """The body of a worker process: run the settlement worker until SIGINT or SIGTERM,
    with the SDK's metrics at `metrics_address` and probes at `health_address` when given.

    Raises:
        LedgerError: a shard or Temporal cannot be reached, or an address is taken.
        temporalio.service.RPCError: Temporal refused the sweeper.
    """
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with wiring.cluster() as cluster:
        client = await wiring.temporal_client(metrics_address=metrics_address)
        tune_gc()
        await wiring.run_worker(
            client=client, cluster=cluster, stop=stop, health_address=health_address
        )
