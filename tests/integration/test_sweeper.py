"""The outbox sweeper as the worker runs it: one long-running workflow per task queue that
sweeps, sleeps on a durable timer, continues as new, and replaces the old Schedule."""

import asyncio

import httpx
import pytest
from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleSpec,
    ScheduleState,
    WorkflowExecutionStatus,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from ulid import ULID

from ledger.limits import OUTBOX_SWEEP_ROWS_MAX, SAGA_BATCH_SIZE_MAX
from shards.cluster import ShardCluster
from tests.integration.cross_shard import (
    fund,
    open_cross_pair,
    reserve_only,
    saga_count,
    settled,
    tenant_of,
)
from tests.integration.helpers import balance
from workflows.sweep.inputs import SweeperInput, SweepInput
from workflows.sweep.start import LEGACY_SWEEP_SCHEDULE_PREFIX, ensure_sweeper, sweeper_workflow_id
from workflows.sweep.workflow import SweepSagaOutbox, SweepSagaOutboxForever
from workflows.worker import build_worker

pytestmark = pytest.mark.usefixtures("books")


async def _runs_of(env: WorkflowEnvironment, workflow_id: str, *, at_least: int) -> int:
    """How many runs the sweeper's chain has had (continue-as-new makes a new run), once
    there are `at_least` or ten seconds passed."""
    query = f"WorkflowId = '{workflow_id}'"
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        runs = (await env.client.count_workflows(query)).count
        if runs >= at_least or asyncio.get_running_loop().time() > deadline:
            return runs
        await asyncio.sleep(0.2)


async def test_the_sweeper_settles_an_orphan_and_continues_as_new(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    worker_cluster: ShardCluster,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
) -> None:
    """A sweeper started with two sweeps per run continues as new (a chain of runs under
    one id, not a workflow per sweep) and settles a reserve the API never handed over, on
    its own queue. Starting it again finds the running one."""
    client = temporal_env.client
    queue = f"sweeper-{ULID()}"
    workflow_id = sweeper_workflow_id(queue)
    pair = await open_cross_pair(api)
    await fund(api, pair, 1_000)
    async with build_worker(client=client, cluster=worker_cluster, task_queue=queue):
        first = await client.start_workflow(
            SweepSagaOutboxForever.run,
            SweeperInput(
                sweep=SweepInput(
                    stale_after_s=0,
                    rows_max=OUTBOX_SWEEP_ROWS_MAX,
                    batch_size_max=SAGA_BATCH_SIZE_MAX,
                ),
                interval_s=0.2,
                sweeps_per_run_max=2,
            ),
            id=workflow_id,
            task_queue=queue,
        )
        try:
            again = await ensure_sweeper(client, queue)
            assert again.id == first.id
            assert await _runs_of(temporal_env, workflow_id, at_least=3) >= 3
            current = await client.get_workflow_handle(workflow_id).describe()
            assert current.status is WorkflowExecutionStatus.RUNNING
            assert current.run_id != first.result_run_id

            reserved = await reserve_only(
                cluster, pair, 400, tenant_id=await tenant_of(cluster, tenant_key)
            )
            (done,) = await settled(api, pair.source["id"], timeout_s=30)
            assert done["id"] == reserved.transfer_id
            assert done["status"] == "posted"
            assert (await balance(api, pair.target["id"]))["available"] == 400
            assert await saga_count(client, cluster, reserved.transfer_id) == 1
            saga = await client.get_workflow_handle(done["saga"]["workflow_id"]).describe()
            assert saga.task_queue == queue
        finally:
            await client.get_workflow_handle(workflow_id).terminate()


async def test_the_sweeper_replaces_the_old_sweep_schedule(
    worker_cluster: ShardCluster, temporal_env: WorkflowEnvironment
) -> None:
    """A cluster upgraded in place still has the Schedule that swept before; starting the
    sweeper deletes it, so the outbox is not swept twice over. Starting the sweeper where
    none runs starts one, with its summary line for the Temporal UI."""
    client = temporal_env.client
    queue = f"sweeper-{ULID()}"
    legacy_id = f"{LEGACY_SWEEP_SCHEDULE_PREFIX}-{queue}"
    await client.create_schedule(
        legacy_id,
        Schedule(
            action=ScheduleActionStartWorkflow(
                SweepSagaOutbox.run,
                SweepInput(stale_after_s=15, rows_max=10, batch_size_max=10),
                id=f"sweep-saga-outbox-{queue}",
                task_queue=queue,
            ),
            spec=ScheduleSpec(),
            state=ScheduleState(paused=True),
        ),
    )
    async with build_worker(client=client, cluster=worker_cluster, task_queue=queue):
        handle = await ensure_sweeper(client, queue)
        try:
            with pytest.raises(RPCError) as gone:
                await client.get_schedule_handle(legacy_id).describe()
            assert gone.value.status is RPCStatusCode.NOT_FOUND
            described = await handle.describe()
            assert described.status is WorkflowExecutionStatus.RUNNING
            assert await described.static_summary() == (
                "outbox sweeper: every 10 s, transfers reserved 15 s ago without a saga"
            )
        finally:
            await handle.terminate()
