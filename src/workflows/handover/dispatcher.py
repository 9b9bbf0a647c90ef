"""The hand-over from the API to Temporal: reserved transfers gathered into batch sagas.

The API reserves a cross-shard transfer (which writes its outbox row in the same
transaction) and calls `SettlementDispatcher.hand_over`. The dispatcher gathers reserved
transfers per (source shard, currency), whatever their destinations:
- a batch closes when its window (`batch_window_ms`) is over and fewer than `in_flight_max`
  batches of that source are settling, or at once when it holds `batch_size_max` transfers.
  While sagas run, the next batch keeps gathering, so under load batches grow and Temporal
  sees a bounded number of workflows; under light load a batch holds one transfer;
- closing a batch claims its outbox rows on the source shard (one statement, which also
  records the workflow id on the transfers) and starts one `SettleCrossShardBatch` for the
  claimed rows, under an id derived from them;
- every caller of the batch waits, sharing one result poll per workflow, until the saga
  finishes or its own `wait_s` is over, then returns how the saga ended its transfer (or
  None, and the API reads the transfer's row).

Exactly once, without a gap: a row already claimed (an HTTP retry of the same request, or
the sweeper's work) is not claimed again; its caller waits on the workflow recorded for it.
Whatever fails after the reserve (this process, the shard, Temporal) leaves the row
unclaimed or claimed-but-not-started, and the sweeper (`workflows.sweep`) settles it.

Traces: each `hand_over` is a span in its request's trace, and closing a batch is a
`settle_batch` span (`shards.batching.batch_span`): the child of the one request it settles,
or a root linked to each request's span. Starting the workflow inside it carries its
context to the saga through the client's `TracingInterceptor`, when one is installed.
"""

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Literal, Protocol

import structlog
from opentelemetry import trace
from opentelemetry.trace import SpanContext
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from ledger import limits
from ledger.errors import ErrorCode, LedgerError
from ledger.posting import Movement
from shards import batching, outbox
from shards.batching import batch_span, caller_span
from shards.cluster import ShardCluster
from shards.outbox import OUTBOX_FAILURES
from shards.posting_types import PostingRequest
from shards.review import mark_review_started
from workflows.atomic.inputs import AtomicBatch, AtomicOutcome, is_atomic_workflow_id
from workflows.atomic.start import settle_atomic
from workflows.review.start import send_decision, start_review
from workflows.settlement.inputs import SettlementOutcome
from workflows.settlement.start import (
    batch_from_rows,
    is_unavailable,
    settlement_workflow_id_prefix,
    start_settlement,
)
from workflows.settlement.workflow import SettleCrossShardBatch

log = structlog.get_logger("ledgerflow.workflows")

_REVIEW_START_FAILURES: tuple[type[Exception], ...] = (RPCError, LedgerError, *OUTBOX_FAILURES)
"""What may stop the API from starting a review; the funds timers start it then."""

BatchKey = tuple[int, str]
"""(source shard, currency): what one batch settles."""

# A lazy client that cannot connect raises RuntimeError; a server that refuses, RPCError.
_TEMPORAL_ERRORS = (RPCError, RuntimeError, TimeoutError)


DeferredBecause = Literal["shard", "temporal"]
"""Why a hand-over was left to the sweeper: the source shard failed while claiming the
batch, or Temporal did not take its start."""


@dataclass(frozen=True, slots=True)
class SettledTransfer:
    """How the saga that settled one transfer ended it (`hand_over`'s answer)."""

    workflow_id: str
    failure_code: str | None
    """None when the transfer was posted; else why its hold was released."""


class SettlementObserver(Protocol):
    """What the dispatcher reports, for metrics (implemented by `api.observability`)."""

    def saga_started(self, source_shard: int, transfers: int) -> None:
        """A saga workflow was started for `transfers` claimed transfers."""
        ...

    def saga_finished(self, source_shard: int, seconds: float) -> None:
        """A saga started here completed `seconds` after its batch closed."""
        ...

    def handover_deferred(self, because: DeferredBecause, transfers: int) -> None:
        """`transfers` reserved transfers were left to the sweeper."""
        ...


