"""The activity behind `SettleDueFunds`: one pass over one shard's due holds and credits."""

from temporalio import activity

from shards.availability import make_due_available
from shards.cluster import ShardCluster
from shards.holds import expire_due_holds
from workflows.funds_timers import DuePassInput, DuePassOutcome


class FundsTimersActivities:
    """Due holds and credits against a cluster of shards."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster

    @activity.defn(name="settle_due_funds")
    async def settle_due_funds(self, due: DuePassInput) -> DuePassOutcome:
        """Release up to `batch_max` expired holds and make up to `batch_max` due credits
        available on the shard, each kind in one transaction."""
        shard = self._cluster.shards[due.shard]
        async with shard.connection() as conn:
            holds = await expire_due_holds(conn, shard=shard.index, limit=due.batch_max)
            credits = await make_due_available(conn, shard=shard.index, limit=due.batch_max)
        if holds.expired or credits.made_available:
            activity.logger.info(
                "shard %d: %d holds expired, %d credits available",
                shard.index,
                holds.expired,
                credits.made_available,
            )
        deadlines = [d for d in (holds.next_deadline, credits.next_deadline) if d is not None]
        return DuePassOutcome(
            expired=holds.expired,
            made_available=credits.made_available,
            more_due=holds.more_due or credits.more_due,
            next_deadline=min(deadlines, default=None),
        )
