"""Records the workflow histories that `test_replay.py` replays (not collected by default).

Run it after a deliberate, patched workflow change, and commit the new files:

    python -m pytest tests/replay/record_histories.py

It drives real sagas through the API and the dispatcher on the session's stack: a batch that
posts, one that is compensated, one that does both, and one outbox sweep; and one run of the
long-running sweeper, to its continue-as-new (`-k sweeper` records only that one).
"""

import asyncio
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment
from ulid import ULID

from ledger.limits import OUTBOX_SWEEP_ROWS_MAX, SAGA_BATCH_SIZE_MAX
from shards.cluster import ShardCluster
from tests.conftest import TASK_QUEUE
from tests.integration.cross_shard import (
    CrossPair,
    account_on,
    fund,
    open_cross_pair,
    reserve_only,
    settled,
    sweep_now,
    tenant_of,
)
from tests.integration.helpers import transfer
from workflows.handover.connect import open_settlement
from workflows.sweep.inputs import SweeperInput, SweepInput
from workflows.sweep.workflow import SweepSagaOutboxForever
from workflows.worker import build_worker

HISTORIES = Path(__file__).parent / "histories"

pytestmark = pytest.mark.usefixtures("books")


async def _save(
    env: WorkflowEnvironment, workflow_id: str, name: str, *, run_id: str | None = None
) -> None:
    history = await env.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())


async def _workflow_of(api: httpx.AsyncClient, transfer_id: str) -> str:
    return (await api.get(f"/v1/transfers/{transfer_id}")).json()["saga"]["workflow_id"]


async def test_record_histories(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
) -> None:
    """Record one history per kind of run."""
    HISTORIES.mkdir(exist_ok=True)
    pair = await open_cross_pair(api)
    await fund(api, pair, 10_000)

    posted = await transfer(api, pair.source["id"], pair.target["id"], 100)
    assert posted.status_code == 201, posted.text
    await _save(temporal_env, await _workflow_of(api, posted.json()["id"]), "settle-posted")

    frozen = await account_on(api, pair.target["shard"])
    assert (await api.post(f"/v1/accounts/{frozen['id']}/freeze")).status_code == 200
    refused = await transfer(api, pair.source["id"], frozen["id"], 100)
    assert refused.status_code == 409, refused.text
    (failed, *_) = await settled(api, pair.source["id"])
    await _save(temporal_env, await _workflow_of(api, failed["id"]), "settle-released")

    tenant = await tenant_of(cluster, tenant_key)
    mixed = [
        await reserve_only(cluster, pair, 100, tenant_id=tenant),
        await reserve_only(cluster, pair, 200, tenant_id=tenant),
    ]
    mixed.append(
        await reserve_only(
            cluster, CrossPair(pair.funding, pair.source, frozen), 300, tenant_id=tenant
        )
    )
    async with open_settlement(
        cluster,
        temporal_address=temporal_address,
        namespace="default",
        task_queue=TASK_QUEUE,
        batch_window_ms=200,
        batch_size_max=10,
    ) as dispatcher:
        await asyncio.gather(*(dispatcher.hand_over(r, wait_s=10) for r in mixed))
    await _save(
        temporal_env, await _workflow_of(api, mixed[0].transfer_id), "settle-post-and-release"
    )

    orphan = await reserve_only(cluster, pair, 100, tenant_id=tenant)
    sweep_id = f"record-sweep-{ULID()}"
    sweep = await sweep_now(temporal_env.client, TASK_QUEUE, workflow_id=sweep_id)
    assert sweep.started == 1
    await settled(api)
    await _save(temporal_env, sweep_id, "sweep-started")
    assert await _workflow_of(api, orphan.transfer_id)


async def test_record_sweeper_history(
    temporal_env: WorkflowEnvironment, worker_cluster: ShardCluster
) -> None:
    """One run of the sweeper: two sweeps, two pauses, continued as new."""
    client = temporal_env.client
    queue = f"record-sweeper-{ULID()}"
    async with build_worker(client=client, cluster=worker_cluster, task_queue=queue):
        first = await client.start_workflow(
            SweepSagaOutboxForever.run,
            SweeperInput(
                sweep=SweepInput(
                    stale_after_s=3600,
                    rows_max=OUTBOX_SWEEP_ROWS_MAX,
                    batch_size_max=SAGA_BATCH_SIZE_MAX,
                ),
                interval_s=0.2,
                sweeps_per_run_max=2,
            ),
            id=f"record-sweeper-{ULID()}",
            task_queue=queue,
        )
        for _ in range(100):
            if (await first.describe()).run_id != first.result_run_id:
                break
            await asyncio.sleep(0.1)
        await _save(temporal_env, first.id, "sweep-forever", run_id=first.result_run_id)
        await client.get_workflow_handle(first.id).terminate()
