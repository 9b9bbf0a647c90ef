"""Prometheus metrics, one structured log line per request, and the request's server span.

Routes are labelled by their template (`/v1/accounts/{account_id}`), never the raw path,
so label cardinality stays bounded; no header, key or body is ever logged (but a
well-formed `X-Request-ID`, which is the request id). The log line carries the trace id
when the request is traced.
"""

import asyncio
import re
import time
from collections.abc import Iterator
from contextvars import Token
from functools import partial

import orjson
import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, StatusCode, format_trace_id
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from ulid import ULID

from api.errors import error_body
from ledger.errors import ErrorCode
from ledger.limits import REQUEST_BODY_BYTES_MAX, REQUEST_ID_LENGTH_MAX
from shards.cluster import ShardCluster
from shards.tracing import TRACER
from workflows.dispatch import DeferredBecause

log = structlog.get_logger("ledgerflow.api")


class Metrics:
    """The API's metrics, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        counter = partial(Counter, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        sizes = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
        by_shard = ["shard"]
        by_source = ["source_shard"]
        self.requests = counter(
            "ledgerflow_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
        )
        self.request_seconds = histogram(
            "ledgerflow_http_request_seconds",
            "HTTP request latency by route template",
            ["route", "method"],
        )
        self.transfer_seconds = histogram(
            "ledgerflow_transfer_seconds",
            "Latency of POST /v1/transfers by outcome status",
            ["status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.batch_size = histogram(
            "ledgerflow_posting_batch_size",
            "Postings per group-commit transaction, by shard",
            by_shard,
            buckets=sizes,
        )
        self.batch_seconds = histogram(
            "ledgerflow_posting_batch_seconds",
            "Duration of a group-commit transaction, by shard",
            by_shard,
        )
        self.idempotency_batch_size = histogram(
            "ledgerflow_idempotency_batch_size",
            "Idempotency-record claims, completions and releases per statement batch, by shard",
            by_shard,
            buckets=sizes,
        )
        self.saga_batch_size = histogram(
            "ledgerflow_saga_batch_size",
            "Cross-shard transfers per saga workflow this process started, by source shard",
            by_source,
            buckets=(1, 2, 4, 8, 16, 32, 48, 60),
        )
        self.saga_seconds = histogram(
            "ledgerflow_saga_seconds",
            "From a batch closing to its saga's result, for sagas this process started",
            by_source,
            buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.saga_handovers_deferred = counter(
            "ledgerflow_saga_handovers_deferred",
            "Reserved cross-shard transfers left to the outbox sweeper, by cause",
            ["because"],
        )
        self.loop_lag_seconds = histogram(
            "ledgerflow_event_loop_lag_seconds",
            "How late the event loop ran a timer: time a ready callback waits for the loop",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
        )

    async def probe_loop_lag(self, *, interval_s: float = 0.05) -> None:
        """Measure event-loop lag forever: a busy loop delays every database round trip,
        and with it every lock a posting transaction holds."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + interval_s
            await asyncio.sleep(interval_s)
            self.loop_lag_seconds.observe(max(loop.time() - due, 0.0))

    def observe_batch(self, shard: int, size: int, seconds: float) -> None:
        """Record one committed posting batch."""
        self.batch_size.labels(str(shard)).observe(size)
        self.batch_seconds.labels(str(shard)).observe(seconds)

    def observe_idempotency_batch(self, shard: int, size: int, seconds: float) -> None:
        """Record one batch of idempotency-record statements."""
        del seconds  # the request latency histogram already covers it
        self.idempotency_batch_size.labels(str(shard)).observe(size)

    def saga_started(self, source_shard: int, transfers: int) -> None:
        """Record one saga started (`workflows.dispatch.SettlementObserver`)."""
        self.saga_batch_size.labels(str(source_shard)).observe(transfers)

    def saga_finished(self, source_shard: int, seconds: float) -> None:
        """Record one saga whose result the dispatcher read."""
        self.saga_seconds.labels(str(source_shard)).observe(seconds)

    def handover_deferred(self, because: DeferredBecause, transfers: int) -> None:
        """Record transfers the dispatcher could not hand over (the sweeper will)."""
        self.saga_handovers_deferred.labels(because).inc(transfers)

    def watch_pools(self, cluster: ShardCluster) -> None:
        """Export pool usage per shard, read at scrape time."""
        self.registry.register(_PoolCollector(cluster))


class _PoolCollector(Collector):
    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_use = GaugeMetricFamily(
            "ledgerflow_pool_connections_in_use", "Connections in use per shard", labels=["shard"]
        )
        size = GaugeMetricFamily(
            "ledgerflow_pool_connections", "Open connections per shard", labels=["shard"]
        )
        for shard, used, total in self._cluster.pool_usage():
            in_use.add_metric([str(shard)], used)
            size.add_metric([str(shard)], total)
        yield in_use
        yield size


