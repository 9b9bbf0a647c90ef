"""`SettleCrossShardBatch`: the cross-shard saga, one workflow per batch of transfers.

A batch holds transfers out of one source shard, in one currency. The reserve already
happened there (synchronously, in the API). The saga:
1. credits the transfers on their destination shards, one transaction per destination, side
   by side; a refusal is that transfer's result, the others are credited (a hold and a
   delayed credit are credited pending);
2. posts the reserves of the credited transfers, opens the credited holds (`pending`, still
   held) and releases (compensates) the reserves of the refused ones on the source shard,
   one transaction each.

Once a transfer is credited it is never compensated: post and release retry without limit,
with capped backoff, until the shard takes them. The workflow is deterministic (no clock but
`workflow.now()`, no I/O), so recorded histories under tests/replay/ replay in CI.

The steps run as local activities: each is one short Postgres transaction, so the worker
runs them inline and the whole saga usually completes in one workflow task (about ten
history events) instead of three workflow tasks and three activity round trips (about
twenty-five). Temporal's cost is per event and per task, so this is what lets one dev
server settle hundreds of transfers per second. Idempotency does not depend on Temporal:
if a worker dies before recording a step, the step runs again and its operation key
returns the first result. A step that keeps failing backs off on a durable timer after
`LOCAL_RETRY_THRESHOLD_S`, so the worker lets go of the saga (and can shut down) while,
say, a shard is down; the next worker resumes it.

The workflow runs outside the SDK's sandbox, as every workflow here does (the policy and
why: `workflows.worker.WORKFLOW_RUNNER`): it calls nothing but `workflow.*` and its own
activities and keeps no module state.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from ledger import limits
from ledger.errors import NON_RETRYABLE_CODES
from ledger.transfers import SagaStep, SettlementKind
from workflows import search_attributes as attrs
from workflows.settlement.activities import SettlementActivities
from workflows.settlement.inputs import (
    CreditFundsInput,
    CreditOutcome,
    FinishHoldsInput,
    SettlementBatch,
    SettlementOutcome,
    SettlementTransfer,
    TransferState,
)

_START_TO_CLOSE = timedelta(seconds=limits.ACTIVITY_START_TO_CLOSE_S)
_LOCAL_RETRY_THRESHOLD = timedelta(seconds=limits.LOCAL_RETRY_THRESHOLD_S)

CREDIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=limits.ACTIVITY_RETRY_INITIAL_S),
    backoff_coefficient=limits.ACTIVITY_RETRY_BACKOFF,
    maximum_interval=timedelta(seconds=limits.ACTIVITY_RETRY_INTERVAL_MAX_S),
    maximum_attempts=limits.CREDIT_ATTEMPTS_MAX,
    non_retryable_error_types=sorted(str(code) for code in NON_RETRYABLE_CODES),
)
"""Infrastructure errors retry with backoff; refusals are per-transfer results, and a
business error code that escapes the activity is not retried: the step's transfers are
then compensated like refused ones."""

_REFUSAL_CODES = frozenset(CREDIT_RETRY.non_retryable_error_types or ())

FINISH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=limits.ACTIVITY_RETRY_INITIAL_S),
    backoff_coefficient=limits.ACTIVITY_RETRY_BACKOFF,
    maximum_interval=timedelta(seconds=limits.ACTIVITY_RETRY_INTERVAL_MAX_S),
    maximum_attempts=0,
)
"""Post and release must eventually succeed: no attempt limit, nothing non-retryable."""


@workflow.defn
class SettleCrossShardBatch:
    """Credit, then post or release, a batch of reserved cross-shard transfers."""

    @workflow.init
    def __init__(self, batch: SettlementBatch) -> None:
        self._states = {t.id: TransferState(t.id, SagaStep.RESERVED) for t in batch.transfers}

    @workflow.query
    def transfers(self) -> list[TransferState]:
        """Where each transfer of the batch is."""
        return list(self._states.values())

    @workflow.run
    async def run(self, batch: SettlementBatch) -> SettlementOutcome:
        """Settle the batch; returns how many transfers were posted and released."""
        refusals = await self._credit(batch)
        credited = [t for t in batch.transfers if t.id not in refusals]
        refused = [t for t in batch.transfers if t.id in refusals]
        self._record(credited, SagaStep.CREDITED)
        self._record(refused, SagaStep.REFUSED, refusals)
        workflow.upsert_search_attributes([attrs.STEP.value_set(_finish_step(credited, refused))])
        # A hold stays held on the source once its destination shows the credit pending:
        # it is opened, not posted.
        opened = [t for t in credited if t.kind is SettlementKind.HOLD]
        posted = [t for t in credited if t.kind is not SettlementKind.HOLD]

        # These steps touch the source shard only; they run side by side.
        await asyncio.gather(
            self._finish(SettlementActivities.post_holds, batch, posted, {}),
            self._finish(SettlementActivities.release_holds, batch, refused, refusals),
            self._finish(SettlementActivities.open_holds, batch, opened, {}),
        )
        self._record(posted, SagaStep.POSTED)
        self._record(opened, SagaStep.HELD)
        self._record(refused, SagaStep.RELEASED, refusals)
        workflow.upsert_search_attributes(
            [attrs.STATUS.value_set("completed"), attrs.STEP.value_set("done")]
        )
        elapsed = workflow.now() - workflow.info().start_time
        workflow.logger.info(
            "settled %d transfers in %.3f s: %d posted, %d held, %d released",
            len(batch.transfers),
            elapsed.total_seconds(),
            len(posted),
            len(opened),
            len(refused),
        )
        # Opened holds count as posted: their credits went through (the recorded results of
        # earlier histories have no third count).
        return SettlementOutcome(
            posted=len(credited), released=len(refused), failure_codes=refusals
        )

    async def _credit(self, batch: SettlementBatch) -> dict[str, str]:
        """Credit on every destination shard at once; returns the refusals by transfer id."""
        refusals = await asyncio.gather(
            *(self._credit_on(batch, destination) for destination in batch.destination_shards)
        )
        return {k: v for refused in refusals for k, v in refused.items()}

    async def _credit_on(self, batch: SettlementBatch, destination: int) -> dict[str, str]:
        transfers = [t for t in batch.transfers if t.destination_shard == destination]
        try:
            outcome: CreditOutcome = await workflow.execute_local_activity_method(
                SettlementActivities.credit_funds,
                CreditFundsInput(
                    batch_id=batch.batch_id,
                    source_shard=batch.source_shard,
                    destination_shard=destination,
                    currency=batch.currency,
                    transfers=transfers,
                ),
                start_to_close_timeout=_START_TO_CLOSE,
                retry_policy=CREDIT_RETRY,
                local_retry_threshold=_LOCAL_RETRY_THRESHOLD,
            )
        except (ActivityError, ApplicationError) as error:
            # A failed local activity raises its ApplicationError itself, a regular one wraps
            # it in an ActivityError.
            cause = error.cause if isinstance(error, ActivityError) else error
            if not isinstance(cause, ApplicationError) or cause.type not in _REFUSAL_CODES:
                raise
            # The step was refused as a whole; its one transaction wrote nothing, so its
            # transfers are compensated like refused ones rather than left on hold.
            workflow.logger.error("credit on shard %d refused: %s", destination, cause)
            return dict.fromkeys((t.id for t in transfers), cause.type)
        return outcome.refusals

    async def _finish(
        self,
        step: Callable[[SettlementActivities, FinishHoldsInput], Awaitable[None]],
        batch: SettlementBatch,
        transfers: list[SettlementTransfer],
        failure_codes: dict[str, str],
    ) -> None:
        if not transfers:
            return
        await workflow.execute_local_activity_method(
            step,
            FinishHoldsInput(
                batch_id=batch.batch_id,
                source_shard=batch.source_shard,
                currency=batch.currency,
                transfers=transfers,
                failure_codes={
                    t.id: failure_codes[t.id] for t in transfers if t.id in failure_codes
                },
            ),
            start_to_close_timeout=_START_TO_CLOSE,
            retry_policy=FINISH_RETRY,
            local_retry_threshold=_LOCAL_RETRY_THRESHOLD,
        )

    def _record(
        self,
        transfers: list[SettlementTransfer],
        step: SagaStep,
        failure_codes: dict[str, str] | None = None,
    ) -> None:
        codes = failure_codes or {}
        for t in transfers:
            self._states[t.id] = TransferState(t.id, step, codes.get(t.id))


def _finish_step(credited: list[SettlementTransfer], refused: list[SettlementTransfer]) -> str:
    if credited and refused:
        return "post_and_release"
    return "post" if credited else "release"
