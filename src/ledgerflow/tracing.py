"""Tracing for the long-running processes: OpenTelemetry spans exported by OTLP, or none.

Setting `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns
tracing on for `ledgerflow api`, `worker` and `dev`: a tracer provider with a batching
OTLP/HTTP exporter becomes the process's global provider, the API starts a server span per
request, and the Temporal client carries the trace into the sagas (`TracingInterceptor`,
which the worker picks up from its client). Every other `OTEL_*` variable of the
OpenTelemetry SDK applies (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_BSP_*`, ...).

Unset (the default), nothing is installed: the API does no tracing work per request and
the few spans Ledgerflow's own code starts per batch come from OpenTelemetry's no-op
tracer. docs/observability.md has the spans and the measured cost of each choice.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

from ledger.errors import ErrorCode, LedgerError

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""Either one set (and `OTEL_SDK_DISABLED` not `true`) turns tracing on."""

_PROTOCOL_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
_PROTOCOL = "http/protobuf"


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment names an OTLP endpoint for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(environ.get(name, "").strip() for name in ENDPOINT_VARIABLES)


def check_tracing_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Refuse an OTLP protocol Ledgerflow does not export.

    Raises:
        LedgerError(invalid_request): the environment asks for an OTLP protocol other than
            http/protobuf.
    """
    for name in _PROTOCOL_VARIABLES:
        protocol = environ.get(name, "").strip()
        if protocol and protocol != _PROTOCOL:
            # gRPC would pull in grpcio for one exporter; collectors take both on 4317/4318.
            raise LedgerError(
                ErrorCode.INVALID_REQUEST,
                f"{name}={protocol}: Ledgerflow exports traces over {_PROTOCOL} only "
                "(a collector's port 4318)",
            )
        if protocol:
            return


def _resource(service_name: str) -> Resource:
    """The SDK's resource from `OTEL_*`; `service_name` unless the environment names one."""
    detected = Resource.create()
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        detected = detected.merge(Resource({SERVICE_NAME: service_name}))
    return detected


@contextmanager
def process_tracing(service_name: str, environ: Mapping[str, str] = os.environ) -> Iterator[bool]:
    """Install the OTLP exporter for this process when the environment asks for one; yields
    whether it did. On exit, the spans still buffered are exported (within the exporter's
    timeout, `OTEL_EXPORTER_OTLP_TIMEOUT`, 10 s by default).

    Raises:
        LedgerError(invalid_request): the environment asks for an OTLP protocol other than
            http/protobuf.
    """
    if not tracing_requested(environ):
        yield False
        return
    check_tracing_environment(environ)
    provider = TracerProvider(resource=_resource(service_name))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    try:
        yield True
    finally:
        provider.shutdown()


def temporal_interceptors(*, tracing: bool) -> list[Interceptor]:
    """The Temporal client's interceptors: with tracing, OpenTelemetry's, which start spans
    for workflow starts, runs and activities and carry the trace in Temporal headers."""
    return [TracingInterceptor()] if tracing else []