class _Unobserved:
    """The observer of a dispatcher given none: it drops every report."""

    def saga_started(self, source_shard: int, transfers: int) -> None:
        pass

    def saga_finished(self, source_shard: int, seconds: float) -> None:
        pass

    def handover_deferred(self, because: DeferredBecause, transfers: int) -> None:
        pass


@dataclass(eq=False, slots=True)
class _Batch:
    """Transfers gathering for one saga, each with the span of the request that handed it
    over; `dispatched` maps each to the workflow settling it (None when nothing can be
    waited for: not started, or already finished)."""

    transfer_ids: dict[str, SpanContext | None]
    dispatched: asyncio.Future[dict[str, str | None]]
    window_over: bool = False


@dataclass(slots=True)
class _Source:
    open: _Batch | None = None
    in_flight: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class SettlementDispatcher:
    """Implements the API's `Settlement` protocol with batched saga workflows."""

    def __init__(
        self,
        cluster: ShardCluster,
        client: Client,
        *,
        task_queue: str,
        batch_window_ms: int,
        batch_size_max: int,
        in_flight_max: int = limits.SAGA_IN_FLIGHT_PER_SOURCE_DEFAULT,
        observer: SettlementObserver | None = None,
        review_timeout_s: float = limits.REVIEW_TIMEOUT_S_DEFAULT,
    ) -> None:
        assert 0 <= batch_window_ms <= limits.SAGA_BATCH_WINDOW_MS_MAX
        self._review_timeout_s = review_timeout_s
        assert 0 < batch_size_max <= limits.SAGA_BATCH_SIZE_MAX
        assert 0 < in_flight_max <= limits.SAGA_IN_FLIGHT_PER_SOURCE_MAX
        self._cluster = cluster
        self._client = client
        self._task_queue = task_queue
        self._window_s = batch_window_ms / 1000
        self._batch_size_max = batch_size_max
        self._in_flight_max = in_flight_max
        self._observer: SettlementObserver = observer if observer is not None else _Unobserved()
        self._sources: dict[BatchKey, _Source] = defaultdict(_Source)
        self._completions: dict[str, asyncio.Task[SettlementOutcome | None]] = {}
        self._undispatched: set[_Batch] = set()

    async def start_review(self, *, shard: int, transfer_id: str, held_at: datetime) -> None:
        """Start the review workflow of a transfer held for review and record it; a failure
        is logged and left to the funds timers, which start what the API could not."""
        try:
            workflow_id = await start_review(
                self._client,
                task_queue=self._task_queue,
                shard=shard,
                transfer_id=transfer_id,
                held_at=held_at,
                timeout_s=self._review_timeout_s,
            )
            await mark_review_started(
                self._cluster.shards[shard], transfer_id=transfer_id, workflow_id=workflow_id
            )
        except _REVIEW_START_FAILURES as error:
            log.warning(
                "review start deferred to the funds timers",
                transfer_id=transfer_id,
                error=repr(error),
            )

    async def decide_review(
        self,
        *,
        shard: int,
        transfer_id: str,
        held_at: datetime,
        approve: bool,
        request_key: str | None = None,
    ) -> str | None:
        """Send a decision to the transfer's review (started first if it was not); returns
        the transfer's status after, or None when the review had ended already.

        Raises:
            LedgerError(settlement_unavailable): Temporal refused or is unreachable.
        """
        try:
            await start_review(
                self._client,
                task_queue=self._task_queue,
                shard=shard,
                transfer_id=transfer_id,
                held_at=held_at,
                timeout_s=self._review_timeout_s,
            )
            return await send_decision(
                self._client, transfer_id=transfer_id, approve=approve, request_key=request_key
            )
        except RPCError as error:
            raise LedgerError(
                ErrorCode.SETTLEMENT_UNAVAILABLE, "the review could not be reached; retry"
            ) from error

    async def hand_over(self, reserved: PostingRequest, *, wait_s: float) -> SettledTransfer | None:
        """Make sure a saga settles `reserved`; wait up to `wait_s` for it to finish.

        Returns how the saga ended the transfer, or None when that is not known yet (still
        settling, or its workflow's result could not be read): the transfer row tells.
        Never raises for an infrastructure failure: the reserve is durable, and the sweeper
        settles whatever this call could not hand over.
        """
        assert reserved.movement is Movement.RESERVE_FUNDS
        assert 0 <= wait_s <= limits.SAGA_SYNC_WAIT_S_MAX
        with batching.span("hand_over") as span:
            if span.is_recording():
                span.set_attributes(
                    {
                        "ledgerflow.transfer_id": reserved.transfer_id,
                        "ledgerflow.source_shard": reserved.source_shard,
                        "ledgerflow.destination_shard": reserved.destination_shard,
                    }
                )
            return await self._hand_over(reserved, wait_s=wait_s)

    async def _hand_over(
        self, reserved: PostingRequest, *, wait_s: float
    ) -> SettledTransfer | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        batch = self._enqueue(reserved)
        try:
            settled_by = await asyncio.wait_for(asyncio.shield(batch.dispatched), wait_s)
            workflow_id = settled_by.get(reserved.transfer_id)
            if workflow_id is None:
                return None
            # The way from a transfer's trace to its saga's (which links back to this span).
            trace.get_current_span().set_attribute("ledgerflow.workflow_id", workflow_id)
            outcome = await asyncio.wait_for(
                asyncio.shield(self._completion(workflow_id)),
                max(deadline - loop.time(), 0),
            )
        except TimeoutError:
            return None  # still settling: the API answers 202 and the saga carries on
        if outcome is None:
            return None
        # A workflow that completed posted or released every transfer it was started with.
        return SettledTransfer(workflow_id, outcome.failure_codes.get(reserved.transfer_id))

    async def settle_atomic(self, batch: AtomicBatch, *, wait_s: float) -> AtomicOutcome | None:
        """Start the workflow of an atomic batch (`workflows.atomic`) and wait up to `wait_s`
        for its outcome; None while it still settles.

        Raises:
            LedgerError(settlement_unavailable): Temporal did not take the start.
        """
        assert 0 <= wait_s <= limits.SAGA_SYNC_WAIT_S_MAX
        return await settle_atomic(
            self._client, task_queue=self._task_queue, batch=batch, wait_s=wait_s
        )

    def _enqueue(self, reserved: PostingRequest) -> _Batch:
        key = (reserved.source_shard, reserved.currency)
        source = self._sources[key]
        batch = source.open
        if batch is None:
            batch = _Batch({}, asyncio.get_running_loop().create_future())
            batch.dispatched.add_done_callback(lambda _: self._undispatched.discard(batch))
            self._undispatched.add(batch)
            source.open = batch
            asyncio.get_running_loop().call_later(self._window_s, self._window_over, key, batch)
        batch.transfer_ids[reserved.transfer_id] = caller_span()
        if len(batch.transfer_ids) >= self._batch_size_max:
            self._dispatch(key)
        return batch

    def _window_over(self, key: BatchKey, batch: _Batch) -> None:
        batch.window_over = True
        self._dispatch_when_ready(key)

    def _dispatch_when_ready(self, key: BatchKey) -> None:
        """Close the gathering batch if its window is over and a slot is free."""
        source = self._sources[key]
        batch = source.open
        if batch is not None and batch.window_over and source.in_flight < self._in_flight_max:
            self._dispatch(key)

    def _dispatch(self, key: BatchKey) -> None:
        source = self._sources[key]
        batch = source.open
        assert batch is not None
        source.open = None
        source.in_flight += 1
        task = asyncio.create_task(self._settle(key, batch))
        source.tasks.add(task)
        task.add_done_callback(source.tasks.discard)

    async def _settle(self, key: BatchKey, batch: _Batch) -> None:
        """Claim and start one batch, then hold its in-flight slot until the saga is done."""
        source = self._sources[key]
        closed_at = asyncio.get_running_loop().time()
        try:
            with batch_span(
                "settle_batch",
                batch.transfer_ids.values(),
                attributes={
                    "ledgerflow.source_shard": key[0],
                    "ledgerflow.currency": key[1],
                    "ledgerflow.batch.size": len(batch.transfer_ids),
                },
            ):
                settled_by, started = await self._claim_and_start(key, list(batch.transfer_ids))
            batch.dispatched.set_result(settled_by)
            if started is not None:
                completion = self._completion(started)
                completion.add_done_callback(partial(self._finished, key[0], closed_at))
                await asyncio.wait_for(asyncio.shield(completion), limits.SAGA_IN_FLIGHT_WAIT_S)
        except TimeoutError:
            pass  # the saga is slow (a worker or shard is down); stop counting it
        finally:
            if not batch.dispatched.done():
                batch.dispatched.set_result({})
            source.in_flight -= 1
            self._dispatch_when_ready(key)

    async def _claim_and_start(
        self, key: BatchKey, transfer_ids: list[str]
    ) -> tuple[dict[str, str | None], str | None]:
        """Returns (transfer id -> workflow settling it, the workflow started here if any)."""
        shard = key[0]
        source = self._cluster.shards[shard]
        try:
            workflow_id, claimed = await outbox.claim(
                source,
                transfer_ids=transfer_ids,
                workflow_id_prefix=settlement_workflow_id_prefix(shard),
            )
            claimed_ids = {r.transfer_id for r in claimed}
            others = [t for t in transfer_ids if t not in claimed_ids]
            settled_by = await outbox.recorded_workflows(source, others) if others else {}
            # A leg of an atomic batch (a single request under an item's key) is settled by
            # that batch's workflow, whose result is not a settlement's: its row tells.
            settled_by = {
                t: None if w is not None and is_atomic_workflow_id(w) else w
                for t, w in settled_by.items()
            }
        except OUTBOX_FAILURES as error:
            log.warning("hand-over deferred to the sweeper", shard=shard, error=str(error))
            self._observer.handover_deferred("shard", len(transfer_ids))
            return {}, None
        if workflow_id is None:
            return settled_by, None
        batch = batch_from_rows(workflow_id, claimed)
        try:
            await start_settlement(self._client, task_queue=self._task_queue, batch=batch)
        except _TEMPORAL_ERRORS as error:
            # The rows stay claimed under `workflow_id`; the sweeper starts that very id.
            refused = isinstance(error, RPCError) and not is_unavailable(error)
            (log.error if refused else log.warning)(
                "settlement start refused" if refused else "settlement start deferred",
                workflow_id=workflow_id,
                error=str(error),
            )
            self._observer.handover_deferred("temporal", len(claimed))
            return settled_by, None
        self._observer.saga_started(shard, len(claimed))
        trace.get_current_span().set_attribute("ledgerflow.workflow_id", workflow_id)
        settled_by.update(dict.fromkeys(claimed_ids, workflow_id))
        return settled_by, workflow_id

    def _finished(
        self, shard: int, closed_at: float, completion: asyncio.Task[SettlementOutcome | None]
    ) -> None:
        """Report a saga whose result this process read (within `SAGA_SYNC_WAIT_S_MAX`)."""
        if completion.cancelled() or completion.exception() is not None:
            return
        if completion.result() is not None:
            elapsed = asyncio.get_running_loop().time() - closed_at
            self._observer.saga_finished(shard, elapsed)

    def _completion(self, workflow_id: str) -> asyncio.Task[SettlementOutcome | None]:
        """One shared wait for a workflow's result, however many callers wait on it."""
        task = self._completions.get(workflow_id)
        if task is None:
            task = asyncio.create_task(self._await_result(workflow_id))
            self._completions[workflow_id] = task
            task.add_done_callback(lambda _: self._completions.pop(workflow_id, None))
        return task

    async def _await_result(self, workflow_id: str) -> SettlementOutcome | None:
        handle = self._client.get_workflow_handle_for(SettleCrossShardBatch.run, workflow_id)
        try:
            return await asyncio.wait_for(handle.result(), limits.SAGA_SYNC_WAIT_S_MAX)
        except (*_TEMPORAL_ERRORS, WorkflowFailureError) as error:
            log.info("stopped waiting for settlement", workflow_id=workflow_id, error=str(error))
            return None

    async def close(self) -> None:
        """Claim and start every gathering batch now, then stop waiting for results.

        Whatever does not make it in time stays in the outbox for the sweeper.
        """
        for key, source in self._sources.items():
            if source.open is not None:
                self._dispatch(key)
        if self._undispatched:
            await asyncio.wait(
                [b.dispatched for b in self._undispatched],
                timeout=limits.TEMPORAL_RPC_TIMEOUT_S * 2,
            )
        tasks = [t for source in self._sources.values() for t in source.tasks]
        for task in [*tasks, *self._completions.values()]:
            task.cancel()
        await asyncio.gather(*tasks, *self._completions.values(), return_exceptions=True)
