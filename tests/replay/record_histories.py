"""Records the workflow histories that `test_replay.py` replays (not collected by default).

Run it after a deliberate, patched workflow change, and commit the new files; this one
command re-records every history, on a stack of its own (embedded PostgreSQL shards and the
Temporal dev server, as for the integration tests):

    python -m pytest tests/replay/record_histories.py

Each history comes from real sagas on that stack, through the API or the dispatcher:
- `settle-posted`: one transfer to one destination, posted on the first attempt;
- `settle-released`: one transfer refused by its destination (a frozen account), released;
- `settle-several-destinations`: one batch crediting three destination shards, where one
  account is frozen: two transfers posted and one released, side by side;
- `settle-credit-retried`: the destination shard is stopped while the saga credits it; the
  credit fails, backs off on a durable timer, and succeeds once the shard is back;
- `settle-refused-as-a-whole`: a batch to two destinations whose credit on one of them is
  refused as a whole (a `LedgerError` that escapes the step): those transfers are released,
  the others posted;
- `sweep-started`: one outbox sweep that starts the saga of an orphaned reserve;
- `sweep-forever`: one run of the long-running sweeper, to its continue-as-new
  (`-k sweeper` records only that one).

Each recording checks that its history shows what its name says (several credit steps, a
credit attempted more than once, a refusal), so a change in the recorder cannot quietly
record something else.
"""

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from ulid import ULID

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import OUTBOX_SWEEP_ROWS_MAX, SAGA_BATCH_SIZE_MAX
from ledger.posting import Movement
from ledgerflow.devstack import EmbeddedPostgres
from shards.cluster import ShardCluster
from shards.posting_types import PostingRequest, PostingResult
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
from workflows.settlement.activities import SettlementActivities
from workflows.sweep.inputs import SweeperInput, SweepInput
from workflows.sweep.workflow import SweepSagaOutboxForever
from workflows.worker import build_worker

HISTORIES = Path(__file__).parent / "histories"

pytestmark = pytest.mark.usefixtures("books")


@dataclass(frozen=True)
class LocalActivity:
    """One local activity attempt as its marker in a history records it."""

    activity_type: str
    attempt: int
    failed: bool


def local_activities(history: WorkflowHistory) -> list[LocalActivity]:
    """The local activity markers of a history, in order."""
    found = []
    for event in history.events:
        if not event.HasField("marker_recorded_event_attributes"):
            continue
        marker = event.marker_recorded_event_attributes
        (payload,) = marker.details["data"].payloads
        data = json.loads(payload.data)
        found.append(
            LocalActivity(data["activity_type"], data["attempt"], marker.HasField("failure"))
        )
    return found


async def _save(
    env: WorkflowEnvironment, workflow_id: str, name: str, *, run_id: str | None = None
) -> WorkflowHistory:
    history = await env.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    return history


async def _workflow_of(api: httpx.AsyncClient, transfer_id: str) -> str:
    return (await api.get(f"/v1/transfers/{transfer_id}")).json()["saga"]["workflow_id"]


async def _hand_over_together(
    cluster: ShardCluster, temporal_address: str, task_queue: str, reserved: list[PostingRequest]
) -> None:
    """Hand reserved transfers over in one batch, as the API's dispatcher does."""
    async with open_settlement(
        cluster,
        temporal_address=temporal_address,
        namespace="default",
        task_queue=task_queue,
        batch_window_ms=200,
        batch_size_max=SAGA_BATCH_SIZE_MAX,
    ) as dispatcher:
        await asyncio.gather(*(dispatcher.hand_over(r, wait_s=1) for r in reserved))


