"""Batching per shard: many concurrent callers share one round trip and one commit.

Callers queue work per shard; while a batch runs, the next one gathers. Under light load a
batch holds one item and adds no latency; under heavy load one statement (and one WAL
flush) serves many callers. The postings (`shards.group_commit`) and the idempotency
records (`shards.idempotency`) both go through this.

Spans for such work are here too (`batch_span`, and `span` for the work of one caller).
Spans come from the process's global OpenTelemetry tracer provider. Without one (the
default: `ledgerflow.tracing` installs one only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set),
`span` and `batch_span` start nothing at all: even OpenTelemetry's no-op span costs about
10 µs of CPU on the 2-core machine of the README's figures (making it current and restoring
the context), and a request's whole path through the API about 1.3 ms, with up to five such
spans on it.

One posting transaction or one saga serves many requests, each with its own trace. A span
for such work is the child of its caller's span when it serves one caller (the usual case
under light load, so one trace shows a request from the route down to the SQL), and
otherwise a new root linked to every caller's span, so each request's trace leads to the
batch that served it and the batch to all its requests.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Generic, TypeVar

import structlog
from opentelemetry import context, trace
from opentelemetry.trace import Link, Span, SpanContext, SpanKind
from opentelemetry.util.types import Attributes

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import BATCH_QUEUE_SIZE_MAX
from shards.cluster import SHARD_FAILURES, ShardCluster
from shards.db import Connection

log = structlog.get_logger("ledgerflow.shards")

Item = TypeVar("Item")
Result = TypeVar("Result")

BatchRunner = Callable[[Connection, int, Sequence[Item]], Awaitable[list[Result]]]
"""Runs one batch on a connection to a shard: one result per item, in order. A result
that is a `LedgerError` is raised to that item's caller alone."""

BatchRecovery = Callable[[Connection, int, Sequence[Item]], Awaitable[list[Result] | None]]
"""After a batch failed with a shard failure, finds out on a fresh connection whether it
was written after all: its results if so, None if it certainly was not."""

BatchObserver = Callable[[int, int, float], None]
"""Called with (shard, batch size, seconds) after every batch that ran, for metrics."""

_Queued = tuple[Item, asyncio.Future[Result], SpanContext | None]
"""An item, the future its caller awaits, and the caller's span (for the batch's span)."""


