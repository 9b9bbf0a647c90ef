"""Starting a transfer's review workflow and sending it a decision (the API process, and
the funds timers for a review the API could not start)."""

from datetime import datetime, timedelta

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from ledger import limits
from workflows.review.workflow import (
    ReviewDecision,
    ReviewInput,
    ReviewTransfer,
    review_workflow_id,
)


async def start_review(
    client: Client,
    *,
    task_queue: str,
    shard: int,
    transfer_id: str,
    held_at: datetime,
    timeout_s: float,
) -> str:
    """Start the review of a held transfer, or find the one that runs; returns its id.

    Raises:
        temporalio.service.RPCError: Temporal refused or is unreachable.
    """
    workflow_id = review_workflow_id(transfer_id)
    await client.start_workflow(
        ReviewTransfer.run,
        ReviewInput(
            shard=shard, transfer_id=transfer_id, decide_by=held_at + timedelta(seconds=timeout_s)
        ),
        id=workflow_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        # A review that ended is never started again: its transfer was decided.
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=f"review of {transfer_id}",
        rpc_timeout=timedelta(seconds=limits.TEMPORAL_RPC_TIMEOUT_S),
    )
    return workflow_id


async def send_decision(
    client: Client, *, transfer_id: str, approve: bool, request_key: str | None = None
) -> str | None:
    """Send a decision to a running review; returns the transfer's status after it, or None
    when no review runs (it ended: the transfer was decided already).

    Raises:
        temporalio.service.RPCError: Temporal refused or is unreachable.
    """
    handle = client.get_workflow_handle(review_workflow_id(transfer_id))
    try:
        return await handle.execute_update(
            ReviewTransfer.decide,
            ReviewDecision(approve=approve, request_key=request_key),
            rpc_timeout=timedelta(seconds=limits.TEMPORAL_RPC_TIMEOUT_S),
        )
    except RPCError as error:
        # No such workflow, or one that completed: its transfer was decided already.
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            return None
        raise
    except WorkflowUpdateFailedError:
        return None
