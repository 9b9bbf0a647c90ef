"""Background upkeep of an API process."""

import asyncio

import structlog

from ledger.limits import IDEMPOTENCY_PURGE_INTERVAL_S
from shards.cluster import SHARD_FAILURES, ShardCluster
from shards.idempotency import purge_expired_keys

log = structlog.get_logger("ledgerflow.api")


async def purge_idempotency_keys(
    cluster: ShardCluster, *, interval_s: float = IDEMPOTENCY_PURGE_INTERVAL_S
) -> None:
    """Delete idempotency records past their 24 hours, on every shard, forever.

    Expired keys are already reusable (claiming one overwrites it); this only keeps the
    table from growing. Every API replica runs it; the deletes are idempotent.
    """
    while True:
        await asyncio.sleep(interval_s)
        for shard in cluster.shards:
            try:
                async with shard.connection() as conn:
                    purged = await purge_expired_keys(conn)
            except SHARD_FAILURES as error:
                log.warning("idempotency purge failed", shard=shard.index, error=str(error))
                continue
            if purged:
                log.info("purged idempotency keys", shard=shard.index, count=purged)
