"""Temporal wiring for the processes: the client, the worker loop, the API's settlement."""

import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NoReturn

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from api.app import SettlementFactory
from ledger.errors import ErrorCode, LedgerError
from ledgerflow.health import WorkerProbes, serve_probes
from ledgerflow.settings import Settings
from ledgerflow.tracing import temporal_interceptors
from shards.cluster import ShardCluster
from workflows.handover.connect import open_settlement
from workflows.search_attributes import SEARCH_ATTRIBUTE_TYPES, register_search_attributes
from workflows.sweep.start import ensure_sweeper
from workflows.worker import build_worker

__all__ = [
    "SEARCH_ATTRIBUTE_TYPES",
    "TemporalAuth",
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


@dataclass(frozen=True, slots=True)
class TemporalAuth:
    """How a process proves itself to Temporal and checks it talks to the right server:
    plain TCP for the dev server, TLS (optionally mutual) for a self-hosted cluster, an API
    key over TLS (or mTLS) for Temporal Cloud."""

    tls: TLSConfig | bool = False
    api_key: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> "TemporalAuth":
        """The `LEDGERFLOW_TEMPORAL_TLS*` and `LEDGERFLOW_TEMPORAL_API_KEY` settings, with the
        certificate files read now (a process fails at start, not at its first saga).

        Raises:
            LedgerError(invalid_request): a certificate or key file cannot be read.
        """
        api_key = settings.temporal_api_key
        secret = api_key.get_secret_value() if api_key is not None else None
        if not settings.temporal_uses_tls:
            return cls(tls=False, api_key=secret)
        ca, cert, key = (
            _read_pem(path)
            for path in (
                settings.temporal_tls_ca_path,
                settings.temporal_tls_cert_path,
                settings.temporal_tls_key_path,
            )
        )
        if ca is None and cert is None and settings.temporal_tls_server_name is None:
            return cls(tls=True, api_key=secret)  # the system's roots, the address's name
        return cls(
            tls=TLSConfig(
                server_root_ca_cert=ca,
                client_cert=cert,
                client_private_key=key,
                domain=settings.temporal_tls_server_name,
            ),
            api_key=secret,
        )


def _read_pem(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise LedgerError(ErrorCode.INVALID_REQUEST, f"cannot read {path}: {error}") from error


async def connect_temporal(
    address: str,
    namespace: str,
    *,
    metrics_address: str | None = None,
    auth: TemporalAuth | None = None,
    tracing: bool = False,
) -> Client:
    """A Temporal client for the namespace; with `metrics_address` (host:port), the SDK's
    Prometheus metrics of this client and every worker built on it are served there.
    `auth` gives TLS and the API key (none: plain TCP, as the dev server speaks); with
    `tracing`, the client and its workers carry OpenTelemetry traces (`ledgerflow.tracing`).

    Raises:
        LedgerError(settlement_unavailable): Temporal cannot be reached.
        LedgerError(invalid_request): the metrics address is malformed or taken.
    """
    auth = auth or TemporalAuth()
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
            tls=auth.tls,
            api_key=auth.api_key,
            interceptors=temporal_interceptors(tracing=tracing),
        )
    except RuntimeError as error:
        raise LedgerError(
            ErrorCode.SETTLEMENT_UNAVAILABLE, f"Temporal at {address} is unreachable: {error}"
        ) from error


def settlement_factory(
    settings: Settings,
    temporal_address: str,
    *,
    auth: TemporalAuth | None = None,
    tracing: bool = False,
) -> SettlementFactory:
    """How the API opens cross-shard settlement, from the settings; with `tracing`, each
    saga continues the trace of the request (or the batch) that started it."""
    auth = auth or TemporalAuth()
    return partial(
        open_settlement,
        temporal_address=temporal_address,
        temporal_tls=auth.tls,
        temporal_api_key=auth.api_key,
        namespace=settings.temporal_namespace,
        task_queue=settings.task_queue,
        batch_window_ms=settings.saga_batch_window_ms,
        batch_size_max=settings.saga_batch_size_max,
        interceptors=temporal_interceptors(tracing=tracing),
    )


async def run_worker_until(
    *,
    client: Client,
    cluster: ShardCluster,
    settings: Settings,
    stop: asyncio.Event,
    health_address: str | None = None,
) -> None:
    """Make sure the outbox sweeper runs, then run the settlement worker until `stop`.

    With `health_address` (host:port), answer Kubernetes' probes there meanwhile: ready
    while the worker polls and `stop` is not set, alive until the worker stopped on its own
    (a worker that failed fatally leaves this waiting for `stop`, and the liveness probe is
    what restarts the pod).

    Raises:
        temporalio.service.RPCError: Temporal refused the sweeper.
        LedgerError(invalid_request): the health address is malformed or taken.
    """
    worker = build_worker(client=client, cluster=cluster, task_queue=settings.task_queue)
    probes = WorkerProbes(
        ready=lambda: worker.is_running and not stop.is_set(),
        alive=lambda: not worker.is_shutdown or stop.is_set(),
    )
    async with serve_probes(health_address, probes):
        await ensure_sweeper(client, settings.task_queue)
        async with worker:
            await stop.wait()
