"""Traces: one cross-shard transfer is one trace from the HTTP route to the posting SQL.

The API and the worker here are this module's own, with tracing on and a task queue of
their own; the spans go to an in-memory exporter behind the process's global tracer
provider (OpenTelemetry lets a process set that once, so it is set on first use and its
recording switched off after the module).
"""

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from functools import partial

import httpx
import pytest
import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind, TraceState
from opentelemetry.util.types import Attributes
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.testing import WorkflowEnvironment
from ulid import ULID

from api.app import ApiConfig, create_app
from ledger.limits import REQUEST_ID_LENGTH_MAX, SAGA_BATCH_SIZE_MAX
from shards.cluster import ShardCluster
from tests.conftest import served
from tests.integration.cross_shard import (
    CrossPair,
    fund,
    open_cross_pair,
    reserve_only,
    settled,
    sweep_now,
    tenant_of,
)
from tests.integration.helpers import transfer
from workflows.handover.connect import open_settlement
from workflows.worker import build_worker

pytestmark = pytest.mark.usefixtures("books")

INCOMING_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{INCOMING_TRACE_ID}-{INCOMING_SPAN_ID}-01"


class _Switch(Sampler):
    """Samples like the SDK's default while on; drops everything once the module is done,
    so later tests in the process do not pay for recording spans."""

    on = True

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if not self.on:
            return SamplingResult(Decision.DROP)
        return ParentBased(ALWAYS_ON).should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "switch"


class _Recorder(SpanProcessor):
    """Hands ended spans to the in-memory exporter while the module runs."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.on = True

    def on_end(self, span: ReadableSpan) -> None:
        if self.on:
            self.exporter.export((span,))


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended while this module runs."""
    switch = _Switch()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(sampler=switch)
        trace.set_tracer_provider(provider)
    recorder = _Recorder()
    provider.add_span_processor(recorder)
    try:
        yield recorder.exporter
    finally:
        switch.on = recorder.on = False
        recorder.exporter.clear()


@dataclass(frozen=True)
class TracedStack:
    """An API and a worker with tracing on, settling on a task queue of their own."""

    api: httpx.AsyncClient
    temporal: Client
    task_queue: str


@pytest.fixture
async def traced(
    spans: InMemorySpanExporter,
    shard_dsns: list[str],
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
    worker_cluster: ShardCluster,
    tenant_key: str,
) -> AsyncIterator[TracedStack]:
    """The traced API (batches close after 200 ms, so concurrent transfers share a saga)
    and its traced worker."""
    del spans  # installs the tracer provider first
    task_queue = f"traced-{ULID()}"
    client = Client(**{**temporal_env.client.config(), "interceptors": [TracingInterceptor()]})
    config = ApiConfig(
        shard_dsns=shard_dsns,
        pool_size_max=4,
        saga_sync_wait_s=10.0,
        tracing=True,
        settlement=partial(
            open_settlement,
            temporal_address=temporal_address,
            namespace="default",
            task_queue=task_queue,
            batch_window_ms=200,
            batch_size_max=SAGA_BATCH_SIZE_MAX,
            interceptors=[TracingInterceptor()],
        ),
    )
    worker = build_worker(client=client, cluster=worker_cluster, task_queue=task_queue)
    async with worker, served(create_app(config), tenant_key) as api:
        yield TracedStack(api=api, temporal=client, task_queue=task_queue)


async def trace_of(
    spans: InMemorySpanExporter, trace_id: int, *, names: set[str], timeout_s: float = 10
) -> list[ReadableSpan]:
    """The spans of one trace, once every name in `names` has ended (the server span
    ends after its response is sent)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
        missing = names - {s.name for s in found}
        if not missing:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"spans never ended: {missing}"
        await asyncio.sleep(0.05)


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The names of a span's ancestors within its trace, nearest first."""
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


def posting_spans(found: list[ReadableSpan]) -> dict[tuple[int, str], ReadableSpan]:
    """`post_batch` spans by (shard, movement)."""
    posted = {}
    for span in found:
        if span.name == "post_batch":
            attributes = span.attributes or {}
            for movement in attributes["ledgerflow.movements"]:  # type: ignore[union-attr]
                posted[(attributes["ledgerflow.shard"], movement)] = span
    return posted


