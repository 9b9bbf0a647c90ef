"""The outbox sweep's part for atomic batches: restart one whose workflow closed early.

An atomic batch's outbox rows are claimed by its workflow from the reserve on, so the sweep
never settles one of its legs alone. A running workflow is left alone like any saga. One
that closed while its rows stay open (an operator terminated it) is started again under
the re-claim id (`-r1`, `-r2`) with the input of the closed run, read from its history:
every step the old run made replays its first result through its operation key, so the
new run takes up the same decision and finishes it. The open rows on every shard are then
recorded under the new id. A workflow Temporal no longer knows (its history is gone) cannot
be restarted without its legs; its rows stay open, and `ledgerflow transfers stuck` and the
sweep's failure show them to an operator.
"""

import structlog
from temporalio.client import Client, WorkflowExecutionStatus

from shards.atomic_outbox import repoint_open_rows
from shards.cluster import ShardCluster
from workflows.atomic.inputs import AtomicBatch
from workflows.atomic.start import start_atomic
from workflows.settlement.start import reclaimed_workflow_id

log = structlog.get_logger("ledgerflow.workflows")


async def closed_run_input(client: Client, workflow_id: str) -> AtomicBatch:
    """The input a closed atomic batch's run was started with.

    Raises:
        temporalio.service.RPCError: Temporal failed, or no longer has the history.
    """
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    (batch,) = await client.data_converter.decode(started.input.payloads, [AtomicBatch])
    assert isinstance(batch, AtomicBatch)
    return batch


async def restart_atomic(
    cluster: ShardCluster,
    client: Client,
    *,
    task_queue: str,
    workflow_id: str,
    status: WorkflowExecutionStatus | None,
) -> bool:
    """Settle again the open legs of an atomic batch whose workflow is not running.

    Returns False (logged) when the workflow is unknown, so nothing can restart it.

    Raises:
        temporalio.service.RPCError: Temporal failed; the next sweep tries again.
        asyncpg.PostgresError, OSError: a shard failed while the rows were re-pointed; the
            new run settles them anyway, and the next sweep re-points them.
    """
    if status is None:
        log.error("atomic batch unknown to Temporal; its legs stay open", workflow_id=workflow_id)
        return False
    batch = await closed_run_input(client, workflow_id)
    new_id = reclaimed_workflow_id(workflow_id)
    log.error(
        "atomic batch closed with legs still open; settling it again",
        workflow_id=workflow_id,
        status=status.name,
        new_workflow_id=new_id,
    )
    # Started before the rows name it: a crash in between leaves them under the closed id,
    # and the next sweep finds the new run already started under the same id.
    await start_atomic(
        client, task_queue=task_queue, batch=AtomicBatch(batch_id=new_id, legs=batch.legs)
    )
    for shard in cluster.shards:
        await repoint_open_rows(shard, old_workflow_id=workflow_id, new_workflow_id=new_id)
    return True
