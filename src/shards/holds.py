"""The expiry of holds: the funds timers release holds past their `expires_at`.

The expiry is a change of a hold like a capture or a void (`HoldAction.EXPIRE`, planned by
`ledger.holds`, applied by `shards.hold_changes`): the due holds are found by an index
range, then expired through the posting batch, which locks their rows (sorted, like every
batch), checks each is still pending and due under that lock, releases what it still
holds and marks it `expired` with its event, under the key `expire:<id>`. A hold a capture
or a void changed first is refused (`transfer_not_pending`) and left as it is. A hold
across shards is released on its source shard (`RELEASE_ACROSS`) and its destination's
`VOID_CREDIT` is recorded in the same transaction (`shards.followups`).
"""

from dataclasses import dataclass
from datetime import datetime

from ledger.holds import HoldAction
from ledger.limits import POSTING_BATCH_SIZE_MAX
from shards.cluster import Shard
from shards.posting import post_batch_on
from shards.posting_types import HoldChangeRequest

EXPIRY_KEY_PREFIX = "expire:"
"""The operation keys of expiries (`expire:<transfer id>`)."""


@dataclass(frozen=True, slots=True)
class ExpiryPass:
    """What one pass of the expiry found: how many holds it expired, whether more are due
    now, and when the next open hold expires (None when there is none)."""

    expired: int
    more_due: bool
    next_deadline: datetime | None


_DUE = """
select id from transfers
where status = 'pending' and expires_at <= $2
order by expires_at
limit $1
"""


async def expire_due_holds(shard: Shard, *, limit: int) -> ExpiryPass:
    """Expire up to `limit` holds on `shard` whose `expires_at` has passed, through the
    posting batch (`POSTING_BATCH_SIZE_MAX` a transaction). Holds a capture or a void
    changed first are left as that change left them.

    Raises:
        asyncpg.PostgresError, OSError: the shard failed; what a batch wrote before stays
            written, and the next pass takes the rest.
    """
    async with shard.connection() as conn:
        # The shard's clock as a parameter: an index range of `transfers_hold_expiry`, where
        # a volatile function in the condition would only filter every pending hold.
        now = await conn.fetchval("select clock_timestamp()")
        due = [row["id"] for row in await conn.fetch(_DUE, limit, now)]
    expired = 0
    for first in range(0, len(due), POSTING_BATCH_SIZE_MAX):
        changes = [
            HoldChangeRequest(
                operation_key=f"{EXPIRY_KEY_PREFIX}{transfer_id}",
                transfer_id=transfer_id,
                tenant_id=None,
                action=HoldAction.EXPIRE,
            )
            for transfer_id in due[first : first + POSTING_BATCH_SIZE_MAX]
        ]
        results = await post_batch_on(shard, changes)
        expired += sum(1 for r in results if r.error is None and not r.replayed)
    async with shard.connection() as conn:
        next_deadline = await conn.fetchval(
            "select min(expires_at) from transfers where status = 'pending'"
        )
    return ExpiryPass(expired=expired, more_due=len(due) == limit, next_deadline=next_deadline)
