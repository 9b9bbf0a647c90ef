"""When the processes trace: only when the environment names an OTLP endpoint."""

import pytest
from temporalio.contrib.opentelemetry import TracingInterceptor

from ledger.errors import ErrorCode, LedgerError
from ledgerflow.tracing import (
    check_tracing_environment,
    process_tracing,
    temporal_interceptors,
    tracing_requested,
)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"},
            False,
        ),
    ],
)
def test_tracing_is_on_only_with_an_endpoint(environ: dict[str, str], expected: bool) -> None:
    """An endpoint turns tracing on; none, or `OTEL_SDK_DISABLED=true`, leaves it off."""
    assert tracing_requested(environ) is expected


def test_without_an_endpoint_nothing_is_installed() -> None:
    """Off, the processes get no Temporal interceptor and no provider is set."""
    with process_tracing("ledgerflow-test", {}) as tracing:
        assert tracing is False
    assert temporal_interceptors(tracing=False) == []
    (interceptor,) = temporal_interceptors(tracing=True)
    assert isinstance(interceptor, TracingInterceptor)


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
        {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"},
        {
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        },
    ],
)
def test_an_unsupported_protocol_is_refused(environ: dict[str, str]) -> None:
    """Ledgerflow exports OTLP over http/protobuf only; asking for another is an error
    naming the variable, not silently ignored."""
    with pytest.raises(LedgerError) as raised:
        check_tracing_environment(environ)
    assert raised.value.code is ErrorCode.INVALID_REQUEST
    assert "PROTOCOL" in raised.value.message


def test_http_protobuf_is_accepted() -> None:
    """The traces-specific setting wins over the general one."""
    check_tracing_environment(
        {
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        }
    )
    check_tracing_environment({})
