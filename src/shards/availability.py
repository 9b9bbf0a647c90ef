"""Delayed availability on one shard: a transfer whose credit becomes available later.

At once, as one item of the group commit (`shards.posting`): `DEFER_DEBIT` posts the
payer's debit against the shard's availability account, and `DEFER_CREDIT` shows the
amount as the payee's pending credit from that account, both or neither. At
`available_on`, the shard's funds timers (`workflows.funds_timers`) post that pending
credit (`MAKE_AVAILABLE`), in batches. The availability account of each
currency therefore holds exactly the credits still waiting, on both layers, which
reconciliation checks.

Across shards, a delayed credit is settled by the saga: the destination credits the payee
pending (against its clearing account), the source posts the debit. At `available_on` the
source shard's funds timers record the destination's `POST_CREDIT` (`shards.followups`),
which turns that pending credit into a posted one; the credit is marked available
(`available_at`, the `funds.available` event) when the destination applied it, so the
event follows the money. Until the saga has posted it (`status = 'posted'`) such a credit
is not due: a credit its saga refused never becomes available.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from ledger.posting import Movement
from shards.cluster import Shard
from shards.db import Connection, Record
from shards.events import mark_available
from shards.followups import AVAILABLE_KEY_PREFIX, followup, record_followups
from shards.posting import apply_postings
from shards.posting_types import PostingRequest, movement_of


@dataclass(frozen=True, slots=True)
class AvailabilityPass:
    """What one pass found: credits made available, whether more were due, and when the
    next waiting credit is due (None when none waits)."""

    made_available: int
    more_due: bool
    next_deadline: datetime | None


_WAITING = "available_on is not null and available_at is null and status = 'posted'"
"""A credit still to become available: posted on its source (the saga's post, across
shards), not yet made available."""

_OWED = f"""exists (select 1 from remote_postings r
    where r.transfer_id = transfers.id and r.movement = '{Movement.POST_CREDIT}')"""
"""Across shards, due already: the destination's `POST_CREDIT` is recorded, and the credit
becomes available (`available_at`, `funds.available`) once the destination applied it."""

_DUE = f"""
select id, tenant_id, debit_account_id, credit_account_id, amount, currency, source_shard,
       destination_shard, cross_shard
from transfers
where available_on <= $2 and {_WAITING} and not {_OWED}
order by available_on
limit $1
for update skip locked
"""


async def make_due_available(shard: Shard, *, limit: int) -> AvailabilityPass:
    """Post up to `limit` waiting credits whose `available_on` has passed, in one
    transaction, and report each as `funds.available`.

    Raises:
        asyncpg.PostgresError, OSError: the shard failed; nothing was written.
    """
    async with shard.connection() as conn, conn.transaction(isolation="read_committed"):
        # The shard's clock as a parameter: an index range of `transfers_available_on`.
        now = await conn.fetchval("select clock_timestamp()")
        rows: Sequence[Record] = await conn.fetch(_DUE, limit, now)
        if rows:
            here = [_make_available(row) for row in rows if not row["cross_shard"]]
            if here:
                results = await apply_postings(conn, shard=shard.index, requests=here)
                assert all(r.error is None for r in results), "making funds available never fails"
            await record_followups(
                conn,
                [
                    followup(
                        row,
                        Movement.POST_CREDIT,
                        operation_key=f"{AVAILABLE_KEY_PREFIX}{row['id']}",
                        amount=row["amount"],
                    )
                    for row in rows
                    if row["cross_shard"]
                ],
            )
            # Across shards the money becomes available on the destination: its follow-up
            # marks the credit when it applied (`shards.followups`).
            await mark_available(
                conn, [row["id"] for row in rows if not row["cross_shard"]], shard=shard.index
            )
        next_deadline = await conn.fetchval(
            f"select min(available_on) from transfers where {_WAITING} and not {_OWED}"
        )
    return AvailabilityPass(
        made_available=len(rows), more_due=len(rows) == limit, next_deadline=next_deadline
    )


def _make_available(row: Record) -> PostingRequest:
    return movement_of(
        row,
        Movement.MAKE_AVAILABLE,
        operation_key=f"{AVAILABLE_KEY_PREFIX}{row['id']}",
        amount=row["amount"],
    )


@dataclass(frozen=True, slots=True)
class Awaiting:
    """A credit still to become available to an account."""

    transfer_id: str
    amount: int
    available_on: datetime


async def awaiting_credits(
    conn: Connection, *, tenant_id: str, account_id: str, limit: int
) -> list[Awaiting]:
    """The account's credits still waiting, soonest first."""
    rows = await conn.fetch(
        "select id, amount, available_on from transfers"
        f" where credit_account_id = $1 and tenant_id = $2 and {_WAITING}"
        " order by available_on, id limit $3",
        account_id,
        tenant_id,
        limit,
    )
    return [Awaiting(r["id"], r["amount"], r["available_on"]) for r in rows]
