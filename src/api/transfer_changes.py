"""Changes of an existing transfer: a hold's capture, void and increment, and a review's
decision, each applied once on the transfer's shard (and, across shards, followed on the
payee's).

A change of a hold is a posting of the group commit (`shards.hold_changes`): the same
rules, locks and operation key as a new transfer, answered from what it wrote."""

from dataclasses import replace

import structlog

from api.auth import Principal
from api.idempotency import Attempt
from api.models import TransferOut
from api.presenters import transfer_out
from api.transfer_service import Reviews, Settlement, read_transfer, transfer_not_found
from ledger.errors import ErrorCode, LedgerError
from ledger.holds import HoldAction
from ledger.ids import is_transfer_id
from ledger.posting import Movement, Rule, precedence, refusal_of_payer, rule_of
from ledger.transfers import TransferStatus
from shards.cluster import SHARD_FAILURES, ShardCluster, new_transfer_id
from shards.followups import apply_followups
from shards.group_commit import GroupCommitter
from shards.posting import payee_refusals, read_accounts
from shards.posting_types import HoldChangeRequest, PostingRequest, raise_key
from shards.raises import settle_raise
from shards.review import decided_under
from shards.transfers import TransferRecord

log = structlog.get_logger("ledgerflow.api")


class TransferChanges:
    """Captures, voids and increments of holds, and review decisions."""

    def __init__(
        self,
        cluster: ShardCluster,
        committer: GroupCommitter,
        *,
        settlement: Settlement | None,
        reviews: Reviews | None,
        sync_wait_s: float,
    ) -> None:
        self._cluster = cluster
        self._committer = committer
        self._settlement = settlement
        self._reviews = reviews
        self._sync_wait_s = sync_wait_s

    async def _fetch(
        self, shard: int, principal: Principal, transfer_id: str
    ) -> TransferRecord | None:
        return await read_transfer(self._cluster, shard, principal, transfer_id)

    async def decide_review(
        self,
        *,
        principal: Principal,
        transfer_id: str,
        approve: bool,
        attempt: Attempt | None = None,
    ) -> TransferOut:
        """Approve or reject one of the tenant's transfers waiting for review; returns it as
        the decision left it.

        On one shard an approved transfer is `posted`. Across shards it is handed to a saga,
        waited for like a new cross-shard transfer: `posted` when the saga finished within
        the short wait, else `processing` (or `failed` when its credit was refused).

        Raises:
            LedgerError: transfer_not_found, transfer_not_pending (not waiting for review,
                or decided otherwise meanwhile); settlement_unavailable (transient).
        """
        if not is_transfer_id(transfer_id):
            raise transfer_not_found(transfer_id)
        shard = self._cluster.shard_of_transfer(transfer_id).index
        record = await self._fetch(shard, principal, transfer_id)
        if record is None:
            raise transfer_not_found(transfer_id)
        if record.status is not TransferStatus.REQUIRES_REVIEW:
            if await self._decided_by(shard, record, approve=approve, attempt=attempt):
                # A retry of the request that decided it: the answer is that decision.
                return transfer_out(await self._settle_approved(principal, record))
            raise _not_pending(record)
        if self._reviews is None:
            raise LedgerError(
                ErrorCode.SETTLEMENT_UNAVAILABLE, "reviews are not configured on this server"
            )
        # Every decision is recorded under a key of its own, so the one that applied is
        # known: each other request, the same decision's included, is 409.
        request_key = (
            attempt.operation_key
            if attempt is not None
            else f"decide:{transfer_id}:{new_transfer_id(0)}"
        )
        await self._reviews.decide_review(
            shard=shard,
            transfer_id=transfer_id,
            held_at=record.created_at,
            approve=approve,
            request_key=request_key,
        )
        decided = await self._fetch(shard, principal, transfer_id)
        assert decided is not None
        if not _decided_as_asked(decided, approve=approve) or not await decided_under(
            self._cluster.shards[shard], transfer_id=transfer_id, request_key=request_key
        ):
            # Decided first by another request (the other decision, the same one sent
            # again under another key, or the review's timeout).
            raise _not_pending(decided)
        if decided.status is TransferStatus.PROCESSING:
            decided = await self._settle_approved(principal, decided)
        return transfer_out(decided)

    async def _decided_by(
        self, shard: int, record: TransferRecord, *, approve: bool, attempt: Attempt | None
    ) -> bool:
        """Whether the decision `record` shows was made by this request (an earlier attempt
        of it): its operation key was written with the decision. Under a key whose
        operation committed, the answer is that operation, not 409."""
        if attempt is None or not _decided_as_asked(record, approve=approve):
            return False
        return await decided_under(
            self._cluster.shards[shard], transfer_id=record.id, request_key=attempt.operation_key
        )

    async def _settle_approved(
        self, principal: Principal, approved: TransferRecord
    ) -> TransferRecord:
        """A transfer approved across shards: make sure a saga settles it (the review's
        activity started one; this covers a start that failed there) and wait for it as
        `create` does; returns the transfer as it stands then (any other as it is)."""
        if approved.status is not TransferStatus.PROCESSING:
            return approved
        if self._settlement is None:
            return approved  # the sweep of the worker settles it
        await self._settlement.hand_over(_reserve_of(approved), wait_s=self._sync_wait_s)
        settled = await self._fetch(approved.source_shard, principal, approved.id)
        assert settled is not None, "an approved transfer must be readable on its shard"
        return settled

    async def change_hold(
        self,
        *,
        principal: Principal,
        transfer_id: str,
        action: HoldAction,
        attempt: Attempt | None,
        amount: int | None = None,
        final: bool = True,
    ) -> TransferOut:
        """Capture, void or increment one of the tenant's holds, exactly once per attempt.

        Raises:
            LedgerError: transfer_not_found, transfer_not_pending, transfer_expired,
                amount_exceeds_hold; for an increment insufficient_funds, account_frozen,
                account_closed, amount_overflow.
        """
        if not is_transfer_id(transfer_id):
            raise transfer_not_found(transfer_id)
        shard = self._cluster.shard_of_transfer(transfer_id).index
        key = (
            attempt.operation_key
            if attempt is not None
            else f"{action}:{transfer_id}:{new_transfer_id(0)}"
        )
        change = HoldChangeRequest(
            operation_key=key,
            tenant_id=principal.tenant_id,
            transfer_id=transfer_id,
            action=action,
            amount=amount,
            final=final,
        )
        reserved: int | None = None
        if action is HoldAction.INCREMENT:
            reserved, change = await self._reserve_raise(principal, change)
        result = await self._committer.submit(shard, change)
        if reserved is not None:
            await self._settle_raise(reserved, key, kept=result.error is None)
        if result.error is not None:
            raise result.error
        record = result.changed
        if record is None:
            # A replay: the transfer as it stands now.
            record = await self._fetch(shard, principal, transfer_id)
        assert record is not None, "a changed hold must be readable on its shard"
        if record.cross_shard:
            await self._follow_up(record)
        return transfer_out(record)

    async def _reserve_raise(
        self, principal: Principal, change: HoldChangeRequest
    ) -> tuple[int | None, HoldChangeRequest]:
        """Across shards, reserve an increment's raise on the payee's shard before the
        payer's shard holds more (`shards.raises`): (the destination that reserved it, the
        change); when the payee's shard refuses, the change carries the refusal and the
        posting path answers it in `REFUSAL_ORDER`, and nothing was reserved.

        Raises:
            asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the payee's shard failed;
                nothing moved.
        """
        home = self._cluster.shard_of_transfer(change.transfer_id).index
        record = await self._fetch(home, principal, change.transfer_id)
        if record is None or not record.cross_shard or record.status is not TransferStatus.PENDING:
            return None, change  # the posting path answers these
        assert change.amount is not None
        refused = await self._refused_at_once(record, change.amount)
        if refused is not None:
            return None, replace(change, payee_refusal=refused)
        raised = _movement_of(
            record,
            Movement.RAISE_CREDIT,
            operation_key=raise_key(change.operation_key),
            amount=change.amount,
        )
        result = await self._committer.submit(record.destination_shard, raised)
        if result.error is not None:
            return None, replace(change, payee_refusal=result.error)
        return record.destination_shard, change

    async def _refused_at_once(self, record: TransferRecord, amount: int) -> LedgerError | None:
        """For an increment its payer refuses on its own as a read without a lock shows it
        (frozen, closed, another currency, without the funds), what the increment is
        refused with, so that it takes no lock on the payee's shard: the payer's state at
        once (it answers before anything of the payee's, in `REFUSAL_ORDER`); otherwise
        the earlier in that order of the payer's refusal and the payee's own, read without
        a lock too (a frozen payee answers before the payer's currency, limits before
        funds). The payer's shard then refuses the increment under its key, in its own
        order, and nothing is reserved or moved. None: the raise is to be reserved."""
        payers = await read_accounts(
            self._cluster.shards[record.source_shard],
            tenant_id=record.tenant_id,
            ids=[record.debit_account_id],
        )
        payer = payers.get(record.debit_account_id)
        refused = (
            None
            if payer is None
            else refusal_of_payer(payer, amount=amount, currency=record.currency)
        )
        if refused is None or rule_of(refused.code) is Rule.STATE:
            return refused
        (payee,) = await payee_refusals(
            self._cluster.shards[record.destination_shard],
            tenant_id=record.tenant_id,
            credits=[(record.credit_account_id, amount, record.currency)],
            step=Movement.PREPARE_CREDIT,
        )
        # The earlier rule answers; within one rule the payer's, the debit account's.
        if payee is not None and precedence(payee.code) < precedence(refused.code):
            return payee
        return refused

    async def _settle_raise(self, destination: int, operation_key: str, *, kept: bool) -> None:
        """Keep or void the raise reserved for an increment once its source decided; when
        the payee's shard fails, its funds timers settle it later from the source's key."""
        try:
            await settle_raise(self._cluster.shards[destination], operation_key, kept=kept)
        except SHARD_FAILURES as error:
            log.warning(
                "reserved raise left to the funds timers",
                operation_key=operation_key,
                error=repr(error),
            )

    async def _follow_up(self, record: TransferRecord) -> None:
        """Apply what the change of a hold across shards owes its destination now, so the
        payee's balance shows it in the answer; when a shard fails, the funds timers apply
        it within seconds (it was recorded with the change)."""
        try:
            await apply_followups(self._cluster, record.source_shard, transfer_ids=[record.id])
        except SHARD_FAILURES as error:
            log.warning(
                "follow-up left to the funds timers", transfer_id=record.id, error=repr(error)
            )


