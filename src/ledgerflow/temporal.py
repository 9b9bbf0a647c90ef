"""Temporal for the processes: the client, its credentials, and a clean exit."""

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from ledger.errors import ErrorCode, LedgerError
from ledgerflow.settings import Settings
from ledgerflow.tracing import temporal_interceptors
from workflows.search_attributes import SEARCH_ATTRIBUTE_TYPES, register_search_attributes

__all__ = [
    "SEARCH_ATTRIBUTE_TYPES",
    "TemporalAuth",
    "connect_temporal",
    "exit_without_finalizing",
    "register_search_attributes",
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
