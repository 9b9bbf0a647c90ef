"""`SettleAtomicBatch`: the transfers of an atomic batch, all posted or none.

The legs may debit accounts on several shards and credit accounts on several others (or
the same ones). The workflow is a two-phase commit over the shards, each phase one
transaction per shard for all of its legs:

1. **reserve** every leg on its source shard (a hold, as a cross-shard transfer's);
2. when every leg is reserved, **prepare** every credit on its destination shard: a
   pending credit, which checks the destination like a credit does (exists, currency,
   not frozen or closed) but is not available to spend yet;
3. when every credit is prepared, the batch is decided: **post** the pending credits, then
   the holds; both retry without limit and are never compensated;
4. when any leg was refused at 1 or 2, **void** the prepared credits and **release** the
   holds: the refused leg fails with its own code, every other leg with
   `batch_leg_refused`, and no money moved.

Nobody sees a leg's money before the batch is decided: the holds take it out of the
debit accounts' available balance, and the pending credits do not add it to the credit
accounts' until they are posted. Credits are posted before holds, so reconciliation,
which reads every post of a hold before every credit, never finds a post without its
credit.

The workflow is started before anything moves, with every leg in its input and an id
derived from the request (`atomic_workflow_id`), so a retried request finds it; the
reserve writes each leg's outbox row claimed by this workflow in its own transaction, so
the outbox sweep never settles a leg alone (`workflows.atomic.recovery`). Like the
settlement saga, it runs its steps as local activities outside the sandbox, calls
nothing but `workflow.*` and its activities, and is replayed from recorded histories in
tests/replay.
"""

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from ledger import limits
from ledger.errors import ErrorCode
from ledger.posting import Movement
from ledger.transfers import SagaStep
from workflows import search_attributes as attrs
from workflows.atomic.activities import AtomicActivities
from workflows.atomic.inputs import (
    AtomicBatch,
    AtomicLeg,
    AtomicOutcome,
    AtomicStepInput,
    AtomicStepOutcome,
    LegRefusal,
)
from workflows.settlement.inputs import TransferState
from workflows.settlement.workflow import CREDIT_RETRY, FINISH_RETRY

_START_TO_CLOSE = timedelta(seconds=limits.ACTIVITY_START_TO_CLOSE_S)
_LOCAL_RETRY_THRESHOLD = timedelta(seconds=limits.LOCAL_RETRY_THRESHOLD_S)
_REFUSAL_CODES = frozenset(CREDIT_RETRY.non_retryable_error_types or ())

ShardOf = Callable[[AtomicLeg], int]


def _source(leg: AtomicLeg) -> int:
    return leg.source_shard


def _destination(leg: AtomicLeg) -> int:
    return leg.destination_shard