async def test_record_histories(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
) -> None:
    """Record the sagas that run on the session's worker, and one outbox sweep."""
    HISTORIES.mkdir(exist_ok=True)
    pair = await open_cross_pair(api, source_shard=0, target_shard=1)
    await fund(api, pair, 10_000)

    posted = await transfer(api, pair.source["id"], pair.target["id"], 100)
    assert posted.status_code == 201, posted.text
    await _save(temporal_env, await _workflow_of(api, posted.json()["id"]), "settle-posted")

    frozen = await account_on(api, 3)
    assert (await api.post(f"/v1/accounts/{frozen['id']}/freeze")).status_code == 200
    refused = await transfer(api, pair.source["id"], frozen["id"], 100)
    assert refused.status_code == 409, refused.text
    (failed, *_) = await settled(api, pair.source["id"])
    await _save(temporal_env, await _workflow_of(api, failed["id"]), "settle-released")

    tenant = await tenant_of(cluster, tenant_key)
    on_shard_2 = CrossPair(pair.funding, pair.source, await account_on(api, 2))
    to_frozen = CrossPair(pair.funding, pair.source, frozen)
    several = [
        await reserve_only(cluster, pair, 100, tenant_id=tenant),
        await reserve_only(cluster, on_shard_2, 200, tenant_id=tenant),
        await reserve_only(cluster, to_frozen, 300, tenant_id=tenant),
    ]
    await _hand_over_together(cluster, temporal_address, TASK_QUEUE, several)
    done = {t["id"]: t for t in await settled(api, pair.source["id"])}
    assert [done[r.transfer_id]["status"] for r in several] == ["posted", "posted", "failed"]
    history = await _save(
        temporal_env, await _workflow_of(api, several[0].transfer_id), "settle-several-destinations"
    )
    steps = [a.activity_type for a in local_activities(history)]
    assert steps.count("credit_funds") == 3, steps

    now = datetime.now(UTC)
    kinds = [
        await reserve_only(cluster, pair, 100, tenant_id=tenant),
        await reserve_only(
            cluster, on_shard_2, 200, tenant_id=tenant, expires_at=now + timedelta(hours=1)
        ),
        await reserve_only(
            cluster, pair, 300, tenant_id=tenant, available_on=now + timedelta(hours=1)
        ),
    ]
    await _hand_over_together(cluster, temporal_address, TASK_QUEUE, kinds)
    await settled(api, pair.source["id"])
    statuses = [(await api.get(f"/v1/transfers/{r.transfer_id}")).json()["status"] for r in kinds]
    assert statuses == ["posted", "pending", "posted"], statuses
    history = await _save(
        temporal_env, await _workflow_of(api, kinds[0].transfer_id), "settle-hold-and-deferred"
    )
    steps = [a.activity_type for a in local_activities(history)]
    assert "open_holds" in steps, steps
    assert (await api.post(f"/v1/transfers/{kinds[1].transfer_id}/void")).status_code == 200

    orphan = await reserve_only(cluster, pair, 100, tenant_id=tenant)
    sweep_id = f"record-sweep-{ULID()}"
    sweep = await sweep_now(temporal_env.client, TASK_QUEUE, workflow_id=sweep_id)
    assert sweep.started == 1
    await settled(api)
    await _save(temporal_env, sweep_id, "sweep-started")
    assert await _workflow_of(api, orphan.transfer_id)


async def test_record_a_retried_credit(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
    worker_cluster: ShardCluster,
    shard_servers: list[EmbeddedPostgres],
) -> None:
    """The destination shard is down while the saga credits it, and comes back: the credit
    fails, backs off on a durable timer, and its next attempt succeeds."""
    pair = await open_cross_pair(api, source_shard=0, target_shard=1)
    await fund(api, pair, 1_000)
    tenant = await tenant_of(cluster, tenant_key)
    reserved = [await reserve_only(cluster, pair, 100, tenant_id=tenant) for _ in range(2)]
    queue = f"record-retried-{ULID()}"
    destination = shard_servers[pair.target["shard"]]
    async with build_worker(client=temporal_env.client, cluster=worker_cluster, task_queue=queue):
        await asyncio.to_thread(destination.stop)
        try:
            await _hand_over_together(cluster, temporal_address, queue, reserved)
            await asyncio.sleep(3)  # past LOCAL_RETRY_THRESHOLD_S: the backoff is a timer
        finally:
            await asyncio.to_thread(destination.start)
        done = {t["id"]: t for t in await settled(api, pair.source["id"])}
    assert [done[r.transfer_id]["status"] for r in reserved] == ["posted", "posted"]
    history = await _save(
        temporal_env, await _workflow_of(api, reserved[0].transfer_id), "settle-credit-retried"
    )
    credits = [a for a in local_activities(history) if a.activity_type == "credit_funds"]
    assert credits[0].failed, credits
    assert credits[-1].attempt > 1, credits
    assert not credits[-1].failed, credits
    assert any(e.HasField("timer_started_event_attributes") for e in history.events)


