"""Review: deciding a transfer that `requires_review`, and finding those whose review
workflow has not been started.

A decision is an item of the posting path on the transfer's (source) shard
(`shards.hold_changes`, planned by `ledger.holds.plan_decision`): it locks the transfer row
and its accounts in the posting order and, unless the transfer was decided already,
applies the decision, updates the row and writes its event in the batch's statement. On
one shard the held money posts (`CAPTURE`) or is released (`RELEASE`). Across shards the
money was reserved against the source's clearing account and no saga has the transfer yet:
approving writes its `saga_outbox` row, so a saga settles it like any cross-shard transfer
(`processing`); rejecting releases the reserve (`RELEASE_ACROSS`).
"""

from dataclasses import dataclass
from datetime import datetime

from ledger.errors import ErrorCode
from ledger.holds import HoldAction
from ledger.limits import STUCK_TRANSFERS_LIMIT_MAX
from ledger.transfers import TransferStatus
from shards.cluster import Shard, ShardCluster, oldest_first
from shards.posting import post_batch_on
from shards.posting_types import HoldChangeRequest


async def decide_review(
    shard: Shard, *, transfer_id: str, approve: bool, request_key: str | None = None
) -> TransferStatus:
    """Apply a decision on a transfer waiting for review, once, through the posting path
    (`shards.hold_changes`: the transfer row and its accounts locked in the posting order,
    the rules of every movement, one operation key); returns its status after (a transfer
    decided before keeps its first decision).

    On one shard, approving posts the held money (`posted`). Across shards it hands the
    transfer to a saga (`processing`): the caller starts one (`shards.outbox.claim`), or
    the sweep does. Rejecting releases the money (`failed`, `review_rejected`).

    `request_key`, the operation key of the API request that sent the decision, is written
    with it (only when this decision applies), so a retry of that request knows its
    decision applied (`decided_under`).

    Raises:
        asyncpg.PostgresError, OSError: the shard failed; nothing was written.
    """
    decision = HoldChangeRequest(
        operation_key=f"review:{transfer_id}",
        transfer_id=transfer_id,
        tenant_id=None,
        action=HoldAction.APPROVE if approve else HoldAction.REJECT,
        request_key=request_key,
    )
    (result,) = await post_batch_on(shard, [decision])
    if result.changed is not None:
        return result.changed.status
    if result.error is not None:
        assert result.error.code is ErrorCode.TRANSFER_NOT_PENDING, result.error
    async with shard.connection() as conn:
        status = await conn.fetchval("select status from transfers where id = $1", transfer_id)
    assert status is not None, f"review of an unknown transfer {transfer_id}"
    return TransferStatus(status)


async def decided_under(shard: Shard, *, transfer_id: str, request_key: str) -> bool:
    """Whether the transfer's review was decided by the request whose operation key is
    `request_key` (`decide_review` wrote it with the decision)."""
    async with shard.connection() as conn:
        found = await conn.fetchval(
            "select 1 from operations where key = $1 and transfer_id = $2",
            request_key,
            transfer_id,
        )
    return found is not None


@dataclass(frozen=True, slots=True)
class WaitingReview:
    """A transfer waiting for review."""

    transfer_id: str
    tenant_id: str
    amount: int
    currency: str
    debit_account_id: str
    created_at: datetime
    workflow_id: str | None


async def waiting_reviews(
    shard: Shard, *, limit: int, unstarted_for_s: float | None = None
) -> list[WaitingReview]:
    """Transfers waiting for review on this shard, oldest first; with `unstarted_for_s`,
    only those whose review workflow was not recorded as started that long after they were
    held (the API starts it at once; a crash in between leaves it to the funds timers)."""
    query = (
        "select id, tenant_id, amount, currency, debit_account_id, created_at, workflow_id"
        " from transfers where status = 'requires_review'"
    )
    async with shard.connection() as conn:
        if unstarted_for_s is not None:
            query += " and workflow_id is null and created_at < now() - make_interval(secs => $2)"
            rows = await conn.fetch(f"{query} order by created_at limit $1", limit, unstarted_for_s)
        else:
            rows = await conn.fetch(f"{query} order by created_at limit $1", limit)
    return [
        WaitingReview(
            transfer_id=r["id"],
            tenant_id=r["tenant_id"],
            amount=r["amount"],
            currency=r["currency"],
            debit_account_id=r["debit_account_id"],
            created_at=r["created_at"],
            workflow_id=r["workflow_id"],
        )
        for r in rows
    ]


async def mark_review_started(shard: Shard, *, transfer_id: str, workflow_id: str) -> None:
    """Record that the transfer's review workflow runs."""
    async with shard.connection() as conn:
        await conn.execute(
            "update transfers set workflow_id = $2 where id = $1 and workflow_id is null",
            transfer_id,
            workflow_id,
        )


async def find_waiting_reviews(
    cluster: ShardCluster, *, limit: int = STUCK_TRANSFERS_LIMIT_MAX
) -> list[WaitingReview]:
    """Transfers waiting for review on every shard, oldest first (`ledgerflow transfers
    review`); each names its review workflow once started.

    Raises:
        asyncpg.PostgresError, OSError: a shard failed.
    """
    assert 0 < limit <= STUCK_TRANSFERS_LIMIT_MAX

    async def on_shard(shard: Shard) -> list[WaitingReview]:
        return await waiting_reviews(shard, limit=limit)

    return await oldest_first(
        cluster, on_shard, key=lambda r: (r.created_at, r.transfer_id), limit=limit
    )
