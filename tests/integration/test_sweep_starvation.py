"""The outbox sweep cannot be starved: neither by the rows of sagas that keep running nor by
one shard it cannot reach.

These tests drive `OutboxSweeper` itself (what one sweep does), against the session's
shards and Temporal server, whatever runs the sweep on a timer.
"""

import asyncio

import asyncpg
import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from ulid import ULID

from ledger.ids import even_shard_map
from ledger.limits import SAGA_BATCH_SIZE_MAX
from ledgerflow.devstack import free_port
from shards.cluster import Shard, ShardCluster
from tests.conftest import TASK_QUEUE
from tests.integration.cross_shard import fund, open_cross_pair, reserve_only, settled, tenant_of
from tests.integration.helpers import balance
from workflows.handover.connect import open_settlement
from workflows.sweep.activities import OutboxSweeper
from workflows.sweep.inputs import SweepInput
from workflows.worker import build_worker

pytestmark = pytest.mark.usefixtures("books")


def sweep_input(rows_max: int) -> SweepInput:
    """One sweep that treats every open row as stale and reads at most `rows_max` rows."""
    return SweepInput(stale_after_s=0, rows_max=rows_max, batch_size_max=SAGA_BATCH_SIZE_MAX)


async def recorded_workflow(cluster: ShardCluster, shard: int, transfer_id: str) -> str | None:
    """The workflow the outbox row of `transfer_id` names (None while unclaimed)."""
    async with cluster.shards[shard].pool.acquire() as conn:
        return await conn.fetchval(
            "select workflow_id from saga_outbox where transfer_id = $1", transfer_id
        )


async def workflow_exists(env: WorkflowEnvironment, workflow_id: str) -> bool:
    """Whether Temporal knows a workflow with this id."""
    try:
        await env.client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def test_rows_of_running_sagas_do_not_hide_the_others(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    worker_cluster: ShardCluster,
) -> None:
    """Five reserved transfers settle in one saga that keeps running (no worker serves its
    queue yet); behind them, one transfer was claimed but its saga never started, and one
    was never handed over. With room for three rows per read, the first sweep still starts
    the unhanded one, and a later sweep reaches the claimed one behind the running rows."""
    queue = f"test-sweep-window-{ULID()}"
    pair = await open_cross_pair(api)
    await fund(api, pair, 10_000)
    source = pair.source["shard"]
    tenant = await tenant_of(cluster, tenant_key)

    running = [await reserve_only(cluster, pair, 100, tenant_id=tenant) for _ in range(5)]
    async with open_settlement(
        cluster,
        temporal_address=temporal_env.client.service_client.config.target_host,
        namespace="default",
        task_queue=queue,
        batch_window_ms=100,
        batch_size_max=10,
    ) as dispatcher:
        await asyncio.gather(*(dispatcher.hand_over(r, wait_s=0.5) for r in running))
    (running_id,) = {await recorded_workflow(cluster, source, r.transfer_id) for r in running}
    assert running_id is not None
    described = await temporal_env.client.get_workflow_handle(running_id).describe()
    assert described.status is WorkflowExecutionStatus.RUNNING

    not_started = await reserve_only(cluster, pair, 200, tenant_id=tenant)
    async with open_settlement(
        cluster,
        temporal_address=f"127.0.0.1:{free_port()}",  # nothing listens: the start fails
        namespace="default",
        task_queue=queue,
        batch_window_ms=0,
        batch_size_max=10,
    ) as unreachable:
        await unreachable.hand_over(not_started, wait_s=1)
    not_started_id = await recorded_workflow(cluster, source, not_started.transfer_id)
    assert not_started_id is not None
    assert not await workflow_exists(temporal_env, not_started_id)

    never_handed_over = await reserve_only(cluster, pair, 300, tenant_id=tenant)

    sweeper = OutboxSweeper(cluster, temporal_env.client, task_queue=queue)
    first = await sweeper.sweep(sweep_input(rows_max=3))
    assert first.started >= 1
    assert first.running >= 3
    started_id = await recorded_workflow(cluster, source, never_handed_over.transfer_id)
    assert started_id is not None
    assert await workflow_exists(temporal_env, started_id)

    for _ in range(5):  # the running rows rotate to the back; others may be in the window
        if await workflow_exists(temporal_env, not_started_id):
            break
        await sweeper.sweep(sweep_input(rows_max=3))
    assert await workflow_exists(temporal_env, not_started_id)

    async with build_worker(client=temporal_env.client, cluster=worker_cluster, task_queue=queue):
        done = await settled(api, pair.source["id"])
    assert [t["status"] for t in done] == ["posted"] * 7
    assert (await balance(api, pair.target["id"]))["posted"] == 500 + 200 + 300
    assert (await balance(api, pair.source["id"]))["available"] == 10_000 - 1_000


async def test_an_unreachable_shard_does_not_stop_the_sweep_of_the_others(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    shard_dsns: list[str],
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
) -> None:
    """Shard 0 is unreachable (nothing listens where the sweep's pool points): the sweep
    skips it, still starts the saga of a transfer left on shard 3, and then fails, naming
    shard 0, so that it is retried."""
    pair = await open_cross_pair(api, source_shard=3, target_shard=2)
    await fund(api, pair, 1_000)
    orphan = await reserve_only(cluster, pair, 400, tenant_id=await tenant_of(cluster, tenant_key))

    dsns = [f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", *shard_dsns[1:]]
    shards = [
        Shard(index=i, dsn=dsn, pool=await asyncpg.create_pool(dsn, min_size=0, max_size=2))
        for i, dsn in enumerate(dsns)
    ]
    broken = ShardCluster(shards, even_shard_map(len(dsns)))
    try:
        sweeper = OutboxSweeper(broken, temporal_env.client, task_queue=TASK_QUEUE)
        with pytest.raises(ApplicationError) as failed:
            await sweeper.sweep(sweep_input(rows_max=100))
    finally:
        await broken.close()
    assert failed.value.type == "shard_unavailable"
    assert "shards [0]" in str(failed.value)
    assert set(failed.value.details[0]["failed_shards"]) == {0}
    assert failed.value.details[0]["started"] >= 1

    (done,) = await settled(api, pair.source["id"])
    assert done["id"] == orphan.transfer_id
    assert done["status"] == "posted"
    assert (await balance(api, pair.target["id"]))["posted"] == 400
    assert (await balance(api, pair.source["id"]))["available"] == 600