@workflow.defn(sandboxed=False)
class SettleAtomicBatch:
    """Reserve, prepare, then post every leg of an atomic batch, or release them all."""

    @workflow.init
    def __init__(self, batch: AtomicBatch) -> None:
        self._states: dict[str, TransferState] = {}

    @workflow.query
    def transfers(self) -> list[TransferState]:
        """Where each reserved leg is (a leg refused at its reserve has no transfer)."""
        return list(self._states.values())

    @workflow.run
    async def run(self, batch: AtomicBatch) -> AtomicOutcome:
        """Settle the batch; returns which legs were refused (none when it was posted)."""
        refusals = await self._try(batch, Movement.RESERVE_FUNDS, batch.legs, _source)
        reserved = [leg for leg in batch.legs if leg.id not in refusals]
        self._record(reserved, SagaStep.RESERVED)
        prepared: list[AtomicLeg] = []
        if not refusals:
            workflow.upsert_search_attributes([attrs.STEP.value_set("credit")])
            refusals = await self._try(batch, Movement.PREPARE_CREDIT, reserved, _destination)
            prepared = [leg for leg in reserved if leg.id not in refusals]
        if refusals:
            await self._undo(batch, reserved, prepared, refusals)
        else:
            await self._commit(batch, reserved)
        workflow.upsert_search_attributes(
            [attrs.STATUS.value_set("completed"), attrs.STEP.value_set("done")]
        )
        workflow.logger.info(
            "atomic batch of %d legs %s", len(batch.legs), "refused" if refusals else "posted"
        )
        return AtomicOutcome(
            batch_id=batch.batch_id,
            leg_ids=[leg.id for leg in batch.legs],
            reserved=[leg.id for leg in reserved],
            refusals=refusals,
        )

    async def _commit(self, batch: AtomicBatch, legs: list[AtomicLeg]) -> None:
        """Every leg was reserved and its credit prepared: post the credits, then the holds."""
        workflow.upsert_search_attributes([attrs.STEP.value_set("post")])
        await self._finish(batch, Movement.POST_CREDIT, legs, _destination, {})
        self._record(legs, SagaStep.CREDITED)
        await self._finish(batch, Movement.POST_HOLD, legs, _source, {})
        self._record(legs, SagaStep.POSTED)

    async def _undo(
        self,
        batch: AtomicBatch,
        reserved: list[AtomicLeg],
        prepared: list[AtomicLeg],
        refusals: dict[str, LegRefusal],
    ) -> None:
        """Some leg was refused: void the prepared credits and release every hold."""
        workflow.upsert_search_attributes([attrs.STEP.value_set("release")])
        others = str(ErrorCode.BATCH_LEG_REFUSED)
        codes = {
            leg.id: refusals[leg.id].code if leg.id in refusals else others for leg in batch.legs
        }
        await asyncio.gather(
            self._finish(batch, Movement.VOID_CREDIT, prepared, _destination, {}),
            self._finish(batch, Movement.RELEASE_HOLD, reserved, _source, codes),
        )
        self._record(reserved, SagaStep.RELEASED, codes)

    async def _try(
        self, batch: AtomicBatch, movement: Movement, legs: list[AtomicLeg], shard_of: ShardOf
    ) -> dict[str, LegRefusal]:
        """Run a step that may refuse on every shard at once; returns the refusals."""
        shards = sorted({shard_of(leg) for leg in legs})
        outcomes = await asyncio.gather(
            *(
                self._try_on(batch, movement, [g for g in legs if shard_of(g) == shard], shard)
                for shard in shards
            )
        )
        return {k: v for outcome in outcomes for k, v in outcome.items()}

    async def _try_on(
        self, batch: AtomicBatch, movement: Movement, legs: list[AtomicLeg], shard: int
    ) -> dict[str, LegRefusal]:
        try:
            outcome: AtomicStepOutcome = await workflow.execute_local_activity_method(
                AtomicActivities.try_atomic_step,
                AtomicStepInput(batch.batch_id, shard, str(movement), legs),
                start_to_close_timeout=_START_TO_CLOSE,
                retry_policy=CREDIT_RETRY,
                local_retry_threshold=_LOCAL_RETRY_THRESHOLD,
            )
        except (ActivityError, ApplicationError) as error:
            cause = error.cause if isinstance(error, ActivityError) else error
            if not isinstance(cause, ApplicationError) or cause.type not in _REFUSAL_CODES:
                raise
            # Refused as a whole, its one transaction wrote nothing: every leg is refused.
            workflow.logger.error("%s on shard %d refused: %s", movement, shard, cause)
            refusal = LegRefusal(str(cause.type), cause.message, None)
            return dict.fromkeys((leg.id for leg in legs), refusal)
        return outcome.refusals

    async def _finish(
        self,
        batch: AtomicBatch,
        movement: Movement,
        legs: list[AtomicLeg],
        shard_of: ShardOf,
        failure_codes: dict[str, str],
    ) -> None:
        """Run a step that must succeed on every shard at once; retries without limit."""
        shards = sorted({shard_of(leg) for leg in legs})
        await asyncio.gather(
            *(
                workflow.execute_local_activity_method(
                    AtomicActivities.finish_atomic_step,
                    AtomicStepInput(
                        batch.batch_id,
                        shard,
                        str(movement),
                        [leg for leg in legs if shard_of(leg) == shard],
                        {k: v for k, v in failure_codes.items() if k in {leg.id for leg in legs}},
                    ),
                    start_to_close_timeout=_START_TO_CLOSE,
                    retry_policy=FINISH_RETRY,
                    local_retry_threshold=_LOCAL_RETRY_THRESHOLD,
                )
                for shard in shards
            )
        )

    def _record(
        self, legs: list[AtomicLeg], step: SagaStep, failure_codes: dict[str, str] | None = None
    ) -> None:
        codes = failure_codes or {}
        for leg in legs:
            self._states[leg.id] = TransferState(leg.id, step, codes.get(leg.id))
