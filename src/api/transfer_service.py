"""Transfers: the single-shard fast path and the hand-over to cross-shard settlement."""

import asyncio
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from opentelemetry import trace

from api.auth import Principal
from api.idempotency import Attempt
from api.models import SagaOut, TransferCreate, TransferOut
from api.pagination import Cursor, merged_page
from api.presenters import transfer_out
from ledger.errors import ErrorCode, LedgerError
from ledger.ids import is_account_id, is_transfer_id
from ledger.metadata import check_metadata
from ledger.money import currency_exponent
from ledger.posting import Movement
from ledger.slots import slot_of
from ledger.transfers import SagaStep, TransferStatus
from shards import transfers as transfer_rows
from shards.cluster import ShardCluster
from shards.db import Connection
from shards.group_commit import GroupCommitter
from shards.ids import new_transfer_id
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


def _not_found(transfer_id: str) -> LedgerError:
    return LedgerError(ErrorCode.TRANSFER_NOT_FOUND, f"no such transfer: {transfer_id}", "id")


class TransferService:
    """Creates and reads transfers."""

    def __init__(
        self,
        cluster: ShardCluster,
        committer: GroupCommitter,
        *,
        settlement: Settlement | None,
        sync_wait_s: float,
    ) -> None:
        self._cluster = cluster
        self._committer = committer
        self._settlement = settlement
        self._sync_wait_s = sync_wait_s

    async def create(
        self, *, principal: Principal, body: TransferCreate, attempt: Attempt | None
    ) -> tuple[int, TransferOut]:
        """Move money; returns (HTTP status, transfer).

        201 when the transfer is posted, 202 when a cross-shard saga is still settling it.

        Raises:
            LedgerError: same_account, currency_unknown, metadata_invalid,
                account_not_found, currency_mismatch, account_frozen, account_closed,
                insufficient_funds, amount_overflow; shard_unavailable and
                settlement_unavailable (transient).
        """
        if body.debit_account_id == body.credit_account_id:
            raise LedgerError(
                ErrorCode.SAME_ACCOUNT,
                "debit and credit accounts must differ",
                "credit_account_id",
            )
        currency_exponent(body.currency)
        check_metadata(body.metadata)
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
        request = self._posting_request(principal, body, attempt)
        source = request.source_shard
        cross_shard = request.movement is Movement.RESERVE_FUNDS
        if cross_shard and self._settlement is None:
            raise LedgerError(
                ErrorCode.SETTLEMENT_UNAVAILABLE,
                "cross-shard settlement is not configured on this server",
            )
        result = await self._committer.submit(source, request)
        span = trace.get_current_span()
        if span.is_recording():
            # Lets an operator find a transfer's trace by its id (a replay's is its first).
            span.set_attribute("ledgerflow.transfer_id", result.transfer_id)
        if result.error is not None:
            raise result.error
        if not cross_shard and result.created_at is not None:
            # Fresh single-shard transfers are answered from what was just written,
            # sparing a read; replays read the first transfer back.
            return 201, _posted(request, result.created_at)
        if cross_shard:
            assert self._settlement is not None
            reserved = request if not result.replayed else _with_id(request, result.transfer_id)
            settled = await self._settlement.hand_over(reserved, wait_s=self._sync_wait_s)
            if settled is not None and settled.failure_code is not None:
                raise _settlement_failed(result.transfer_id, settled.failure_code)
            if settled is not None and result.created_at is not None:
                # A fresh transfer the saga posted: answered without reading it back.
                return 201, _posted(request, result.created_at, settled)
        record = await self._fetch(source, principal, result.transfer_id)
        assert record is not None, "a posted transfer must be readable on its shard"
        if record.status is TransferStatus.FAILED:
            raise _settlement_failed(record.id, record.failure_code)
        status = 202 if record.status is TransferStatus.PROCESSING else 201
        return status, transfer_out(record)

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
        )

    async def _fetch(
        self, shard: int, principal: Principal, transfer_id: str
    ) -> TransferRecord | None:
        async with self._cluster.shards[shard].connection() as conn:
            return await transfer_rows.fetch_transfer(
                conn, tenant_id=principal.tenant_id, transfer_id=transfer_id
            )

    async def get(self, *, principal: Principal, transfer_id: str) -> TransferOut:
        """One of the tenant's transfers, read on the shard its id names.

        Ids minted before they carried their slot are looked for on the other shards too,
        so an unknown id costs one read per shard.

        Raises:
            LedgerError(transfer_not_found): unknown, or another tenant's.
        """
        if not is_transfer_id(transfer_id):
            raise _not_found(transfer_id)
        home = self._cluster.shard_of_transfer(transfer_id).index
        record = await self._fetch(home, principal, transfer_id)
        if record is not None:
            return transfer_out(record)
        others = [s.index for s in self._cluster.shards if s.index != home]
        found = await asyncio.gather(*(self._fetch(s, principal, transfer_id) for s in others))
        for record in found:
            if record is not None:
                return transfer_out(record)
        raise _not_found(transfer_id)

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


def _posted(
    request: PostingRequest, created_at: datetime, settled: SettledTransfer | None = None
) -> TransferOut:
    """The response for a transfer this request just posted, from what it wrote: on one
    shard, or (with `settled`) reserved here and posted by the saga that settled it."""
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
        status=TransferStatus.POSTED,
        amount=request.amount,
        currency=request.currency,
        debit_account_id=request.debit_account_id,
        credit_account_id=request.credit_account_id,
        cross_shard=settled is not None,
        saga=saga,
        metadata=request.metadata,
        created_at=created_at,
    )


def _settlement_failed(transfer_id: str, failure_code: str | None) -> LedgerError:
    return LedgerError(
        ErrorCode(failure_code or ErrorCode.ACCOUNT_NOT_FOUND),
        f"transfer {transfer_id} failed to settle and its hold was released",
        "credit_account_id",
    )


def _with_id(request: PostingRequest, transfer_id: str) -> PostingRequest:
    """The request as first made: a replayed operation keeps its first transfer id."""
    return replace(request, transfer_id=transfer_id)
