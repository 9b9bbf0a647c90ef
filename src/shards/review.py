"""Review on one shard: deciding a transfer that `requires_review`, and finding those whose
review workflow has not been started.

A decision runs in one transaction on the transfer's shard: claim its operation key (a
repeat finds the first decision), lock the transfer row, and unless it was decided
already, post (`CAPTURE`) or release (`RELEASE`) the held money through the posting path,
update the row and write its event.
"""

import asyncio
from dataclasses import dataclass
from datetime import datetime

from ledger.errors import ErrorCode
from ledger.events import EventType
from ledger.limits import STUCK_TRANSFERS_LIMIT_MAX
from ledger.posting import Movement
from ledger.transfers import TransferStatus, check_transition
from shards.cluster import Shard, ShardCluster
from shards.events import reported
from shards.posting import apply_postings
from shards.posting_types import movement_of

_LOCK = """
select id, tenant_id, status, amount, debit_account_id, credit_account_id, currency,
       source_shard, destination_shard
from transfers where id = $1
for update
"""

_DECIDE = reported(
    """update transfers set status = $2, failure_code = $3, updated_at = clock_timestamp()
    where id = $1
    returning *""",
    event_type="$4",
    shard="$5",
)


async def decide_review(shard: Shard, *, transfer_id: str, approve: bool) -> TransferStatus:
    """Approve (post) or reject (release) a transfer waiting for review, once; returns its
    status after (a transfer decided before keeps its first decision).

    Raises:
        asyncpg.PostgresError, OSError: the shard failed; nothing was written.
    """
    async with shard.connection() as conn, conn.transaction(isolation="read_committed"):
        row = await conn.fetchrow(_LOCK, transfer_id)
        assert row is not None, f"review of an unknown transfer {transfer_id}"
        status = TransferStatus(row["status"])
        if status is not TransferStatus.REQUIRES_REVIEW:
            return status
        movement = Movement.CAPTURE if approve else Movement.RELEASE
        request = movement_of(
            row, movement, operation_key=f"review:{transfer_id}", amount=row["amount"]
        )
        (result,) = await apply_postings(conn, shard=shard.index, requests=[request])
        assert result.error is None, "posting or releasing held money is never refused"
        decided = check_transition(
            status, TransferStatus.POSTED if approve else TransferStatus.FAILED
        )
        await conn.execute(
            _DECIDE,
            transfer_id,
            str(decided),
            None if approve else str(ErrorCode.REVIEW_REJECTED),
            str(EventType.TRANSFER_APPROVED if approve else EventType.TRANSFER_REJECTED),
            shard.index,
        )
        return decided


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

    found = await asyncio.gather(*(waiting_reviews(s, limit=limit) for s in cluster.shards))
    waiting = [r for rows in found for r in rows]
    return sorted(waiting, key=lambda r: (r.created_at, r.transfer_id))[:limit]
