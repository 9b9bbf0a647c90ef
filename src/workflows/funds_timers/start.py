"""Starting each shard's funds timers (every worker does, at start-up)."""

from datetime import timedelta

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from ledger import limits
from workflows.funds_timers.workflow import (
    FundsTimersInput,
    SettleDueFunds,
    funds_timers_workflow_id,
)


async def ensure_funds_timers(
    client: Client,
    task_queue: str,
    *,
    shards: int,
    poll_s: float = limits.FUNDS_TIMERS_POLL_S,
    review_timeout_s: float = limits.REVIEW_TIMEOUT_S_DEFAULT,
) -> None:
    """Start each shard's funds timers (hold expiry, delayed availability, reviews the API
    could not start), or find the ones that run: idempotent, like `ensure_sweeper`. Running
    timers keep their input; to change it, terminate them and restart a worker.

    Raises:
        temporalio.service.RPCError: Temporal refused or is unreachable.
    """
    for shard in range(shards):
        await client.start_workflow(
            SettleDueFunds.run,
            FundsTimersInput(shard=shard, poll_s=poll_s, review_timeout_s=review_timeout_s),
            id=funds_timers_workflow_id(task_queue, shard),
            task_queue=task_queue,
            # The running timers are the ones; closed ones are replaced by a new run.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"funds timers: shard {shard}, at least every {poll_s:g} s",
            rpc_timeout=timedelta(seconds=limits.TEMPORAL_RPC_TIMEOUT_S),
        )
