"""The saga's activities: each step is one `post_batch` per shard for the whole batch.

Every step is idempotent through its operation key (`tr_...:credit`, `:post`, `:release`),
written by `post_batch` in the same transaction as the balance change, so a retry after a
crash at any point replays the first result instead of moving money again.

Infrastructure errors (a shard down, a lost connection) propagate and Temporal retries them
with backoff. Business refusals of the credit are results, one per transfer. A `LedgerError`
that escapes is turned into an `ApplicationError` whose type is its code, so the workflow's
retry policy can name the non-retryable codes (`NON_RETRYABLE_CODES`).

Anything else a step's transaction raises (an assertion, a constraint or a trigger on the
shard) would fail again on every retry and hold the whole batch. The step then runs its
transfers one at a time, so only the transfer that raises on its own is singled out: a
credit refuses it (`settlement_failed`, and the saga releases its hold), a post or release
keeps retrying it alone once the others are done.
"""

from collections.abc import Sequence

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ledger.errors import ErrorCode, LedgerError
from ledger.ids import saga_operation_key
from ledger.posting import Movement
from ledger.transfers import SettlementKind
from shards import outbox
from shards.cluster import SHARD_FAILURES, ShardCluster
from shards.posting import post_batch_on
from shards.posting_types import PostingRequest, PostingResult
from workflows.settlement.inputs import (
    CreditFundsInput,
    CreditOutcome,
    FinishHoldsInput,
    SettlementTransfer,
)

_STEPS = {
    Movement.CREDIT_FUNDS: "credit",
    Movement.PREPARE_CREDIT: "credit",
    Movement.POST_HOLD: "post",
    Movement.RELEASE_HOLD: "release",
}

_CREDITS = {
    SettlementKind.TRANSFER: Movement.CREDIT_FUNDS,
    SettlementKind.HOLD: Movement.PREPARE_CREDIT,
    SettlementKind.DEFERRED: Movement.PREPARE_CREDIT,
}
"""How the destination is credited: posted for a transfer; pending for a hold (until its
captures) and for a delayed credit (until `available_on`)."""


def credit_movement(kind: SettlementKind) -> Movement:
    """The credit step's movement for a transfer the saga settles as `kind`."""
    return _CREDITS[kind]


def posting_requests(
    movement: Movement,
    *,
    source_shard: int,
    currency: str,
    transfers: Sequence[SettlementTransfer],
    failure_codes: dict[str, str] | None = None,
) -> list[PostingRequest]:
    """The saga step `movement` of each transfer, keyed `transfer_id:step`."""
    step = _STEPS[movement]
    codes = failure_codes or {}
    return [
        PostingRequest(
            operation_key=saga_operation_key(t.id, step),
            transfer_id=t.id,
            tenant_id=t.tenant_id,
            movement=movement,
            debit_account_id=t.debit_account_id,
            credit_account_id=t.credit_account_id,
            amount=t.amount,
            currency=currency,
            source_shard=source_shard,
            destination_shard=t.destination_shard,
            failure_code=codes.get(t.id),
        )
        for t in transfers
    ]


_EXPECTED_FAILURES: tuple[type[Exception], ...] = (*SHARD_FAILURES, LedgerError)
"""What a step handles as it always has: shard failures retry, ledger errors are codes."""


def _application_error(error: LedgerError, *, non_retryable: bool) -> ApplicationError:
    return ApplicationError(error.message, type=str(error.code), non_retryable=non_retryable)


