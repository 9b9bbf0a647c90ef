"""Stuck transfers and waiting reviews across every shard, for operators (`ledgerflow
transfers stuck`, `ledgerflow transfers review`)."""

import asyncio

from ledger.limits import STUCK_TRANSFERS_LIMIT_MAX
from shards.cluster import ShardCluster
from shards.review import WaitingReview, waiting_reviews
from shards.transfers import TransferRecord, list_stuck_transfers


async def find_stuck_transfers(
    cluster: ShardCluster, *, older_than_s: float, limit: int = STUCK_TRANSFERS_LIMIT_MAX
) -> list[TransferRecord]:
    """Cross-shard transfers still `processing` after `older_than_s`, oldest first.

    Each record names its saga step and the workflow recorded to settle it (None when no
    saga claimed it yet: the sweeper will). Find the saga in the Temporal UI with
    `LedgerflowTransferIds = '<id>'`.

    Raises:
        asyncpg.PostgresError, OSError: a shard failed.
    """
    assert older_than_s >= 0
    assert 0 < limit <= STUCK_TRANSFERS_LIMIT_MAX

    async def on_shard(index: int) -> list[TransferRecord]:
        async with cluster.shards[index].connection() as conn:
            return await list_stuck_transfers(conn, older_than_s=older_than_s, limit=limit)

    found = await asyncio.gather(*(on_shard(s.index) for s in cluster.shards))
    merged = sorted((r for rows in found for r in rows), key=lambda r: (r.created_at, r.id))
    return merged[:limit]


async def find_waiting_reviews(
    cluster: ShardCluster, *, limit: int = STUCK_TRANSFERS_LIMIT_MAX
) -> list[WaitingReview]:
    """Transfers waiting for review on every shard, oldest first (`ledgerflow transfers
    review`); each names its review workflow once started.

    Raises:
        asyncpg.PostgresError, OSError: a shard failed.
    """
    assert 0 < limit <= STUCK_TRANSFERS_LIMIT_MAX

    async def on_shard(index: int) -> list[WaitingReview]:
        async with cluster.shards[index].connection() as conn:
            return await waiting_reviews(conn, limit=limit)

    found = await asyncio.gather(*(on_shard(s.index) for s in cluster.shards))
    merged = sorted(
        (r for rows in found for r in rows), key=lambda r: (r.created_at, r.transfer_id)
    )
    return merged[:limit]
