"""The outbox rows of an atomic batch: moved to the run that settles them again."""

from shards.cluster import Shard

_REPOINT = """
with rows as (
    update saga_outbox set workflow_id = $2, claimed_at = now()
    where workflow_id = $1 and finished_at is null
    returning transfer_id
)
update transfers t set workflow_id = $2, updated_at = now()
from rows r where t.id = r.transfer_id
"""


async def repoint_open_rows(shard: Shard, *, old_workflow_id: str, new_workflow_id: str) -> None:
    """Record `new_workflow_id` on this shard's open outbox rows (and their transfers) that
    `old_workflow_id` claimed; rows already finished keep the id that finished them.

    Raises:
        asyncpg.PostgresError, OSError: the shard failed; nothing changed.
    """
    async with shard.connection() as conn:
        await conn.execute(_REPOINT, old_workflow_id, new_workflow_id)
