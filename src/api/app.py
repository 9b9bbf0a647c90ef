"""The FastAPI application: routers, error handlers, middleware and the lifespan."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

from fastapi import Depends, FastAPI
from fastapi.telemetry import TelemetryConfig

from api.account_service import AccountService
from api.atomic_batch import AtomicSettlement
from api.auth import Authenticator
from api.batch_service import BatchService
from api.docs import install_docs
from api.errors import install_error_handlers
from api.event_service import EventService
from api.maintenance import ShardHealth, purge_expired
from api.observability import Metrics, RequestMiddleware
from api.openapi import install_contract, operation_id
from api.query_params import known_query_only
from api.rate_limit import RateLimiter
from api.routes import accounts, batches, events, health, transfers
from api.state import AppState
from api.transfer_changes import TransferChanges
from api.transfer_service import Reviews, Settlement, TransferService
from ledger import limits
from shards.cluster import ShardCluster
from shards.group_commit import GroupCommitter
from shards.idempotency import IdempotencyStore
from workflows.handover.dispatcher import SettlementObserver


class SettlementFactory(Protocol):
    """Opens the cross-shard settlement (a Temporal client and batcher) for the app's life;
    `functools.partial(workflows.handover.connect.open_settlement, ...)` is one."""

    def __call__(
        self, cluster: ShardCluster, *, observer: SettlementObserver | None = None
    ) -> AbstractAsyncContextManager[Settlement]:
        """The settlement over `cluster`, reporting to `observer`."""
        ...


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """What the API process needs to know."""

    shard_dsns: list[str]
    pool_size_max: int = limits.POOL_SIZE_DEFAULT
    saga_sync_wait_s: float = limits.SAGA_SYNC_WAIT_S_DEFAULT
    settlement: SettlementFactory | None = None
    rate_limit_per_s: float = limits.RATE_LIMIT_PER_S_DEFAULT
    """Requests per second per API key in this process; 0 means unlimited."""
    rate_limit_burst: int = limits.RATE_LIMIT_BURST_DEFAULT
    reviews_waiting_max: int = limits.REVIEWS_WAITING_MAX_DEFAULT
    """The most transfers one tenant may have waiting for review (each shard an equal
    share)."""
    tracing: bool = False
    """A server span per request (FastAPI's own, through the global OpenTelemetry tracer
    provider), continuing an incoming `traceparent`; off, FastAPI starts none even when
    the process has a tracer provider."""


def create_app(config: ApiConfig) -> FastAPI:
    """Build the app; pools and clients open in the lifespan and close with it."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cluster = await ShardCluster.connect(config.shard_dsns, pool_size_max=config.pool_size_max)
        committer = GroupCommitter(cluster, observer=metrics.observe_batch)
        idempotency = IdempotencyStore(cluster, observer=metrics.observe_idempotency_batch)
        health = ShardHealth(cluster)
        metrics.watch_shards(cluster, health)
        purger = asyncio.create_task(purge_expired(cluster))
        lag_probe = asyncio.create_task(metrics.probe_loop_lag())
        shard_probe = asyncio.create_task(health.probe_forever())
        try:
            if config.settlement is None:
                app.state.ledgerflow = _state(cluster, committer, idempotency, health, None, config)
                yield
            else:
                async with config.settlement(cluster, observer=metrics) as settlement:
                    app.state.ledgerflow = _state(
                        cluster, committer, idempotency, health, settlement, config
                    )
                    yield
        finally:
            for task in (purger, lag_probe, shard_probe):
                task.cancel()
            await asyncio.gather(purger, lag_probe, shard_probe, return_exceptions=True)
            await committer.close()
            await idempotency.close()
            await cluster.close()

    app = FastAPI(
        title="Ledgerflow",
        version="1",
        summary="A sharded double-entry ledger for money movement.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served by `install_docs` from local assets, not a CDN
        redoc_url=None,
        telemetry=_telemetry(tracing=config.tracing),
    )
    app.state.metrics = metrics
    install_error_handlers(app)
    install_contract(app)
    install_docs(app)
    app.include_router(health.router)
    # Every /v1 operation refuses a query parameter it does not take (`api.query_params`).
    strict = [Depends(known_query_only)]
    for router in (accounts.router, batches.router, transfers.router, events.router):
        app.include_router(router, dependencies=strict)
    app.add_middleware(RequestMiddleware, metrics=metrics)
    return app


def _telemetry(*, tracing: bool) -> TelemetryConfig:
    """FastAPI's OpenTelemetry: its server span when tracing, nothing else, ever.

    FastAPI turns on everything (server spans, spans around dependencies, the endpoint and
    serialization, request metrics, exception logs) as soon as the process has a global
    provider. Measured per request on this machine with a recording provider: about
    0.3 ms for the server span and 0.15-0.25 ms more for the operation spans, against
    about 0.3 ms for the whole request path without them; the API's CPU per request is its
    throughput bound. Metrics are Prometheus's (`Metrics`) and logs structlog's; export is
    set up by `ledgerflow.tracing`, not by FastAPI.
    """
    return {
        "tracing": tracing,
        "operation_spans": False,
        "metrics": False,
        "logs": False,
        "auto_configure": False,
    }


def _state(
    cluster: ShardCluster,
    committer: GroupCommitter,
    idempotency: IdempotencyStore,
    health: ShardHealth,
    settlement: Settlement | None,
    config: ApiConfig,
) -> AppState:
    reviews = settlement if isinstance(settlement, Reviews) else None
    transfer_service = TransferService(
        cluster,
        committer,
        settlement=settlement,
        sync_wait_s=config.saga_sync_wait_s,
        reviews=reviews,
        reviews_waiting_max=config.reviews_waiting_max,
    )
    # The dispatcher settles atomic batches too; another settlement may not.
    atomic = settlement if isinstance(settlement, AtomicSettlement) else None
    return AppState(
        cluster=cluster,
        health=health,
        committer=committer,
        idempotency=idempotency,
        authenticator=Authenticator(cluster),
        rate_limiter=RateLimiter(rate_per_s=config.rate_limit_per_s, burst=config.rate_limit_burst),
        accounts=AccountService(cluster),
        events=EventService(cluster),
        transfers=transfer_service,
        transfer_changes=TransferChanges(
            cluster,
            committer,
            settlement=settlement,
            reviews=reviews,
            sync_wait_s=config.saga_sync_wait_s,
        ),
        batches=BatchService(
            cluster,
            transfer_service,
            idempotency,
            settlement=atomic,
            sync_wait_s=config.saga_sync_wait_s,
        ),
    )