def _not_pending(record: TransferRecord) -> LedgerError:
    return LedgerError(
        ErrorCode.TRANSFER_NOT_PENDING,
        f"transfer {record.id} is {record.status}, not waiting for review",
    )


def _decided_as_asked(record: TransferRecord, *, approve: bool) -> bool:
    """Whether a decided transfer shows the decision asked for, not another one taken
    first."""
    rejected = (
        record.status is TransferStatus.FAILED and record.failure_code == ErrorCode.REVIEW_REJECTED
    )
    if not approve:
        return rejected
    # Across shards an approved transfer is settled by a saga: still settling, posted, or
    # failed when the destination refused its credit.
    return record.status is not TransferStatus.REQUIRES_REVIEW and not rejected


def _reserve_of(approved: TransferRecord) -> PostingRequest:
    """The reserve of a transfer approved across shards, as the hand-over takes it (which
    reads its transfer, shards and currency, not its operation key)."""
    return _movement_of(approved, Movement.RESERVE_FUNDS, operation_key=f"review:{approved.id}")


def _movement_of(
    record: TransferRecord, movement: Movement, *, operation_key: str, amount: int | None = None
) -> PostingRequest:
    """A movement of an existing transfer (all of its amount unless `amount` says)."""
    return PostingRequest(
        operation_key=operation_key,
        transfer_id=record.id,
        tenant_id=record.tenant_id,
        movement=movement,
        debit_account_id=record.debit_account_id,
        credit_account_id=record.credit_account_id,
        amount=record.amount if amount is None else amount,
        currency=record.currency,
        source_shard=record.source_shard,
        destination_shard=record.destination_shard,
    )
