"""Transfers: the single-shard fast path and the hand-over to cross-shard settlement.

Changes of a transfer once made (a hold's capture, void and increment, a review's
decision) are `api.transfer_changes`."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import structlog
from opentelemetry import trace

from api.auth import Principal
from api.idempotency import Attempt
from api.models import SagaOut, TransferCreate, TransferOut
from api.pagination import Cursor, merged_page
from api.presenters import transfer_out
from ledger import limits
from ledger.errors import ErrorCode, LedgerError
from ledger.ids import is_account_id, is_transfer_id, slot_of
from ledger.posting import Movement
from ledger.transfers import SagaStep, SettlementKind, TransferStatus
from shards import transfers as transfer_rows
from shards.cluster import SHARD_FAILURES, ShardCluster, new_transfer_id
from shards.db import Connection
from shards.group_commit import GroupCommitter
from shards.posting import with_payee_check
from shards.posting_types import PostingRequest
from shards.transfers import TransferRecord
from workflows.handover.dispatcher import SettledTransfer


class Settlement(Protocol):
    """Settles reserved cross-shard transfers (implemented by `workflows.handover`)."""

    async def hand_over(self, reserved: PostingRequest, *, wait_s: float) -> SettledTransfer | None:
        """Make sure a saga settles `reserved`; wait up to `wait_s` for it to finish.

        Returns how the saga ended the transfer, or None when the transfer row must tell.
        """
        ...


@runtime_checkable
class Reviews(Protocol):
    """Reviews of held transfers (implemented by `workflows.handover.dispatcher`)."""

    async def start_review(self, *, shard: int, transfer_id: str, held_at: datetime) -> None:
        """Start the transfer's review workflow (or leave it to the funds timers)."""
        ...

    async def decide_review(
        self,
        *,
        shard: int,
        transfer_id: str,
        held_at: datetime,
        approve: bool,
        request_key: str | None = None,
    ) -> str | None:
        """Send a decision; the transfer's status after it, or None when already decided.

        Raises:
            LedgerError(settlement_unavailable): the review could not be reached.
        """
        ...


log = structlog.get_logger("ledgerflow.api")


def transfer_not_found(transfer_id: str) -> LedgerError:
    """The refusal of an id the tenant has no transfer under."""
    return LedgerError(ErrorCode.TRANSFER_NOT_FOUND, f"no such transfer: {transfer_id}", "id")


async def read_transfer(
    cluster: ShardCluster, shard: int, principal: Principal, transfer_id: str
) -> TransferRecord | None:
    """One of the tenant's transfers as stored on `shard`, or None."""
    async with cluster.shards[shard].connection() as conn:
        return await transfer_rows.fetch_transfer(
            conn, tenant_id=principal.tenant_id, transfer_id=transfer_id
        )


