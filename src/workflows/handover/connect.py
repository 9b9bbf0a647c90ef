"""The API process's settlement: a lazy Temporal client and the dispatcher on top of it.

`ApiConfig.settlement` is `functools.partial(open_settlement, temporal_address=..., ...)`.
"""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from temporalio.client import Client, Interceptor
from temporalio.service import TLSConfig

from ledger import limits
from shards.cluster import ShardCluster
from workflows.handover.dispatcher import SettlementDispatcher, SettlementObserver
from workflows.payloads import DATA_CONVERTER


@asynccontextmanager
async def open_settlement(
    cluster: ShardCluster,
    *,
    temporal_address: str,
    namespace: str,
    task_queue: str,
    batch_window_ms: int,
    batch_size_max: int,
    in_flight_max: int = limits.SAGA_IN_FLIGHT_PER_SOURCE_DEFAULT,
    review_timeout_s: float = limits.REVIEW_TIMEOUT_S_DEFAULT,
    observer: SettlementObserver | None = None,
    temporal_tls: TLSConfig | bool = False,
    temporal_api_key: str | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> AsyncIterator[SettlementDispatcher]:
    """The settlement for `ApiConfig.settlement`: a Temporal client and a dispatcher.

    The client connects lazily, so the API starts (and single-shard transfers work) while
    Temporal is down; cross-shard reserves then wait in the outbox for the sweeper.

    `temporal_tls` and `temporal_api_key` are `Client.connect`'s `tls` and `api_key` (TLS,
    mTLS, or Temporal Cloud's API key). Use with
    `functools.partial(open_settlement, temporal_address=..., ...)`.
    `interceptors` are the client's (`TracingInterceptor` carries each saga's trace).
    """
    client = await Client.connect(
        temporal_address,
        namespace=namespace,
        lazy=True,
        data_converter=DATA_CONVERTER,
        tls=temporal_tls,
        api_key=temporal_api_key,
        interceptors=interceptors,
    )
    dispatcher = SettlementDispatcher(
        cluster,
        client,
        task_queue=task_queue,
        batch_window_ms=batch_window_ms,
        batch_size_max=batch_size_max,
        in_flight_max=in_flight_max,
        observer=observer,
        review_timeout_s=review_timeout_s,
    )
    try:
        yield dispatcher
    finally:
        await dispatcher.close()