class SettlementActivities:
    """Activities of the settlement saga; they hold the shard pools."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster

    async def _post(self, shard: int, requests: list[PostingRequest]) -> list[PostingResult]:
        return await post_batch_on(self._cluster.shards[shard], requests)

    async def _post_isolating(
        self, shard: int, requests: list[PostingRequest]
    ) -> tuple[list[PostingResult], dict[str, Exception]]:
        """Post the batch in one transaction; if that raises something unexpected, post each
        request in its own transaction. Returns the results of the requests that went
        through, and what each request that raised on its own raised, by transfer id.

        A batch that raises wrote nothing, and operation keys make the second attempt of a
        request that went through a replay, so running them again is safe.

        Raises:
            asyncpg.PostgresError, OSError: a shard failed (`SHARD_FAILURES`).
            LedgerError: the posting code refused the batch as a whole.
        """
        try:
            return await self._post(shard, requests), {}
        except _EXPECTED_FAILURES:
            raise
        except Exception as error:
            if len(requests) == 1:
                _log_poisoned(shard, requests[0], error)
                return [], {requests[0].transfer_id: error}
            activity.logger.warning(
                "batch of %d raised on shard %d, posting one by one: %r",
                len(requests),
                shard,
                error,
            )
        results: list[PostingResult] = []
        poisoned: dict[str, Exception] = {}
        for request in requests:
            try:
                results.extend(await self._post(shard, [request]))
            except _EXPECTED_FAILURES:
                raise
            except Exception as error:
                _log_poisoned(shard, request, error)
                poisoned[request.transfer_id] = error
        return results, poisoned

    @activity.defn(name="credit_funds")
    async def credit_funds(self, credit: CreditFundsInput) -> CreditOutcome:
        """Credit the transfers bound for one destination shard, in one transaction there.

        A refusal (account missing, frozen, closed, currency mismatch) is a per-transfer
        result; the credited transfers then move to saga step `credited` on the source. A
        transfer whose credit raises on its own (not a shard failure: a bug, a constraint or
        a trigger on the destination) is refused with `settlement_failed` rather than
        retried for ever, and the others are credited.

        Raises:
            ApplicationError: a non-retryable `LedgerError` code (never expected).
            asyncpg.PostgresError, OSError: a shard failed; Temporal retries.
        """
        requests = [
            request
            for kind in SettlementKind
            for request in posting_requests(
                credit_movement(kind),
                source_shard=credit.source_shard,
                currency=credit.currency,
                transfers=[t for t in credit.transfers if t.kind is kind],
            )
        ]
        try:
            results, poisoned = await self._post_isolating(credit.destination_shard, requests)
        except LedgerError as error:
            raise _application_error(error, non_retryable=not error.transient) from error
        refusals = {r.transfer_id: str(r.error.code) for r in results if r.error is not None}
        refusals.update(dict.fromkeys(poisoned, str(ErrorCode.SETTLEMENT_FAILED)))
        credited = [r.transfer_id for r in results if r.ok]
        if credited:
            await outbox.mark_credited(self._cluster.shards[credit.source_shard], credited)
        return CreditOutcome(refusals=refusals)

    @activity.defn(name="post_holds")
    async def post_holds(self, holds: FinishHoldsInput) -> None:
        """Turn the holds of credited transfers into posted debits on the source shard.

        After a credit this must succeed: every error, even a refusal, is retried until an
        operator mends the cause; the saga never compensates a credited transfer.

        Raises:
            ApplicationError: retryable; a hold could not be posted.
            asyncpg.PostgresError, OSError: a shard failed; Temporal retries.
        """
        await self._finish(Movement.POST_HOLD, holds)

    @activity.defn(name="open_holds")
    async def open_holds(self, holds: FinishHoldsInput) -> None:
        """Open the holds whose destinations now show their credits pending: they become
        `pending`, capturable, on the source shard. Nothing moves: the source keeps them
        held until a capture, a void or the expiry (`shards.holds`).

        Raises:
            asyncpg.PostgresError, OSError: a shard failed; Temporal retries.
        """
        await outbox.open_holds(
            self._cluster.shards[holds.source_shard], [t.id for t in holds.transfers]
        )

    @activity.defn(name="release_holds")
    async def release_holds(self, holds: FinishHoldsInput) -> None:
        """Compensate refused credits: release their holds; the transfers end `failed`.

        Raises:
            ApplicationError: retryable; a hold could not be released.
            asyncpg.PostgresError, OSError: a shard failed; Temporal retries.
        """
        await self._finish(Movement.RELEASE_HOLD, holds)

    async def _finish(self, movement: Movement, holds: FinishHoldsInput) -> None:
        requests = posting_requests(
            movement,
            source_shard=holds.source_shard,
            currency=holds.currency,
            transfers=holds.transfers,
            failure_codes=holds.failure_codes,
        )
        try:
            results, poisoned = await self._post_isolating(holds.source_shard, requests)
        except LedgerError as error:
            raise _application_error(error, non_retryable=False) from error
        if poisoned:
            # The others are finished now; the retry replays them and tries these again, so
            # they stay visible as a stuck saga until an operator mends the cause.
            transfer_id, raised = next(iter(poisoned.items()))
            raise ApplicationError(
                f"{movement} raised for {len(poisoned)} transfers, first {transfer_id}: {raised!r}",
                non_retryable=False,
            ) from raised
        refused = [r for r in results if r.error is not None]
        if refused:
            # A hold that cannot be finished breaks an invariant (the reserve made it); keep
            # retrying, visible as a stuck saga, rather than guess a way out.
            first = refused[0]
            assert first.error is not None
            activity.logger.error(
                "%s refused for %d transfers, first %s: %s",
                movement,
                len(refused),
                first.transfer_id,
                first.error,
            )
            raise _application_error(first.error, non_retryable=False)


def _log_poisoned(shard: int, request: PostingRequest, error: Exception) -> None:
    """Log, with its traceback, a movement that raised on its own: a bug or a shard-side
    rule, never an outage, so an operator has to look."""
    activity.logger.error(
        "%s of %s raised on shard %d on its own",
        request.movement,
        request.transfer_id,
        shard,
        exc_info=error,
    )