class RequestMiddleware:
    """Request ids, the body size limit, metrics, the access log and (with `tracing`) the
    request's server span, as raw ASGI.

    The request id is the caller's `X-Request-ID` when it is well-formed (at most
    `REQUEST_ID_LENGTH_MAX` characters of `[A-Za-z0-9._:;=+/@-]`), else a new `req_<ulid>`;
    it is logged and answered in `request-id` (and echoed in `x-request-id` when the caller
    sent one). The server span continues an incoming `traceparent`. It is written here
    rather than by OpenTelemetry's ASGI instrumentation, which costs about 0.2 ms of CPU
    per request even with tracing off (docs/observability.md): the API's CPU per request
    is its throughput bound.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, *, tracing: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.tracing = tracing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming_id = headers.get(b"x-request-id")
        request_id = _request_id(incoming_id)
        span, token = _start_server_span(scope, headers, request_id) if self.tracing else _UNTRACED
        started = time.perf_counter()
        status = 500
        extra = [(b"request-id", request_id.encode())]
        if incoming_id is not None and request_id.encode() == incoming_id:
            extra.append((b"x-request-id", incoming_id))
        try:
            status = await self._call(scope, receive, send, headers, extra)
        finally:
            self._record(scope, status, started, request_id, span)
            if token is not None:
                otel_context.detach(token)

    async def _call(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        extra: list[tuple[bytes, bytes]],
    ) -> int:
        """Run the app under the body size limit; returns the status answered."""
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > REQUEST_BODY_BYTES_MAX:
            await _too_large(send, extra)
            return 413
        received = 0
        status = 500

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > REQUEST_BODY_BYTES_MAX:
                    raise _BodyTooLarge
            return message

        async def tagged_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, limited_receive, tagged_send)
        except _BodyTooLarge:
            await _too_large(send, extra)
            return 413
        return status

    def _record(
        self, scope: Scope, status: int, started: float, request_id: str, span: Span | None
    ) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(template, method, str(status)).inc()
        self.metrics.request_seconds.labels(template, method).observe(elapsed)
        if template == "/v1/transfers" and method == "POST":
            self.metrics.transfer_seconds.labels(str(status)).observe(elapsed)
        trace_id = None
        if span is not None:
            _end_server_span(span, method, template, status)
            span_context = span.get_span_context()
            if span_context.is_valid:
                trace_id = format_trace_id(span_context.trace_id)
        state = scope.get("state") or {}
        log.info(
            "request",
            request_id=request_id,
            trace_id=trace_id,
            method=method,
            route=template,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
            tenant=state.get("tenant_id"),
        )


_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:;=+/@-]{1,%d}" % REQUEST_ID_LENGTH_MAX)


def _request_id(incoming: bytes | None) -> str:
    """The caller's request id when it is safe to log and echo, else a new one."""
    if incoming is not None and _REQUEST_ID.fullmatch(incoming):
        return incoming.decode("ascii")
    return f"req_{ULID()}"


class _HeaderGetter(Getter[dict[bytes, bytes]]):
    """Reads W3C trace context from ASGI's lower-case byte headers."""

    def get(self, carrier: dict[bytes, bytes], key: str) -> list[str] | None:
        """The header's value, if present."""
        value = carrier.get(key.encode("latin-1"))
        return None if value is None else [value.decode("latin-1")]

    def keys(self, carrier: dict[bytes, bytes]) -> list[str]:
        """Every header name."""
        return [key.decode("latin-1") for key in carrier]


_HEADERS = _HeaderGetter()


_UNTRACED: tuple[None, None] = (None, None)


def _start_server_span(
    scope: Scope, headers: dict[bytes, bytes], request_id: str
) -> tuple[Span, Token[otel_context.Context]]:
    """Start the request's server span, continuing the caller's `traceparent` (and baggage)
    if it sent one, and make it current; returns it and the token to detach it with.

    It is named by its method until the app has matched the route."""
    parent = propagate.extract(headers, getter=_HEADERS)
    span = TRACER.start_span(scope["method"], context=parent, kind=SpanKind.SERVER)
    if span.is_recording():
        span.set_attributes(
            {
                "http.request.method": scope["method"],
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
                "ledgerflow.request_id": request_id,
            }
        )
    return span, otel_context.attach(trace.set_span_in_context(span, parent))


def _end_server_span(span: Span, method: str, template: str, status: int) -> None:
    if span.is_recording():
        span.update_name(f"{method} {template}")
        span.set_attribute("http.route", template)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            # A server span is an error on 5xx only: a 4xx is the client's mistake.
            span.set_status(StatusCode.ERROR)
    span.end()


class _BodyTooLarge(Exception):
    pass


async def _too_large(send: Send, extra: list[tuple[bytes, bytes]]) -> None:
    body = orjson.dumps(
        error_body(
            ErrorCode.BODY_TOO_LARGE,
            f"request bodies are limited to {REQUEST_BODY_BYTES_MAX} bytes",
            None,
        )
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