def reserve_of(spans: InMemorySpanExporter, server: ReadableSpan) -> ReadableSpan | None:
    """The `posting batch` that reserved a request's transfer: in the request's trace when it
    carried only that request, else a root linked to the request's server span."""
    for span in spans.get_finished_spans():
        if span.name != "posting batch":
            continue
        child = span.parent is not None and span.parent.span_id == server.context.span_id
        linked = any(link.context.span_id == server.context.span_id for link in span.links)
        if child or linked:
            return span
    return None


async def funded_pair(api: httpx.AsyncClient) -> CrossPair:
    """A source account holding 1,000 and a target on another shard."""
    pair = await open_cross_pair(api)
    await fund(api, pair, 1_000)
    return pair


async def test_one_cross_shard_transfer_is_one_trace_from_the_route_to_the_sql(
    traced: TracedStack, spans: InMemorySpanExporter
) -> None:
    """The caller's traceparent and X-Request-ID are honoured, and its trace holds the
    server span, the hand-over, the saga's start, run and activities, and the posting SQL
    on both shards, each span below the server span; the log line carries the trace id."""
    pair = await funded_pair(traced.api)
    source, target = pair.source["shard"], pair.target["shard"]
    with structlog.testing.capture_logs() as logs:
        response = await traced.api.post(
            "/v1/transfers",
            json={
                "debit_account_id": pair.source["id"],
                "credit_account_id": pair.target["id"],
                "amount": 250,
                "currency": "USD",
            },
            headers={"traceparent": TRACEPARENT, "X-Request-ID": "checkout-7f3a:attempt-1"},
        )
        assert response.status_code == 201, response.text
        found = await trace_of(
            spans, int(INCOMING_TRACE_ID, 16), names={"POST /v1/transfers", "settle_batch"}
        )
    assert response.json()["cross_shard"] is True
    assert response.headers["request-id"] == "checkout-7f3a:attempt-1"
    assert response.headers["x-request-id"] == "checkout-7f3a:attempt-1"

    by_id = {s.context.span_id: s for s in found}
    (server,) = [s for s in found if s.name == "POST /v1/transfers"]
    assert server.kind is SpanKind.SERVER
    assert server.parent is not None
    assert server.parent.span_id == int(INCOMING_SPAN_ID, 16)
    assert server.attributes is not None
    assert server.attributes["http.route"] == "/v1/transfers"
    assert server.attributes["http.response.status_code"] == 201
    assert server.attributes["ledgerflow.request_id"] == "checkout-7f3a:attempt-1"
    assert server.attributes["ledgerflow.transfer_id"] == response.json()["id"]

    names = {s.name for s in found}
    assert {
        "posting batch",
        "hand_over",
        "settle_batch",
        "StartWorkflow:SettleCrossShardBatch",
        "RunWorkflow:SettleCrossShardBatch",
        "RunActivity:credit_funds",
        "RunActivity:post_holds",
    } <= names, names
    for span in found:
        if span is not server:
            assert "POST /v1/transfers" in ancestors(span, by_id), (span.name, names)

    posted = posting_spans(found)
    assert "RunActivity" not in str(ancestors(posted[(source, "reserve_funds")], by_id))
    assert ancestors(posted[(target, "credit_funds")], by_id)[0] == "RunActivity:credit_funds"
    assert ancestors(posted[(source, "post_hold")], by_id)[0] == "RunActivity:post_holds"
    assert ancestors(by_id[server.context.span_id], by_id) == []
    settle = next(s for s in found if s.name == "settle_batch")
    assert settle.attributes is not None
    assert settle.attributes["ledgerflow.workflow_id"] == response.json()["saga"]["workflow_id"]

    (line,) = [e for e in logs if e.get("request_id") == "checkout-7f3a:attempt-1"]
    assert line["trace_id"] == INCOMING_TRACE_ID
    assert line["route"] == "/v1/transfers"
    assert line["status"] == 201