class ShardBatcher(Generic[Item, Result]):
    """Queues items per shard and runs them in batches of at most `batch_size_max`."""

    def __init__(
        self,
        cluster: ShardCluster,
        run: BatchRunner[Item, Result],
        *,
        recover: BatchRecovery[Item, Result] | None = None,
        what: str,
        batch_size_max: int,
        flushers_per_shard: int = 2,
        observer: BatchObserver | None = None,
        queue_size_max: int = BATCH_QUEUE_SIZE_MAX,
    ) -> None:
        assert 0 < batch_size_max <= queue_size_max
        assert 1 <= flushers_per_shard <= 8
        self._cluster = cluster
        self._run = run
        self._recover = recover
        self._what = what
        self._batch_size_max = batch_size_max
        self._queue_size_max = queue_size_max
        self._flushers_max = flushers_per_shard
        self._observer = observer
        count = len(cluster.shards)
        self._queues: list[deque[_Queued[Item, Result]]] = [deque() for _ in range(count)]
        self._flushers = [0] * count
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, shard: int, item: Item) -> Result:
        """Run `item` on `shard` as part of the next batch.

        Raises:
            LedgerError(shard_unavailable): the shard failed, or `queue_size_max` items
                already wait for it. What a failed batch wrote is the runner's to say: a
                posting batch is one transaction and wrote nothing.
            LedgerError: whatever the runner refused this item with.
        """
        if len(self._queues[shard]) >= self._queue_size_max:
            # Shed load at the door: the backlog would only grow while the shard is slow,
            # and every queued caller would time out anyway.
            raise LedgerError(
                ErrorCode.SHARD_UNAVAILABLE, f"shard {shard} is overloaded; retry shortly"
            )
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queues[shard].append((item, future, caller_span()))
        if self._flushers[shard] < self._flushers_max:
            self._flushers[shard] += 1
            task = asyncio.create_task(self._drain(shard))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, shard: int) -> None:
        queue = self._queues[shard]
        try:
            while queue:
                count = min(len(queue), self._batch_size_max)
                await self._run_batch(shard, [queue.popleft() for _ in range(count)])
        finally:
            self._flushers[shard] -= 1

    async def _run_batch(self, shard: int, batch: list[_Queued[Item, Result]]) -> None:
        """Run one batch and hand each caller its result.

        A batch that raises wrote nothing (a posting batch is one transaction, an idempotency
        batch writes nothing that cannot be run again), so when it raises something other
        than a shard failure, that is most likely one item the runner cannot take: each item
        then runs on its own, and only the item that raises again fails, with a 500.
        """
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with batch_span(
                f"{self._what} batch",
                (caller for _, _, caller in batch),
                attributes={"ledgerflow.shard": shard, "ledgerflow.batch.size": len(batch)},
            ):
                async with self._cluster.shards[shard].connection() as conn:
                    results = await self._run(conn, shard, [item for item, _, _ in batch])
        except SHARD_FAILURES as error:
            log.warning(
                f"{self._what} batch failed", shard=shard, size=len(batch), error=repr(error)
            )
            await self._after_failure(shard, batch, error)
            return
        except Exception as error:
            if len(batch) > 1:
                log.warning(
                    f"{self._what} batch raised; running its items one by one",
                    shard=shard,
                    size=len(batch),
                    error=repr(error),
                )
                await self._run_one_by_one(shard, batch)
                return
            # A bug, not the shard: the caller gets the error (a 500), and the queue keeps
            # draining rather than leaving everyone behind it waiting.
            log.exception(f"{self._what} item raised", shard=shard)
            _fail_all(batch, error)
            return
        except BaseException:
            for _, future, _ in batch:
                future.cancel()
            raise
        if self._observer is not None:
            self._observer(shard, len(batch), loop.time() - started)
        _hand_out(batch, results)

    async def _after_failure(
        self, shard: int, batch: list[_Queued[Item, Result]], error: BaseException
    ) -> None:
        """Answer the callers of a batch the shard failed: with its results when recovery
        shows it was written after all, else with `shard_unavailable`.

        A shard that did not answer in time (a hung server, a network partition) would keep
        a recovery probe waiting as long again, so its callers learn at once that the outcome
        is unknown; a retry under the same key applies the request at most once.

        The database's own words stay in the log: they may name tables, queries or hosts,
        which are none of a client's business.
        """
        if self._recover is not None:
            if isinstance(error, TimeoutError):
                _fail_all(batch, _unknown_outcome(shard))
                return
            try:
                async with self._cluster.shards[shard].connection() as conn:
                    results = await self._recover(conn, shard, [item for item, _, _ in batch])
            except SHARD_FAILURES as probe_error:
                log.warning(
                    f"{self._what} batch outcome unknown", shard=shard, error=repr(probe_error)
                )
                _fail_all(batch, _unknown_outcome(shard))
                return
            if results is not None:
                log.warning(f"{self._what} batch had committed", shard=shard, size=len(batch))
                _hand_out(batch, results)
                return
        _fail_all(
            batch,
            LedgerError(ErrorCode.SHARD_UNAVAILABLE, f"shard {shard} is unavailable; retry"),
        )

    async def _run_one_by_one(self, shard: int, batch: list[_Queued[Item, Result]]) -> None:
        try:
            for one in batch:
                await self._run_batch(shard, [one])
        except BaseException:
            for _, future, _ in batch:
                future.cancel()
            raise

    async def close(self) -> None:
        """Wait for queued batches to finish."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _hand_out(batch: Sequence[_Queued[Any, Result]], results: Sequence[Result]) -> None:
    for (_, future, _), result in zip(batch, results, strict=True):
        if future.done():
            continue
        if isinstance(result, LedgerError):
            future.set_exception(result)
        else:
            future.set_result(result)


def _unknown_outcome(shard: int) -> LedgerError:
    return LedgerError(
        ErrorCode.SHARD_UNAVAILABLE,
        f"shard {shard} failed before it could say whether this request was applied; retry"
        " with the same Idempotency-Key, which applies it at most once",
        "Idempotency-Key",
    )


def _fail_all(batch: Sequence[_Queued[Any, Any]], error: BaseException) -> None:
    for _, future, _ in batch:
        if not future.done():
            future.set_exception(error)


TRACER = trace.get_tracer("ledgerflow")
"""The tracer of every span Ledgerflow's own code starts (resolved once a provider is set)."""

_UNTRACED: AbstractContextManager[Span] = nullcontext(trace.INVALID_SPAN)


def tracing_installed() -> bool:
    """Whether the process has a tracer provider; without one, no span is started."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL) -> AbstractContextManager[Span]:
    """A current span named `name`, or (without a tracer provider) a non-recording stand-in
    that costs nothing; set attributes only when it `is_recording()`."""
    if not tracing_installed():
        return _UNTRACED
    return TRACER.start_as_current_span(name, kind=kind)


def caller_span() -> SpanContext | None:
    """The current span's context, to link to or continue later; None when not traced."""
    span_context = trace.get_current_span().get_span_context()
    return span_context if span_context.is_valid else None


def batch_span(
    name: str,
    callers: Iterable[SpanContext | None],
    *,
    attributes: Attributes = None,
    kind: SpanKind = SpanKind.INTERNAL,
) -> AbstractContextManager[Span]:
    """A current span for one batch: the child of its one traced caller, or a new root
    linked to each of them (OpenTelemetry keeps the first 128 links by default); without a
    tracer provider, a stand-in as for `span`."""
    if not tracing_installed():
        return _UNTRACED
    return _batch_span(name, callers, attributes=attributes, kind=kind)


@contextmanager
def _batch_span(
    name: str, callers: Iterable[SpanContext | None], *, attributes: Attributes, kind: SpanKind
) -> Iterator[Span]:
    # One caller may hand over several items (a retry within one batch): count it once.
    traced = list({(c.trace_id, c.span_id): c for c in callers if c is not None}.values())
    if len(traced) == 1:
        parent = trace.set_span_in_context(trace.NonRecordingSpan(traced[0]))
        links: list[Link] = []
    else:
        # An empty context: the batch does not belong to whichever caller's task ran it.
        parent = context.Context()
        links = [Link(c) for c in traced]
    with TRACER.start_as_current_span(
        name, context=parent, kind=kind, links=links, attributes=attributes
    ) as started:
        yield started
