"""Prometheus metrics and one structured log line per request.

Routes are labelled by their template (`/v1/accounts/{account_id}`), never the raw path,
so label cardinality stays bounded; no header, key or body is ever logged (but a
well-formed `X-Request-ID`, which is the request id). The log line carries the trace id
when the request is traced.
"""

import asyncio
import re
import time
from collections.abc import Iterator
from functools import partial

import orjson
import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, format_trace_id
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from ulid import ULID

from api.errors import error_body
from api.maintenance import ShardHealth
from ledger.errors import ErrorCode
from ledger.limits import REQUEST_BODY_BYTES_MAX, REQUEST_ID_LENGTH_MAX
from shards.cluster import ShardCluster
from workflows.handover.dispatcher import DeferredBecause

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
        """Record one saga started (`workflows.handover.dispatcher.SettlementObserver`)."""
        self.saga_batch_size.labels(str(source_shard)).observe(transfers)

    def saga_finished(self, source_shard: int, seconds: float) -> None:
        """Record one saga whose result the dispatcher read."""
        self.saga_seconds.labels(str(source_shard)).observe(seconds)

    def handover_deferred(self, because: DeferredBecause, transfers: int) -> None:
        """Record transfers the dispatcher could not hand over (the sweeper will)."""
        self.saga_handovers_deferred.labels(because).inc(transfers)

    def watch_shards(self, cluster: ShardCluster, health: ShardHealth) -> None:
        """Export pool usage and health per shard, read at scrape time."""
        self.registry.register(_ShardCollector(cluster, health))


class _ShardCollector(Collector):
    def __init__(self, cluster: ShardCluster, health: ShardHealth) -> None:
        self._cluster = cluster
        self._health = health

    def collect(self) -> Iterator[GaugeMetricFamily]:
        in_use = GaugeMetricFamily(
            "ledgerflow_pool_connections_in_use", "Connections in use per shard", labels=["shard"]
        )
        size = GaugeMetricFamily(
            "ledgerflow_pool_connections", "Open connections per shard", labels=["shard"]
        )
        up = GaugeMetricFamily(
            "ledgerflow_shard_up",
            "1 when the shard answered this process's last probe, 0 when it did not",
            labels=["shard"],
        )
        for shard, used, total in self._cluster.pool_usage():
            in_use.add_metric([str(shard)], used)
            size.add_metric([str(shard)], total)
            up.add_metric([str(shard)], 1 if self._health.up[shard] else 0)
        yield in_use
        yield size
        yield up


class RequestMiddleware:
    """Request ids, the body size limit, metrics and the access log, as raw ASGI.

    The request id is the caller's `X-Request-ID` when it is well-formed (at most
    `REQUEST_ID_LENGTH_MAX` characters of `[A-Za-z0-9._:;=+/@-]`), else a new `req_<ulid>`;
    it is logged and answered in `request-id` (and echoed in `x-request-id` when the caller
    sent one). When the request is traced (FastAPI's server span, `ApiConfig.tracing`),
    the span carries the request id and the log line the trace id.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming_id = headers.get(b"x-request-id")
        request_id = _request_id(incoming_id)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("ledgerflow.request_id", request_id)
        started = time.perf_counter()
        status = 500
        extra = [(b"request-id", request_id.encode())]
        if incoming_id is not None and request_id.encode() == incoming_id:
            extra.append((b"x-request-id", incoming_id))
        try:
            status = await self._call(scope, receive, send, headers, extra)
        finally:
            self._record(scope, status, started, request_id, span)

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
        self, scope: Scope, status: int, started: float, request_id: str, span: Span
    ) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(template, method, str(status)).inc()
        self.metrics.request_seconds.labels(template, method).observe(elapsed)
        if template == "/v1/transfers" and method == "POST":
            self.metrics.transfer_seconds.labels(str(status)).observe(elapsed)
        span_context = span.get_span_context()
        state = scope.get("state") or {}
        log.info(
            "request",
            request_id=request_id,
            trace_id=format_trace_id(span_context.trace_id) if span_context.is_valid else None,
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


class _BodyTooLarge(BaseException):
    """Raised from `receive` past the size limit. Not an `Exception`: FastAPI turns any
    `Exception` raised while it reads a body into a 400, and a chunked body (which has no
    Content-Length to refuse it by) must be 413 like any other."""


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
