"""The activity behind `ReviewTransfer`: apply a decision on the transfer's shard, and start
the saga of a transfer approved across shards."""

from temporalio import activity
from temporalio.service import RPCError

from ledger.transfers import TransferStatus
from shards import outbox
from shards.cluster import ShardCluster
from shards.outbox import OUTBOX_FAILURES
from shards.review import decide_review
from workflows.review.workflow import DecideInput
from workflows.settlement.start import (
    batch_from_rows,
    settlement_workflow_id_prefix,
    start_settlement,
)

_SAGA_START_FAILURES: tuple[type[Exception], ...] = (
    *OUTBOX_FAILURES,
    RPCError,
    RuntimeError,
    TimeoutError,
)
"""What may stop the activity from starting the saga of an approved transfer: the shard
(claiming its outbox row) or Temporal (starting the workflow)."""


class ReviewActivities:
    """Review decisions against a cluster of shards."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster

    @activity.defn(name="decide_review")
    async def decide_review(self, decision: DecideInput) -> str:
        """Post or release the held money once (across shards: hand an approved transfer
        to a saga, and start it); returns the transfer's status after."""
        status = await decide_review(
            self._cluster.shards[decision.shard],
            transfer_id=decision.transfer_id,
            approve=decision.approve,
            request_key=decision.request_key,
        )
        if status is TransferStatus.PROCESSING:
            await self._start_saga(decision.shard, decision.transfer_id)
        return str(status)

    async def _start_saga(self, source: int, transfer_id: str) -> None:
        """Start the saga of a transfer approved across shards, unless one was started.

        Its outbox row was written with the decision, so the sweep settles it whatever
        happens here; starting it now only spares the sweep's delay. A failure is logged
        and never fails the decision, which is applied already. A row claimed here whose
        start failed stays claimed under that id, and the sweep starts that very id.
        """
        try:
            workflow_id, claimed = await outbox.claim(
                self._cluster.shards[source],
                transfer_ids=[transfer_id],
                workflow_id_prefix=settlement_workflow_id_prefix(source),
            )
            if workflow_id is None:
                return  # claimed before: a repeat of this activity, or the sweep
            await start_settlement(
                activity.client(),
                task_queue=activity.info().task_queue,
                batch=batch_from_rows(workflow_id, claimed),
            )
        except _SAGA_START_FAILURES as error:
            activity.logger.warning(
                "saga of approved %s deferred to the sweep: %r", transfer_id, error
            )