class TransferService:
    """Creates and reads transfers."""

    def __init__(
        self,
        cluster: ShardCluster,
        committer: GroupCommitter,
        *,
        settlement: Settlement | None,
        sync_wait_s: float,
        reviews: Reviews | None = None,
        reviews_waiting_max: int = limits.REVIEWS_WAITING_MAX_DEFAULT,
    ) -> None:
        self._reviews = reviews
        # Each shard admits an equal share, so the tenant's total stays within the cap.
        self._reviews_per_shard = max(1, reviews_waiting_max // len(cluster.shards))
        self._cluster = cluster
        self._committer = committer
        self._settlement = settlement
        self._sync_wait_s = sync_wait_s

    async def create(
        self, *, principal: Principal, body: TransferCreate, attempt: Attempt | None
    ) -> TransferOut:
        """Move money; returns the transfer as it stands when the answer is due.

        Its status is `posted` when the money moved, or `processing` when a cross-shard saga
        is still settling it (the reserve is durable and the saga will finish it).

        Raises:
            LedgerError: same_account, account_not_found, currency_mismatch,
                account_frozen, account_closed, insufficient_funds, amount_overflow;
                shard_unavailable and settlement_unavailable (transient).
        """
        _check_create(body)
        request = _timed(self._posting_request(principal, body, attempt), body)
        source = request.source_shard
        cross_shard = request.movement is Movement.RESERVE_FUNDS
        if body.pending and not cross_shard:
            return await self._hold(principal, replace(request, movement=Movement.HOLD))
        if body.available_on is not None and not cross_shard:
            return await self._defer(principal, request)
        if cross_shard and self._settlement is None:
            raise LedgerError(
                ErrorCode.SETTLEMENT_UNAVAILABLE,
                "cross-shard settlement is not configured on this server",
            )
        if cross_shard:
            request = await self._with_payee_check(request)
        result = await self._committer.submit(source, request)
        span = trace.get_current_span()
        if span.is_recording():
            # Lets an operator find a transfer's trace by its id (a replay's is its first).
            span.set_attribute("ledgerflow.transfer_id", result.transfer_id)
        if result.error is not None:
            raise result.error
        if result.held_for_review:
            return await self._held_for_review(principal, source, result.transfer_id)
        if not cross_shard and result.created_at is not None:
            # Fresh single-shard transfers are answered from what was just written,
            # sparing a read; replays read the first transfer back.
            return _made(request, result.created_at)
        if cross_shard:
            assert self._settlement is not None
            reserved = request if not result.replayed else _with_id(request, result.transfer_id)
            settled = await self._settlement.hand_over(reserved, wait_s=self._sync_wait_s)
            if settled is not None and settled.failure_code is not None:
                raise _settlement_failed(result.transfer_id, settled.failure_code)
            if (
                settled is not None
                and result.created_at is not None
                and request.settlement_kind is SettlementKind.TRANSFER
            ):
                # A fresh transfer the saga posted: answered without reading it back.
                return _made(request, result.created_at, settled)
        record = await self._fetch(source, principal, result.transfer_id)
        assert record is not None, "a posted transfer must be readable on its shard"
        if record.status is TransferStatus.FAILED:
            raise _settlement_failed(record.id, record.failure_code)
        return transfer_out(record)

    async def _with_payee_check(self, request: PostingRequest) -> PostingRequest:
        """The reserve with what the payee's shard would refuse its credit for, so it is
        answered in `REFUSAL_ORDER`; when that shard does not answer, the saga's credit step
        decides (the reserve waits for it as before)."""
        try:
            return await with_payee_check(self._cluster.shards[request.destination_shard], request)
        except SHARD_FAILURES as error:
            log.warning(
                "payee not checked before the reserve; its saga will",
                shard=request.destination_shard,
                error=repr(error),
            )
            return request

    async def _held_for_review(
        self, principal: Principal, shard: int, transfer_id: str
    ) -> TransferOut:
        """A transfer just held for review: start its review, answer it as it stands."""
        record = await self._fetch(shard, principal, transfer_id)
        assert record is not None, "a transfer held for review must be readable on its shard"
        if self._reviews is not None:
            await self._reviews.start_review(
                shard=shard, transfer_id=transfer_id, held_at=record.created_at
            )
        return transfer_out(record)

    async def _hold(self, principal: Principal, request: PostingRequest) -> TransferOut:
        """Place a hold on one shard: the money is held, not moved. A fresh hold is
        answered from what was just written; a replay reads the first one back."""
        result = await self._committer.submit(request.source_shard, request)
        if result.error is not None:
            raise result.error
        if result.created_at is not None and not result.held_for_review:
            return _made(request, result.created_at)
        record = await self._fetch(request.source_shard, principal, result.transfer_id)
        assert record is not None, "a hold must be readable on its shard"
        return transfer_out(record)

    async def _defer(self, principal: Principal, request: PostingRequest) -> TransferOut:
        """Debit now, credit pending until `available_on`: one item of the group commit on
        one shard (`DEFER_DEBIT` with the payee's `DEFER_CREDIT`, both or neither)."""
        deferred = replace(request, movement=Movement.DEFER_DEBIT)
        result = await self._committer.submit(request.source_shard, deferred)
        if result.error is not None:
            raise result.error
        record = await self._fetch(request.source_shard, principal, result.transfer_id)
        assert record is not None, "a deferred transfer must be readable on its shard"
        return transfer_out(record)

    def _posting_request(
        self, principal: Principal, body: TransferCreate, attempt: Attempt | None
    ) -> PostingRequest:
        """The first movement of a new transfer: the whole transfer on one shard, or the
        reserve on the source shard when the accounts live on two."""
        transfer_id = new_transfer_id(slot_of(body.debit_account_id))
        key = attempt.operation_key if attempt is not None else f"transfer:{transfer_id}"
        source = self._cluster.shard_of(body.debit_account_id).index
        destination = self._cluster.shard_of(body.credit_account_id).index
        return PostingRequest(
            operation_key=key,
            transfer_id=transfer_id,
            tenant_id=principal.tenant_id,
            movement=Movement.TRANSFER if source == destination else Movement.RESERVE_FUNDS,
            debit_account_id=body.debit_account_id,
            credit_account_id=body.credit_account_id,
            amount=body.amount,
            currency=body.currency,
            source_shard=source,
            destination_shard=destination,
            metadata=body.metadata,
            reviews_waiting_max=self._reviews_per_shard,
        )

    async def _fetch(
        self, shard: int, principal: Principal, transfer_id: str
    ) -> TransferRecord | None:
        return await read_transfer(self._cluster, shard, principal, transfer_id)

    async def get(self, *, principal: Principal, transfer_id: str) -> TransferOut:
        """One of the tenant's transfers, read on the shard its id names (its debit
        account's: `shards.cluster.new_transfer_id` puts the slot in the id).

        Raises:
            LedgerError(transfer_not_found): unknown, or another tenant's.
        """
        if not is_transfer_id(transfer_id):
            raise transfer_not_found(transfer_id)
        home = self._cluster.shard_of_transfer(transfer_id).index
        record = await self._fetch(home, principal, transfer_id)
        if record is None:
            raise transfer_not_found(transfer_id)
        return transfer_out(record)

    async def list_page(
        self,
        *,
        principal: Principal,
        limit: int,
        starting_after: str | None,
        ending_before: str | None,
    ) -> tuple[list[TransferOut], bool]:
        """A page of the tenant's transfers across every shard, newest first."""
        cursor = Cursor(limit, starting_after, ending_before)

        async def page(conn: Connection, _: int, c: Cursor) -> list[TransferRecord]:
            return await transfer_rows.list_transfers(
                conn,
                tenant_id=principal.tenant_id,
                after_id=c.starting_after,
                before_id=c.ending_before,
                limit=c.limit + 1,
            )

        rows, has_more = await merged_page(self._cluster, cursor, page)
        return [transfer_out(r) for r in rows], has_more


def _check_create(body: TransferCreate) -> None:
    """What a new transfer is refused for before any shard is asked, beyond what its model
    checks field by field (amount, currency, metadata): its shape, then ids no customer
    account can have (`ledger.posting.REFUSAL_ORDER`).

    Raises:
        LedgerError: invalid_request, same_account, account_not_found.
    """
    if body.pending and body.available_on is not None:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST, "a hold cannot also have available_on", "available_on"
        )
    if body.expires_in is not None and not body.pending:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST, "expires_in applies to holds only", "expires_in"
        )
    if body.debit_account_id == body.credit_account_id:
        raise LedgerError(
            ErrorCode.SAME_ACCOUNT,
            "debit and credit accounts must differ",
            "credit_account_id",
        )
    # Only customer account ids reach the posting code from a request: a system
    # account's id (a clearing account) is as unknown here as another tenant's.
    for account_id, param in (
        (body.debit_account_id, "debit_account_id"),
        (body.credit_account_id, "credit_account_id"),
    ):
        if not is_account_id(account_id):
            raise LedgerError(
                ErrorCode.ACCOUNT_NOT_FOUND, f"no such {param.split('_')[0]} account", param
            )


