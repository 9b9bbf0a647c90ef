"""The activity behind `SettleDueFunds`: one pass over one shard's due holds and credits,
and the follow-ups its holds and credits across shards owe other shards."""

from temporalio import activity

from ledger import limits
from shards.availability import make_due_available
from shards.cluster import SHARD_FAILURES, Shard, ShardCluster
from shards.followups import FollowupPass, apply_followups
from shards.holds import expire_due_holds
from shards.raises import settle_open_raises
from shards.review import mark_review_started, waiting_reviews
from workflows.funds_timers.workflow import DuePassInput, DuePassOutcome
from workflows.review.start import start_review


class FundsTimersActivities:
    """Due holds and credits against a cluster of shards."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster

    async def _start_missing_reviews(self, shard: Shard, timeout_s: float) -> None:
        """Start the review workflows the API did not record as started."""
        missing = await waiting_reviews(
            shard,
            limit=limits.REVIEWS_STARTED_PER_PASS_MAX,
            unstarted_for_s=limits.REVIEW_START_GRACE_S,
        )
        for review in missing:
            workflow_id = await start_review(
                activity.client(),
                task_queue=activity.info().task_queue,
                shard=shard.index,
                transfer_id=review.transfer_id,
                held_at=review.created_at,
                timeout_s=timeout_s,
            )
            await mark_review_started(
                shard, transfer_id=review.transfer_id, workflow_id=workflow_id
            )
            activity.logger.warning("started the missing review of %s", review.transfer_id)

    async def _follow_up(self, shard: Shard) -> FollowupPass:
        """Apply what this shard's holds and credits across shards owe their destinations
        (what the API did not apply at once, and what this pass just recorded). A
        destination that is down leaves them open for the next pass, without failing this
        one."""
        try:
            return await apply_followups(self._cluster, shard.index)
        except SHARD_FAILURES as error:
            activity.logger.warning("shard %d: follow-ups wait: %r", shard.index, error)
        except Exception:
            # A bug in one follow-up must not stop this shard's expiries and credits: the
            # follow-ups stay open, counted by `verify`, until an operator mends the cause.
            activity.logger.exception("shard %d: follow-ups raised", shard.index)
        return FollowupPass(applied=0, more_open=False)

    async def _settle_raises(self, shard: Shard) -> None:
        """Settle the raises reserved on this shard whose increment's request crashed
        before it settled them (`shards.raises`)."""
        try:
            settled = await settle_open_raises(
                self._cluster,
                shard.index,
                older_than_s=limits.RAISE_SETTLE_GRACE_S,
                limit=limits.RAISES_SETTLED_PER_PASS_MAX,
            )
        except SHARD_FAILURES as error:
            activity.logger.warning("shard %d: reserved raises wait: %r", shard.index, error)
            return
        if settled.kept or settled.voided:
            activity.logger.warning(
                "shard %d: %d reserved raises kept, %d voided",
                shard.index,
                settled.kept,
                settled.voided,
            )

    @activity.defn(name="settle_due_funds")
    async def settle_due_funds(self, due: DuePassInput) -> DuePassOutcome:
        """Release up to `batch_max` expired holds and make up to `batch_max` due credits
        available on the shard, each kind in one transaction."""
        shard = self._cluster.shards[due.shard]
        holds = await expire_due_holds(shard, limit=due.batch_max)
        credits = await make_due_available(shard, limit=due.batch_max)
        followed = await self._follow_up(shard)
        await self._settle_raises(shard)
        await self._start_missing_reviews(shard, due.review_timeout_s)
        if holds.expired or credits.made_available or followed.applied:
            activity.logger.info(
                "shard %d: %d holds expired, %d credits available, %d follow-ups applied",
                shard.index,
                holds.expired,
                credits.made_available,
                followed.applied,
            )
        deadlines = [d for d in (holds.next_deadline, credits.next_deadline) if d is not None]
        return DuePassOutcome(
            expired=holds.expired,
            made_available=credits.made_available,
            more_due=holds.more_due or credits.more_due or followed.more_open,
            next_deadline=min(deadlines, default=None),
        )