async def test_a_batch_saga_links_the_trace_of_every_transfer_it_settles(
    traced: TracedStack, spans: InMemorySpanExporter
) -> None:
    """Transfers handed over together share one saga: its trace starts at a `settle_batch`
    root linked to each transfer's hand-over, and holds the saga's spans; each transfer's
    own trace keeps its route and leads to its reserve (which, group-committed with the
    others', may be a batch of its own linked to each request)."""
    pair = await funded_pair(traced.api)
    responses = await asyncio.gather(
        *(transfer(traced.api, pair.source["id"], pair.target["id"], 10) for _ in range(3))
    )
    assert all(r.status_code == 201 for r in responses), [r.text for r in responses]
    assert len({r.json()["saga"]["workflow_id"] for r in responses}) == 1, "one saga expected"
    workflow_id = responses[0].json()["saga"]["workflow_id"]

    (settle,) = [
        s
        for s in spans.get_finished_spans()
        if s.name == "settle_batch"
        and (s.attributes or {}).get("ledgerflow.workflow_id") == workflow_id
    ]
    assert settle.parent is None, "a batch of several transfers is a trace of its own"
    hand_overs = {link.context.span_id: link.context.trace_id for link in settle.links}
    assert len(hand_overs) == 3
    for span_id, trace_id in hand_overs.items():
        request_trace = await trace_of(spans, trace_id, names={"POST /v1/transfers"})
        by_id = {s.context.span_id: s for s in request_trace}
        assert by_id[span_id].name == "hand_over"
        assert (by_id[span_id].attributes or {})["ledgerflow.workflow_id"] == workflow_id
        assert "POST /v1/transfers" in ancestors(by_id[span_id], by_id)
        (server,) = [s for s in request_trace if s.name == "POST /v1/transfers"]
        assert reserve_of(spans, server) is not None, "the reserve is in or linked from the trace"
    saga = await trace_of(
        spans, settle.context.trace_id, names={"RunActivity:credit_funds", "RunActivity:post_holds"}
    )
    posted = posting_spans(saga)
    assert (pair.target["shard"], "credit_funds") in posted
    finished = posted[(pair.source["shard"], "post_hold")].attributes or {}
    assert finished["ledgerflow.batch.size"] == 3


@pytest.mark.parametrize(
    "incoming",
    ["", "has space", "x" * (REQUEST_ID_LENGTH_MAX + 1), 'quote"d', "new\\line"],
)
async def test_a_malformed_request_id_is_replaced_by_ours(
    api: httpx.AsyncClient, incoming: str
) -> None:
    """An X-Request-ID that is empty, too long or holds characters unsafe to log is not
    used: the answer carries a new `req_` id and no echo."""
    response = await api.get("/v1/accounts", headers={"X-Request-ID": incoming})
    assert response.status_code == 200
    assert response.headers["request-id"].startswith("req_")
    assert "x-request-id" not in response.headers


async def test_a_well_formed_request_id_is_used_without_tracing(api: httpx.AsyncClient) -> None:
    """The request id is honoured whether or not the server traces (the session API does
    not), up to `REQUEST_ID_LENGTH_MAX` characters."""
    incoming = "a" * REQUEST_ID_LENGTH_MAX
    response = await api.get("/v1/accounts", headers={"X-Request-ID": incoming})
    assert response.headers["request-id"] == incoming
    assert response.headers["x-request-id"] == incoming


async def test_a_saga_the_sweeper_starts_is_traced_under_the_sweep(
    traced: TracedStack, spans: InMemorySpanExporter, cluster: ShardCluster, tenant_key: str
) -> None:
    """A reserve whose hand-over never happened is settled by the sweep: the sweep's trace
    holds its own workflow and activity and the saga it starts, down to the credit on the
    destination shard."""
    pair = await funded_pair(traced.api)
    reserved = await reserve_only(cluster, pair, 75, tenant_id=await tenant_of(cluster, tenant_key))
    sweep_id = f"traced-sweep-{ULID()}"
    outcome = await sweep_now(traced.temporal, traced.task_queue, workflow_id=sweep_id)
    assert outcome.started >= 1
    (start,) = [
        s
        for s in spans.get_finished_spans()
        if s.name == "StartWorkflow:SweepSagaOutbox"
        and (s.attributes or {}).get("temporalWorkflowID") == sweep_id
    ]
    found = await trace_of(
        spans,
        start.context.trace_id,
        names={
            "RunWorkflow:SweepSagaOutbox",
            "RunActivity:sweep_outbox",
            "StartWorkflow:SettleCrossShardBatch",
            "RunActivity:credit_funds",
            "RunActivity:post_holds",
        },
        timeout_s=30,
    )
    credited = posting_spans(found)[(pair.target["shard"], "credit_funds")]
    assert credited.attributes is not None
    assert credited.attributes["ledgerflow.batch.size"] >= 1  # type: ignore[operator]
    (row,) = [t for t in await settled(traced.api) if t["id"] == reserved.transfer_id]
    assert row["status"] == "posted"