def _timed(request: PostingRequest, body: TransferCreate) -> PostingRequest:
    """The request with its hold's `expires_at` or its credit's `available_on`.

    Whether `available_on` is ahead of the clock is the posting path's to say, once it
    knows the request is new (`shards.posting`): a retry of a delayed credit that committed
    is answered with it, whatever the time is now.
    """
    if body.pending:
        expires_in = body.expires_in or limits.HOLD_EXPIRES_IN_S_MAX
        return replace(request, expires_at=datetime.now(UTC) + timedelta(seconds=expires_in))
    if body.available_on is None:
        return request
    return replace(request, available_on=body.available_on)


def _made(
    request: PostingRequest, created_at: datetime, settled: SettledTransfer | None = None
) -> TransferOut:
    """The response for a transfer this request just made, from what it wrote: posted on
    one shard, a hold placed on one shard (`HOLD`: pending, nothing captured yet), or (with
    `settled`) reserved here and posted by the saga that settled it."""
    hold = request.movement is Movement.HOLD
    saga = None
    if settled is not None:
        saga = SagaOut(
            step=SagaStep.POSTED,
            workflow_id=settled.workflow_id,
            source_shard=request.source_shard,
            destination_shard=request.destination_shard,
        )
    return TransferOut(
        id=request.transfer_id,
        status=TransferStatus.PENDING if hold else TransferStatus.POSTED,
        amount=request.amount,
        currency=request.currency,
        debit_account_id=request.debit_account_id,
        credit_account_id=request.credit_account_id,
        cross_shard=settled is not None,
        saga=saga,
        metadata=request.metadata,
        created_at=created_at,
        expires_at=request.expires_at if hold else None,
        captured_amount=0 if hold else None,
        captures=[] if hold else None,
    )


def _settlement_failed(transfer_id: str, failure_code: str | None) -> LedgerError:
    # A saga fails a transfer only with the code that refused its credit (one transfer's
    # refusal, or the whole step's): a failed transfer without one is a bug, not a guess.
    assert failure_code is not None, f"failed transfer {transfer_id} records no failure code"
    return LedgerError(
        ErrorCode(failure_code),
        f"transfer {transfer_id} failed to settle and its hold was released",
        "credit_account_id",
    )


def _with_id(request: PostingRequest, transfer_id: str) -> PostingRequest:
    """The request as first made: a replayed operation keeps its first transfer id."""
    return replace(request, transfer_id=transfer_id)
