"""Review: deciding a transfer that `requires_review`, and finding those whose review
workflow has not been started.

A decision runs in one transaction on the transfer's (source) shard: lock the transfer
row and, unless it was decided already, apply the decision, update the row and write its
event. On one shard the held money posts (`CAPTURE`) or is released (`RELEASE`). Across
shards the money was reserved against the source's clearing account and no saga has the
transfer yet: approving writes its `saga_outbox` row, so a saga settles it like any
cross-shard transfer (`processing`); rejecting releases the reserve (`RELEASE_ACROSS`).
"""

from dataclasses import dataclass
from datetime import datetime

from ledger.errors import ErrorCode
from ledger.limits import STUCK_TRANSFERS_LIMIT_MAX
from ledger.posting import Movement
from ledger.transfers import (
    EventType,
    SagaStep,
    SettlementKind,
    TransferStatus,
    check_step,
    check_transition,
)
from shards.cluster import Shard, ShardCluster, oldest_first
from shards.db import Connection, Record
from shards.events import reported
from shards.posting import apply_postings
from shards.posting_types import movement_of

_LOCK = """
select id, tenant_id, status, amount, debit_account_id, credit_account_id, currency,
       source_shard, destination_shard, cross_shard, saga_step
from transfers where id = $1
for update
"""

_DECIDE = reported(
    """update transfers set status = $2, failure_code = $3, saga_step = $6,
                            updated_at = clock_timestamp()
    where id = $1
    returning *""",
    event_type="$4",
    shard="$5",
)

# An approved transfer across shards enters the outbox as a reserve just made would: no
# saga was started for it, so the hand-over or the sweep claims it (`shards.outbox`).
_HAND_TO_SAGA = """
insert into saga_outbox (transfer_id, tenant_id, debit_account_id, credit_account_id,
                         amount, currency, source_shard, destination_shard, kind)
select id, tenant_id, debit_account_id, credit_account_id, amount, currency, source_shard,
       destination_shard, $2
from transfers where id = $1
"""


async def decide_review(shard: Shard, *, transfer_id: str, approve: bool) -> TransferStatus:
    """Apply a decision on a transfer waiting for review, once; returns its status after (a
    transfer decided before keeps its first decision).

    On one shard, approving posts the held money (`posted`). Across shards it hands the
    transfer to a saga (`processing`): the caller starts one (`shards.outbox.claim`), or
    the sweep does. Rejecting releases the money (`failed`, `review_rejected`).

    Raises:
        asyncpg.PostgresError, OSError: the shard failed; nothing was written.
    """
    async with shard.connection() as conn, conn.transaction(isolation="read_committed"):
        row = await conn.fetchrow(_LOCK, transfer_id)
        assert row is not None, f"review of an unknown transfer {transfer_id}"
        status = TransferStatus(row["status"])
        if status is not TransferStatus.REQUIRES_REVIEW:
            return status
        if row["cross_shard"]:
            decided, step = await _decide_across(conn, shard, row, approve=approve)
        else:
            decided, step = await _decide_on_one_shard(conn, shard, row, approve=approve)
        await conn.execute(
            _DECIDE,
            transfer_id,
            str(decided),
            None if approve else str(ErrorCode.REVIEW_REJECTED),
            str(EventType.TRANSFER_APPROVED if approve else EventType.TRANSFER_REJECTED),
            shard.index,
            None if step is None else str(step),
        )
        return decided


async def _decide_on_one_shard(
    conn: Connection, shard: Shard, row: Record, *, approve: bool
) -> tuple[TransferStatus, SagaStep | None]:
    """Post or release the money held on the debit account; (status, saga step) after."""
    movement = Movement.CAPTURE if approve else Movement.RELEASE
    await _post(conn, shard, row, movement)
    target = TransferStatus.POSTED if approve else TransferStatus.FAILED
    return check_transition(TransferStatus.REQUIRES_REVIEW, target), None


async def _decide_across(
    conn: Connection, shard: Shard, row: Record, *, approve: bool
) -> tuple[TransferStatus, SagaStep | None]:
    """Hand an approved reserve to a saga, or release a rejected one; (status, saga step)
    after."""
    reserved = SagaStep(row["saga_step"])
    if approve:
        await conn.execute(_HAND_TO_SAGA, row["id"], str(SettlementKind.TRANSFER))
        return check_transition(TransferStatus.REQUIRES_REVIEW, TransferStatus.PROCESSING), reserved
    await _post(conn, shard, row, Movement.RELEASE_ACROSS)
    released = check_step(reserved, SagaStep.RELEASED)
    return check_transition(TransferStatus.REQUIRES_REVIEW, TransferStatus.FAILED), released


async def _post(conn: Connection, shard: Shard, row: Record, movement: Movement) -> None:
    """Post or release the whole reviewed amount through the posting path, once."""
    request = movement_of(row, movement, operation_key=f"review:{row['id']}", amount=row["amount"])
    (result,) = await apply_postings(conn, shard=shard.index, requests=[request])
    assert result.error is None, "posting or releasing held money is never refused"


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
