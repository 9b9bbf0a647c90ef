"""The expiry of holds: the funds timers release holds past their `expires_at`.

Captures, voids and increments are postings of the group commit (`shards.hold_changes`);
the expiry locks the due transfer rows (`skip locked`: a change that holds one sees the
expiry itself and is refused, from the expiry instant) and releases them through the
posting path in one transaction. A hold across shards is released on its source shard
(`RELEASE_ACROSS`) and its destination's `VOID_CREDIT` is recorded in the same
transaction (`shards.followups`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ledger.posting import Movement
from ledger.transfers import EventType, TransferStatus, check_transition
from shards.cluster import Shard
from shards.db import Record
from shards.events import reported
from shards.followups import followup, record_followups
from shards.hold_changes import ACROSS
from shards.posting import apply_postings
from shards.posting_types import PostingRequest, movement_of


def hold_moves(
    row: Record, movement: Movement, *, operation_key: str, amount: int
) -> tuple[PostingRequest, PostingRequest | None]:
    """A change `movement` (`CAPTURE`, `RELEASE`) of the hold in `row`: the movement on its
    shard, and for a hold across shards the destination's follow-up."""
    if not row["cross_shard"]:
        return movement_of(
            row, movement, operation_key=f"{operation_key}:{movement}", amount=amount
        ), None
    here, there = ACROSS[movement]
    assert there is not None, "only a capture or a release is owed to a destination"
    return (
        movement_of(row, here, operation_key=f"{operation_key}:{here}", amount=amount),
        followup(row, there, operation_key=operation_key, amount=amount),
    )


@dataclass(frozen=True, slots=True)
class ExpiryPass:
    """What one pass of the expiry found: how many holds it expired, whether more are due
    now, and when the next open hold expires (None when there is none)."""

    expired: int
    more_due: bool
    next_deadline: datetime | None


_DUE = """
select id, tenant_id, status, amount, captured_amount, expires_at, debit_account_id,
       credit_account_id, currency, source_shard, destination_shard, cross_shard
from transfers
where status = 'pending' and expires_at <= $2
order by expires_at
limit $1
for update skip locked
"""

_EXPIRE = reported(
    """update transfers t set status = $2, updated_at = clock_timestamp()
    from unnest($1::text[]) as u(id)
    where t.id = u.id
    returning t.*""",
    event_type="$3",
    shard="$4",
)


async def expire_due_holds(shard: Shard, *, limit: int) -> ExpiryPass:
    """Release up to `limit` holds on `shard` whose `expires_at` has passed, in one
    transaction, and mark them `expired`. Holds another transaction is changing are
    skipped (that change sees the expiry itself and is refused); the next pass takes them.

    Raises:
        asyncpg.PostgresError, OSError: the shard failed; nothing was written.
    """
    async with shard.connection() as conn, conn.transaction(isolation="read_committed"):
        # The shard's clock as a parameter: an index range of `transfers_hold_expiry`, where
        # a volatile function in the condition would only filter every pending hold.
        now = await conn.fetchval("select clock_timestamp()")
        rows: Sequence[Record] = await conn.fetch(_DUE, limit, now)
        if rows:
            moves = [
                hold_moves(
                    row,
                    Movement.RELEASE,
                    operation_key=f"expire:{row['id']}",
                    amount=row["amount"] - row["captured_amount"],
                )
                for row in rows
                if row["amount"] > row["captured_amount"]
            ]
            if moves:
                results = await apply_postings(
                    conn, shard=shard.index, requests=[here for here, _ in moves]
                )
                assert all(r.error is None for r in results), "a release is never refused"
                await record_followups(conn, [there for _, there in moves if there])
            await conn.execute(
                _EXPIRE,
                [row["id"] for row in rows],
                str(check_transition(TransferStatus.PENDING, TransferStatus.EXPIRED)),
                str(EventType.TRANSFER_EXPIRED),
                shard.index,
            )
        next_deadline = await conn.fetchval(
            "select min(expires_at) from transfers where status = 'pending'"
        )
    return ExpiryPass(expired=len(rows), more_due=len(rows) == limit, next_deadline=next_deadline)
