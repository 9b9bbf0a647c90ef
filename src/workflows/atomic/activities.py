"""The activities of atomic batches: each step is one `post_batch` on one shard.

Two kinds of step:
- `try_atomic_step` (reserve on a source shard, prepare a pending credit on a destination
  shard) may be refused; a refusal is a per-leg result, like the credit of a saga;
- `finish_atomic_step` (post or void a pending credit, post or release a hold) must
  succeed: a refusal is raised and retried until an operator mends its cause.

Every step is idempotent through its operation key: the leg's own key for the reserve,
`tr_...:prepare`, `:credit`, `:void`, `:post` and `:release` for the others, written by
`post_batch` in the same transaction as the balance change.
"""

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ledger.errors import ErrorCode, LedgerError
from ledger.ids import saga_operation_key
from ledger.limits import POSTING_BATCH_SIZE_MAX
from ledger.posting import Movement
from shards.posting_types import PostingRequest, PostingResult
from workflows.atomic.inputs import (
    AtomicLeg,
    AtomicStepInput,
    AtomicStepOutcome,
    LegRefusal,
)
from workflows.settlement.activities import SettlementActivities

_STEPS = {
    Movement.PREPARE_CREDIT: "prepare",
    Movement.POST_CREDIT: "credit",
    Movement.VOID_CREDIT: "void",
    Movement.POST_HOLD: "post",
    Movement.RELEASE_HOLD: "release",
}
_TRY = frozenset({Movement.RESERVE_FUNDS, Movement.PREPARE_CREDIT})
_FINISH = frozenset({Movement.POST_CREDIT, Movement.VOID_CREDIT, Movement.POST_HOLD})
_FINISH_OR_RELEASE = _FINISH | {Movement.RELEASE_HOLD}


def atomic_requests(step: AtomicStepInput) -> list[PostingRequest]:
    """The postings of one step: `step.movement` for each leg, on `step.shard`."""
    movement = Movement(step.movement)
    return [_request(movement, step, leg) for leg in step.legs]


def _request(movement: Movement, step: AtomicStepInput, leg: AtomicLeg) -> PostingRequest:
    opening = movement is Movement.RESERVE_FUNDS
    key = leg.operation_key if opening else saga_operation_key(leg.id, _STEPS[movement])
    return PostingRequest(
        operation_key=key,
        transfer_id=leg.id,
        tenant_id=leg.tenant_id,
        movement=movement,
        debit_account_id=leg.debit_account_id,
        credit_account_id=leg.credit_account_id,
        amount=leg.amount,
        currency=leg.currency,
        source_shard=leg.source_shard,
        destination_shard=leg.destination_shard,
        metadata=leg.metadata if opening else {},
        failure_code=step.failure_codes.get(leg.id),
        workflow_id=step.batch_id if opening else None,
        payee_refusal=_refusal(leg.payee_refusal) if opening else None,
    )


def _refusal(refusal: LegRefusal | None) -> LedgerError | None:
    if refusal is None:
        return None
    return LedgerError(ErrorCode(refusal.code), refusal.message, refusal.param)


class AtomicActivities(SettlementActivities):
    """The steps of `SettleAtomicBatch`; they share the saga's pools and its isolation of
    a leg that raises on its own."""

    async def _post_in_chunks(
        self, shard: int, requests: list[PostingRequest]
    ) -> tuple[list[PostingResult], dict[str, Exception]]:
        """Post a step's legs on one shard in transactions of at most
        `POSTING_BATCH_SIZE_MAX`: each leg is applied once under its own key, and the
        workflow decides on all the results, so one transaction per leg group is enough."""
        results: list[PostingResult] = []
        poisoned: dict[str, Exception] = {}
        for first in range(0, len(requests), POSTING_BATCH_SIZE_MAX):
            chunk = requests[first : first + POSTING_BATCH_SIZE_MAX]
            posted, raised = await self._post_isolating(shard, chunk)
            results.extend(posted)
            poisoned.update(raised)
        return results, poisoned

    @activity.defn(name="try_atomic_step")
    async def try_atomic_step(self, step: AtomicStepInput) -> AtomicStepOutcome:
        """Reserve (on a source shard) or prepare the credit (on a destination shard) of
        the legs, in one transaction per `POSTING_BATCH_SIZE_MAX` legs; returns the legs
        refused and why.

        A leg that raises on its own (a bug, a constraint on the shard) is refused with
        `settlement_failed` rather than retried for ever.

        Raises:
            ApplicationError: the posting code refused the step as a whole.
            asyncpg.PostgresError, OSError: the shard failed; Temporal retries.
        """
        assert Movement(step.movement) in _TRY
        requests = atomic_requests(step)
        try:
            results, poisoned = await self._post_in_chunks(step.shard, requests)
        except LedgerError as error:
            raise ApplicationError(
                error.message, type=str(error.code), non_retryable=not error.transient
            ) from error
        by_key = {r.operation_key: r for r in results}
        refusals: dict[str, LegRefusal] = {}
        for request in requests:
            result = by_key.get(request.operation_key)
            if result is None:
                continue  # raised on its own: below
            if result.error is not None:
                code, message, param = result.error.code, result.error.message, result.error.param
                refusals[request.transfer_id] = LegRefusal(str(code), message, param)
            elif result.transfer_id != request.transfer_id:
                # The leg's key had already moved money for another transfer (a single
                # request under the same key): that transfer is not this batch's to settle.
                refusals[request.transfer_id] = LegRefusal(
                    str(ErrorCode.IDEMPOTENCY_KEY_REUSED),
                    "this idempotency_key was already used by another request",
                    "idempotency_key",
                )
        for transfer_id in poisoned:
            refusals[transfer_id] = LegRefusal(
                str(ErrorCode.SETTLEMENT_FAILED), "the shard could not apply this transfer", None
            )
        return AtomicStepOutcome(refusals=refusals)

    @activity.defn(name="finish_atomic_step")
    async def finish_atomic_step(self, step: AtomicStepInput) -> None:
        """Post or void the pending credits, or post or release the holds, of the legs.

        Must succeed once the batch decided: every error is retried.

        Raises:
            ApplicationError: retryable; a leg could not be finished.
            asyncpg.PostgresError, OSError: the shard failed; Temporal retries.
        """
        assert Movement(step.movement) in _FINISH_OR_RELEASE
        requests = atomic_requests(step)
        try:
            results, poisoned = await self._post_in_chunks(step.shard, requests)
        except LedgerError as error:
            raise ApplicationError(error.message, type=str(error.code)) from error
        refused = [r for r in results if r.error is not None]
        if poisoned or refused:
            first = refused[0].transfer_id if refused else next(iter(poisoned))
            activity.logger.error(
                "%s refused or raised for %d legs of %s, first %s",
                step.movement,
                len(refused) + len(poisoned),
                step.batch_id,
                first,
            )
            raise ApplicationError(f"{step.movement} of {first} did not go through")
