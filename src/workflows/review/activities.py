"""The activity behind `ReviewTransfer`: apply a decision on the transfer's shard."""

from temporalio import activity

from shards.cluster import ShardCluster
from shards.review import decide_review
from workflows.review.workflow import DecideInput


class ReviewActivities:
    """Review decisions against a cluster of shards."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster

    @activity.defn(name="decide_review")
    async def decide_review(self, decision: DecideInput) -> str:
        """Post or release the held money once; returns the transfer's status after."""
        status = await decide_review(
            self._cluster.shards[decision.shard],
            transfer_id=decision.transfer_id,
            approve=decision.approve,
        )
        return str(status)
