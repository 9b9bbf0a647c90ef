"""Temporal wiring for the processes: the client, the worker loop, the API's settlement."""

import asyncio
import logging
import os
import sys
from functools import partial
from typing import NoReturn

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from api.app import SettlementFactory
from ledger.errors import ErrorCode, LedgerError
from ledgerflow.settings import Settings
from ledgerflow.tracing import temporal_interceptors
from shards.cluster import ShardCluster
from workflows.dispatch import open_settlement
from workflows.search_attributes import SEARCH_ATTRIBUTE_TYPES, register_search_attributes
from workflows.worker import run_worker

__all__ = [
    "SEARCH_ATTRIBUTE_TYPES",
    "connect_temporal",
    "exit_without_finalizing",
    "register_search_attributes",
    "run_worker_until",
    "settlement_factory",
]


def exit_without_finalizing(code: int) -> NoReturn:
    """End a process that used a Temporal client or worker, skipping interpreter teardown.

    The SDK's Rust runtime keeps threads that can touch the interpreter while it finalizes,
    which now and then aborts a process whose work is done (temporalio/sdk-python#300),
    turning exit code 0 into 134. Output and log handlers are flushed first.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


async def connect_temporal(
    address: str, namespace: str, *, metrics_address: str | None = None, tracing: bool = False
) -> Client:
    """A Temporal client for the namespace; with `metrics_address` (host:port), the SDK's
    Prometheus metrics of this client and every worker built on it are served there; with
    `tracing`, the client and its workers carry OpenTelemetry traces (`ledgerflow.tracing`).

    Raises:
        LedgerError(settlement_unavailable): Temporal cannot be reached.
        LedgerError(invalid_request): the metrics address is malformed or taken.
    """
    runtime = None
    if metrics_address is not None:
        try:
            runtime = Runtime(
                telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=metrics_address))
            )
        except ValueError as error:
            raise LedgerError(
                ErrorCode.INVALID_REQUEST,
                f"LEDGERFLOW_WORKER_METRICS_ADDRESS={metrics_address}: {error}",
            ) from error
    try:
        return await Client.connect(
            address,
            namespace=namespace,
            runtime=runtime,
            interceptors=temporal_interceptors(tracing=tracing),
        )
    except RuntimeError as error:
        raise LedgerError(
            ErrorCode.SETTLEMENT_UNAVAILABLE, f"Temporal at {address} is unreachable: {error}"
        ) from error


def settlement_factory(
    settings: Settings, temporal_address: str, *, tracing: bool = False
) -> SettlementFactory:
    """How the API opens cross-shard settlement, from the settings; with `tracing`, each
    saga continues the trace of the request (or the batch) that started it."""
    return partial(
        open_settlement,
        temporal_address=temporal_address,
        namespace=settings.temporal_namespace,
        task_queue=settings.task_queue,
        batch_window_ms=settings.saga_batch_window_ms,
        batch_size_max=settings.saga_batch_size_max,
        interceptors=temporal_interceptors(tracing=tracing),
    )


async def run_worker_until(
    *, client: Client, cluster: ShardCluster, settings: Settings, stop: asyncio.Event
) -> None:
    """Run the settlement worker (and make sure the outbox sweep is scheduled) until `stop`."""
    await run_worker(
        client=client, cluster=cluster, task_queue=settings.task_queue, stop_event=stop
    )
