"""Starting the sweeper: one `SweepSagaOutboxForever` per task queue, started by every worker.

`ensure_sweeper` is idempotent, so any number of workers may call it at start-up; the
running sweeper is the one, and a closed one is replaced by a new run.
"""

from datetime import timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from ledger import limits
from workflows.sweep.inputs import SweeperInput, SweepInput
from workflows.sweep.workflow import SweepSagaOutboxForever

SWEEPER_WORKFLOW_PREFIX = "sweep-saga-outbox"
LEGACY_SWEEP_SCHEDULE_PREFIX = "ledgerflow-sweep-saga-outbox"
"""Releases before the long-running sweeper ran the sweep from a Temporal Schedule of this
name; `ensure_sweeper` deletes it, so a cluster upgraded in place does not sweep twice."""


def sweeper_workflow_id(task_queue: str) -> str:
    """One sweeper per task queue (the queue its sagas are started on)."""
    return f"{SWEEPER_WORKFLOW_PREFIX}-{task_queue}"


def sweeper_input(
    *,
    interval_s: float = limits.OUTBOX_SWEEP_INTERVAL_S,
    stale_after_s: float = limits.OUTBOX_STALE_AFTER_S,
) -> SweeperInput:
    """The sweeper's input: sweep rows older than `stale_after_s` every `interval_s`."""
    return SweeperInput(
        sweep=SweepInput(
            stale_after_s=stale_after_s,
            rows_max=limits.OUTBOX_SWEEP_ROWS_MAX,
            batch_size_max=limits.SAGA_BATCH_SIZE_MAX,
        ),
        interval_s=interval_s,
        sweeps_per_run_max=limits.OUTBOX_SWEEPS_PER_RUN_MAX,
    )


async def ensure_sweeper(
    client: Client,
    task_queue: str,
    *,
    interval_s: float = limits.OUTBOX_SWEEP_INTERVAL_S,
    stale_after_s: float = limits.OUTBOX_STALE_AFTER_S,
) -> WorkflowHandle[SweepSagaOutboxForever, None]:
    """Start the sweeper of `task_queue`, or find the one that runs; delete the sweep
    schedule of earlier releases.

    Idempotent: every worker calls it at start-up, and any number may run. A running
    sweeper keeps its input; to change the interval, terminate it and restart a worker.

    Raises:
        temporalio.service.RPCError: Temporal refused or is unreachable.
    """
    await _delete_legacy_schedule(client, task_queue)
    return await client.start_workflow(
        SweepSagaOutboxForever.run,
        sweeper_input(interval_s=interval_s, stale_after_s=stale_after_s),
        id=sweeper_workflow_id(task_queue),
        task_queue=task_queue,
        # The running sweeper is the one; a closed one (an operator terminated it, say)
        # is replaced by a new run.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        static_summary=(
            f"outbox sweeper: every {interval_s:g} s, transfers reserved "
            f"{stale_after_s:g} s ago without a saga"
        ),
        rpc_timeout=timedelta(seconds=limits.TEMPORAL_RPC_TIMEOUT_S),
    )


async def _delete_legacy_schedule(client: Client, task_queue: str) -> None:
    handle = client.get_schedule_handle(f"{LEGACY_SWEEP_SCHEDULE_PREFIX}-{task_queue}")
    try:
        await handle.delete(rpc_timeout=timedelta(seconds=limits.TEMPORAL_RPC_TIMEOUT_S))
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