class CreditRefusedOnShard(SettlementActivities):
    """A destination shard whose posting refuses a whole credit step with a business code.

    Today's posting code refuses transfers one by one and never refuses a whole step, so
    this is the one fault injected rather than caused: the LedgerError is raised where
    `post_batch` would raise it, and the real activity turns it into the saga's refusal.
    """

    def __init__(self, cluster: ShardCluster, *, refusing_shard: int) -> None:
        super().__init__(cluster)
        self._refusing_shard = refusing_shard

    async def _post(self, shard: int, requests: list[PostingRequest]) -> list[PostingResult]:
        if shard == self._refusing_shard and requests[0].movement is Movement.CREDIT_FUNDS:
            raise LedgerError(ErrorCode.ACCOUNT_NOT_FOUND, "the credit step was refused")
        return await super()._post(shard, requests)


async def test_record_a_credit_refused_as_a_whole(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
    worker_cluster: ShardCluster,
) -> None:
    """A batch to two destinations whose credit on one is refused as a whole: those
    transfers are released with the step's code, the others posted."""
    pair = await open_cross_pair(api, source_shard=0, target_shard=1)
    await fund(api, pair, 1_000)
    tenant = await tenant_of(cluster, tenant_key)
    other = CrossPair(pair.funding, pair.source, await account_on(api, 2))
    reserved = [
        await reserve_only(cluster, pair, 100, tenant_id=tenant),
        await reserve_only(cluster, other, 200, tenant_id=tenant),
        await reserve_only(cluster, other, 300, tenant_id=tenant),
    ]
    queue = f"record-refused-{ULID()}"
    refusing = CreditRefusedOnShard(worker_cluster, refusing_shard=2)
    async with build_worker(
        client=temporal_env.client, cluster=worker_cluster, task_queue=queue, activities=refusing
    ):
        await _hand_over_together(cluster, temporal_address, queue, reserved)
        done = {t["id"]: t for t in await settled(api, pair.source["id"])}
    outcomes = [
        (done[r.transfer_id]["status"], done[r.transfer_id]["failure_code"]) for r in reserved
    ]
    assert outcomes == [
        ("posted", None),
        ("failed", "account_not_found"),
        ("failed", "account_not_found"),
    ]
    history = await _save(
        temporal_env, await _workflow_of(api, reserved[0].transfer_id), "settle-refused-as-a-whole"
    )
    credits = [a for a in local_activities(history) if a.activity_type == "credit_funds"]
    assert sum(a.failed for a in credits) == 1, credits


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


async def test_record_atomic_histories(
    api: httpx.AsyncClient, temporal_env: WorkflowEnvironment
) -> None:
    """Two atomic batches over three shards: one posts every leg, one whose credit is
    refused voids the prepared credits and releases every hold."""
    funding = await account_on(api, 0, allow_overdraft=True)
    payer = await account_on(api, 0)
    assert (await transfer(api, funding["id"], payer["id"], 1_000)).status_code == 201
    targets = [await account_on(api, s) for s in (1, 2, 3)]

    async def atomic(credit_ids: list[str]) -> str:
        legs = [
            {
                "debit_account_id": payer["id"],
                "credit_account_id": c,
                "amount": 10,
                "currency": "USD",
            }
            for c in credit_ids
        ]
        response = await api.post("/v1/transfers/batch", json={"transfers": legs, "atomic": True})
        assert response.status_code == 200, response.text
        (*_, last) = await settled(api, payer["id"])
        return last["saga"]["workflow_id"]

    await _save(temporal_env, await atomic([t["id"] for t in targets]), "atomic-posted")
    assert (await api.post(f"/v1/accounts/{targets[1]['id']}/freeze")).status_code == 200
    await _save(temporal_env, await atomic([t["id"] for t in targets]), "atomic-released")
