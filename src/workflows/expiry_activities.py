"""The activity behind `ExpireHolds`: one pass over one shard's due holds."""

from temporalio import activity

from shards.cluster import ShardCluster
from shards.holds import expire_due_holds
from workflows.expiry import ExpiryPassInput, ExpiryPassOutcome


class HoldExpiryActivities:
    """Holds' expiry against a cluster of shards."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster

    @activity.defn(name="expire_holds")
    async def expire_holds(self, expiry: ExpiryPassInput) -> ExpiryPassOutcome:
        """Release up to `batch_max` due holds on the shard, in one transaction."""
        shard = self._cluster.shards[expiry.shard]
        async with shard.connection() as conn:
            done = await expire_due_holds(conn, shard=shard.index, limit=expiry.batch_max)
        if done.expired:
            activity.logger.info("expired %d holds on shard %d", done.expired, shard.index)
        return ExpiryPassOutcome(
            expired=done.expired, more_due=done.more_due, next_deadline=done.next_deadline
        )
