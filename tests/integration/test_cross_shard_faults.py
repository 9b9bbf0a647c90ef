"""Crashes between the steps of a cross-shard transfer never leave a hold unsettled.

Each test breaks one piece (the worker, the API, Temporal, a shard, a workflow) at one
point of the saga, repairs it, and shows the transfer settles exactly once with every
shard's books balanced (`books`). Tests that need their sagas to stall run them on a task
queue of their own, served by an API of their own.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from ulid import ULID

from api.app import create_app
from ledgerflow.devstack import EmbeddedPostgres, TemporalDevServer, free_port
from shards.cluster import ShardCluster
from shards.transfers import find_stuck_transfers
from tests.conftest import TASK_QUEUE, served, settlement_config
from tests.integration.cross_shard import (
    CrossPair,
    fund,
    open_cross_pair,
    reserve_only,
    saga_count,
    settled,
    sweep_now,
    tenant_of,
)
from tests.integration.helpers import balance, run_ledgerflow, transfer
from workflows.handover.connect import open_settlement
from workflows.handover.dispatcher import DeferredBecause
from workflows.search_attributes import SEARCH_ATTRIBUTE_TYPES
from workflows.settlement.activities import SettlementActivities
from workflows.settlement.inputs import CreditFundsInput, CreditOutcome, FinishHoldsInput
from workflows.sweep.start import sweeper_workflow_id
from workflows.worker import build_worker

pytestmark = pytest.mark.usefixtures("books")


@asynccontextmanager
async def api_settling_on(
    task_queue: str, shard_dsns: list[str], temporal_address: str, tenant_key: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A second API process whose sagas run on `task_queue`; it answers after 0.3 s."""
    config = settlement_config(shard_dsns, temporal_address, task_queue=task_queue, sync_wait_s=0.3)
    async with served(create_app(config), tenant_key) as client:
        yield client


class PostFailsActivities(SettlementActivities):
    """A worker that dies after the credit: its post attempts fail until it is stopped."""

    def __init__(self, cluster: ShardCluster) -> None:
        super().__init__(cluster)
        self.post_attempted = asyncio.Event()

    @activity.defn(name="post_holds")
    async def post_holds(self, holds: FinishHoldsInput) -> None:
        """Fail like a worker that crashed mid-step."""
        self.post_attempted.set()
        raise ApplicationError(f"worker going away before posting {holds.batch_id}")


async def test_saga_finishes_on_a_new_worker(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    shard_dsns: list[str],
    temporal_address: str,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    worker_cluster: ShardCluster,
) -> None:
    """The worker stops after the credit and before the post: the transfer waits at step
    `credited` (destination credited, source still held), and a new worker posts it."""
    queue = f"test-new-worker-{ULID()}"
    pair = await open_cross_pair(api)
    await fund(api, pair, 5_000)
    faulty = PostFailsActivities(worker_cluster)
    client = temporal_env.client
    async with api_settling_on(queue, shard_dsns, temporal_address, tenant_key) as api_q:
        async with build_worker(
            client=client, cluster=worker_cluster, task_queue=queue, activities=faulty
        ):
            response = await transfer(api_q, pair.source["id"], pair.target["id"], 1_200)
            assert response.status_code == 202, response.text
            await asyncio.wait_for(faulty.post_attempted.wait(), timeout=10)

        midway = (await api.get(f"/v1/transfers/{response.json()['id']}")).json()
        assert midway["status"] == "processing"
        assert midway["saga"]["step"] == "credited"
        assert (await balance(api, pair.target["id"]))["posted"] == 1_200
        assert (await balance(api, pair.source["id"]))["held"] == 1_200

        async with build_worker(client=client, cluster=worker_cluster, task_queue=queue):
            (done,) = await settled(api, pair.source["id"])
    assert done["status"] == "posted"
    assert await balance(api, pair.source["id"]) == {
        "posted": 3_800,
        "pending": 0,
        "held": 0,
        "available": 3_800,
    }
    assert await saga_count(client, cluster, done["id"]) == 1


async def test_sweeper_settles_a_reserve_the_api_never_handed_over(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    shard_dsns: list[str],
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
) -> None:
    """An API killed right after the reserve leaves a hold and an unclaimed outbox row,
    which `ledgerflow transfers stuck` lists; a sweep claims it and a saga settles it,
    showing its transfers, total and shards as its summary line. The session's sweeper is
    one long-running workflow with a fixed id, not a workflow per sweep."""
    client = temporal_env.client
    sweeper = await client.get_workflow_handle(sweeper_workflow_id(TASK_QUEUE)).describe()
    assert sweeper.status is WorkflowExecutionStatus.RUNNING
    assert sweeper.workflow_type == "SweepSagaOutboxForever"
    assert (await sweeper.static_summary()).startswith("outbox sweeper: every 10 s")

    pair = await open_cross_pair(api)
    await fund(api, pair, 2_000)
    reserved = await reserve_only(
        cluster, pair, 700, tenant_id=await tenant_of(cluster, tenant_key)
    )
    orphan = (await api.get(f"/v1/transfers/{reserved.transfer_id}")).json()
    assert orphan["status"] == "processing"
    assert orphan["saga"] == {
        "step": "reserved",
        "workflow_id": None,
        "source_shard": pair.source["shard"],
        "destination_shard": pair.target["shard"],
    }
    assert (await balance(api, pair.source["id"]))["held"] == 700
    stuck = await find_stuck_transfers(cluster, older_than_s=0)
    assert [(t.saga_step, t.workflow_id) for t in stuck if t.id == reserved.transfer_id] == [
        ("reserved", None)
    ]
    # The table and the JSON at once: the sweep claims the row once it is 15 s old.
    (code, out, err), (json_code, json_out, json_err) = await asyncio.gather(
        run_ledgerflow(shard_dsns, "transfers", "stuck", "--older-than", "0s"),
        run_ledgerflow(shard_dsns, "transfers", "stuck", "--older-than", "0s", "--json"),
    )
    assert json_code == 1, json_err
    (row,) = [row for row in json.loads(json_out)["transfers"] if row["id"] == reserved.transfer_id]
    assert (row["amount"], row["saga_step"], row["workflow_id"]) == (700, "reserved", None)
    assert code == 1, err
    listed = next(line for line in out.splitlines() if reserved.transfer_id in line)
    assert "7.00 USD" in listed
    assert "reserved" in listed
    assert "(not handed over)" in listed
    (code, out, err), (json_code, json_out, json_err) = await asyncio.gather(
        run_ledgerflow(shard_dsns, "transfers", "stuck", "--older-than", "1d"),
        run_ledgerflow(shard_dsns, "transfers", "stuck", "--older-than", "1d", "--json"),
    )
    assert code == 0, err
    assert "no money has been in flight for more than 1d" in out
    assert (json_code, json.loads(json_out)) == (
        0,
        {"transfers": [], "followups": [], "unreachable": []},
    ), json_err

    outcome = await sweep_now(client, TASK_QUEUE)
    assert outcome.started >= 1
    (done,) = await settled(api, pair.source["id"])
    assert done["status"] == "posted"
    assert done["saga"]["workflow_id"].startswith("settle-")
    assert (await balance(api, pair.target["id"]))["available"] == 700
    assert await saga_count(client, cluster, reserved.transfer_id) == 1
    saga = await client.get_workflow_handle(done["saga"]["workflow_id"]).describe()
    shards = f"shard {pair.source['shard']} → {pair.target['shard']}"
    assert await saga.static_summary() == f"1 transfer, 7.00 USD, {shards}"
    assert reserved.transfer_id in (await saga.static_details() or "")


@dataclass
class _Observed:
    """What a dispatcher reported (`workflows.handover.dispatcher.SettlementObserver`).

    It only records: the dispatcher reports a finished saga from a task's done-callback,
    where a failed assertion would be logged by the event loop and never reach the test.
    The tests assert on what was recorded."""

    started: list[tuple[int, int]] = field(default_factory=list)
    finished: list[tuple[int, float]] = field(default_factory=list)
    deferred: list[tuple[str, int]] = field(default_factory=list)

    def saga_started(self, source_shard: int, transfers: int) -> None:
        self.started.append((source_shard, transfers))

    def saga_finished(self, source_shard: int, seconds: float) -> None:
        self.finished.append((source_shard, seconds))

    def handover_deferred(self, because: DeferredBecause, transfers: int) -> None:
        self.deferred.append((because, transfers))


async def test_dispatcher_reports_the_saga_it_started_and_saw_finish(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    tenant_key: str,
    temporal_address: str,
) -> None:
    """A hand-over that waits for its saga reports one saga started for its source shard,
    and the same saga finished a positive time after its batch closed."""
    pair = await open_cross_pair(api)
    await fund(api, pair, 1_000)
    reserved = await reserve_only(
        cluster, pair, 300, tenant_id=await tenant_of(cluster, tenant_key)
    )
    observed = _Observed()
    async with open_settlement(
        cluster,
        temporal_address=temporal_address,
        namespace="default",
        task_queue=TASK_QUEUE,
        batch_window_ms=0,
        batch_size_max=10,
        observer=observed,
    ) as dispatcher:
        outcome = await dispatcher.hand_over(reserved, wait_s=20)
        assert outcome is not None, "the saga did not finish within the wait"
        assert outcome.failure_code is None
        # The report comes from a done-callback that may run just after the wait returns.
        for _ in range(50):
            if observed.finished:
                break
            await asyncio.sleep(0.01)
    assert observed.started == [(pair.source["shard"], 1)]
    assert [shard for shard, _ in observed.finished] == [pair.source["shard"]]
    assert all(0 < seconds < 20 for _, seconds in observed.finished), observed.finished
    assert (await balance(api, pair.target["id"]))["available"] == 300


async def test_temporal_down_at_hand_over_starts_the_same_workflow_later(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
) -> None:
    """Temporal unreachable when the API hands over: the rows stay claimed under their
    workflow id, and the sweep starts exactly that id once Temporal answers."""
    client = temporal_env.client
    pair = await open_cross_pair(api)
    await fund(api, pair, 2_000)
    reserved = await reserve_only(
        cluster, pair, 900, tenant_id=await tenant_of(cluster, tenant_key)
    )
    observed = _Observed()
    async with open_settlement(
        cluster,
        temporal_address=f"127.0.0.1:{free_port()}",
        namespace="default",
        task_queue=TASK_QUEUE,
        batch_window_ms=0,
        batch_size_max=10,
        observer=observed,
    ) as unreachable:
        await unreachable.hand_over(reserved, wait_s=1)
    assert observed.deferred == [("temporal", 1)]
    assert observed.started == []

    claimed = (await api.get(f"/v1/transfers/{reserved.transfer_id}")).json()
    assert claimed["status"] == "processing"
    workflow_id = claimed["saga"]["workflow_id"]
    assert workflow_id == (f"settle-{pair.source['shard']}-{reserved.transfer_id}")
    with pytest.raises(RPCError) as missing:
        await client.get_workflow_handle(workflow_id).describe()
    assert missing.value.status is RPCStatusCode.NOT_FOUND

    outcome = await sweep_now(client, TASK_QUEUE)
    assert outcome.restarted >= 1
    (done,) = await settled(api, pair.source["id"])
    assert done["status"] == "posted"
    assert done["saga"]["workflow_id"] == workflow_id
    assert await saga_count(client, cluster, reserved.transfer_id) == 1


async def test_a_202_keeps_its_idempotency_key_bound_to_its_request(
    api: httpx.AsyncClient,
    shard_dsns: list[str],
    temporal_address: str,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    worker_cluster: ShardCluster,
) -> None:
    """A 202 is not frozen against its key, yet the key stays bound to its body: a retry
    with the same body answers the transfer's current state, one with another body (here a
    transfer on other shards, where the first one's operation key is unknown) is 400
    `idempotency_key_reused` and moves nothing."""
    queue = f"test-no-worker-{ULID()}"
    pair = await open_cross_pair(api, source_shard=0, target_shard=1)
    other = await open_cross_pair(api, source_shard=2, target_shard=3)
    await fund(api, pair, 2_000)
    await fund(api, other, 2_000)
    key = f"test-{ULID()}"
    async with api_settling_on(queue, shard_dsns, temporal_address, tenant_key) as api_q:
        first = await transfer(api_q, pair.source["id"], pair.target["id"], 500, key=key)
        assert first.status_code == 202, first.text

        reused = await transfer(api_q, other.source["id"], other.funding["id"], 300, key=key)
        assert reused.status_code == 400, reused.text
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
        assert (await balance(api, other.source["id"]))["posted"] == 2_000

        again = await transfer(api_q, pair.source["id"], pair.target["id"], 500, key=key)
        assert again.status_code == 202, again.text
        assert again.json()["id"] == first.json()["id"]
        async with build_worker(
            client=temporal_env.client, cluster=worker_cluster, task_queue=queue
        ):
            (done,) = await settled(api, pair.source["id"])
            assert done["status"] == "posted"
            final = await transfer(api_q, pair.source["id"], pair.target["id"], 500, key=key)
    assert final.status_code == 201, final.text
    assert final.json()["id"] == first.json()["id"]
    assert (await balance(api, pair.source["id"]))["posted"] == 1_500
    assert (await balance(api, pair.target["id"]))["posted"] == 500
    assert (await balance(api, other.source["id"]))["posted"] == 2_000


async def test_transfers_of_a_terminated_saga_are_settled_again(
    api: httpx.AsyncClient,
    shard_dsns: list[str],
    temporal_address: str,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
) -> None:
    """An operator terminates a saga before it ran: the sweep re-claims its transfers under
    a new id (never while the old one runs) and they settle once."""
    client = temporal_env.client
    queue = f"test-no-worker-{ULID()}"
    pair = await open_cross_pair(api)
    await fund(api, pair, 2_000)
    async with api_settling_on(queue, shard_dsns, temporal_address, tenant_key) as api_q:
        response = await transfer(api_q, pair.source["id"], pair.target["id"], 500)
    assert response.status_code == 202, response.text
    workflow_id = response.json()["saga"]["workflow_id"]
    await client.get_workflow_handle(workflow_id).terminate(reason="operator test")

    outcome = await sweep_now(client, TASK_QUEUE)
    assert outcome.reclaimed == 1
    (done,) = await settled(api, pair.source["id"])
    assert done["status"] == "posted"
    assert done["saga"]["workflow_id"] == f"{workflow_id}-r1"
    assert (await balance(api, pair.target["id"]))["available"] == 500


class CreditWatchedActivities(SettlementActivities):
    """A worker that signals the first credit attempt that failed."""

    def __init__(self, cluster: ShardCluster) -> None:
        super().__init__(cluster)
        self.credit_failed = asyncio.Event()

    @activity.defn(name="credit_funds")
    async def credit_funds(self, credit: CreditFundsInput) -> CreditOutcome:
        try:
            return await super().credit_funds(credit)
        except Exception:
            self.credit_failed.set()
            raise


async def test_destination_shard_restart_mid_batch(
    api: httpx.AsyncClient,
    shard_dsns: list[str],
    shard_servers: list[EmbeddedPostgres],
    temporal_address: str,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    worker_cluster: ShardCluster,
) -> None:
    """A batch is reserved, then its destination shard goes down before the credit: the
    credit fails while it is down (seen failing before the shard is started again), retries
    with backoff, and the whole batch settles once the shard is back."""
    client = temporal_env.client
    queue = f"test-shard-restart-{ULID()}"
    pair = await open_cross_pair(api)
    await fund(api, pair, 10_000)
    async with api_settling_on(queue, shard_dsns, temporal_address, tenant_key) as api_q:
        responses = await asyncio.gather(
            *(transfer(api_q, pair.source["id"], pair.target["id"], 100) for _ in range(20))
        )
    assert {r.status_code for r in responses} == {202}, [r.text for r in responses]
    assert (await balance(api, pair.source["id"]))["held"] == 2_000

    destination = shard_servers[pair.target["shard"]]
    await asyncio.to_thread(destination.stop)
    try:
        watched = CreditWatchedActivities(worker_cluster)
        async with build_worker(
            client=client, cluster=worker_cluster, task_queue=queue, activities=watched
        ):
            await asyncio.wait_for(watched.credit_failed.wait(), timeout=60)
            await asyncio.to_thread(destination.start)
            done = await settled(api, pair.source["id"])
    finally:
        await asyncio.to_thread(destination.start)
    assert [t["status"] for t in done] == ["posted"] * 20
    assert (await balance(api, pair.target["id"]))["available"] == 2_000
    assert (await balance(api, pair.source["id"]))["available"] == 8_000


async def test_sagas_survive_a_temporal_restart(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    tenant_key: str,
    worker_cluster: ShardCluster,
    tmp_path: Path,
) -> None:
    """Sagas handed over to a Temporal server (SQLite file, as `ledgerflow dev` runs it) that
    then restarts are still there afterwards, and a worker settles every transfer once."""
    server = TemporalDevServer(
        db_file=tmp_path / "temporal.db",
        port=free_port(),
        ui_port=None,
        search_attributes=SEARCH_ATTRIBUTE_TYPES,
    )
    await asyncio.to_thread(server.start)
    try:
        pair = await open_cross_pair(api)
        await fund(api, pair, 2_000)
        tenant = await tenant_of(cluster, tenant_key)
        reserved = [await reserve_only(cluster, pair, 100, tenant_id=tenant) for _ in range(5)]
        queue = f"test-restart-{ULID()}"
        observed = _Observed()
        async with open_settlement(
            cluster,
            temporal_address=server.address,
            namespace="default",
            task_queue=queue,
            batch_window_ms=50,
            batch_size_max=10,
            observer=observed,
        ) as dispatcher:
            await asyncio.gather(*(dispatcher.hand_over(r, wait_s=0.5) for r in reserved))
        assert observed.started == [(pair.source["shard"], 5)]
        assert observed.finished == []  # no worker yet: nothing settled while it waited
        (workflow_id,) = {t["saga"]["workflow_id"] for t in await processing(api, pair)}

        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        client = await Client.connect(server.address)
        async with build_worker(client=client, cluster=worker_cluster, task_queue=queue):
            done = await settled(api, pair.source["id"])
        assert [t["status"] for t in done] == ["posted"] * 5
        assert {t["saga"]["workflow_id"] for t in done} == {workflow_id}
        assert (await balance(api, pair.target["id"]))["available"] == 500
    finally:
        await asyncio.to_thread(server.stop)


async def processing(api: httpx.AsyncClient, pair: CrossPair) -> list[dict]:
    """The transfers out of the pair's source that are still settling."""
    found = (await api.get("/v1/transfers", params={"limit": 100})).json()["data"]
    mine = [t for t in found if t["debit_account_id"] == pair.source["id"]]
    assert mine
    assert all(t["status"] == "processing" for t in mine)
    return mine


class CreditRefusedActivities(SettlementActivities):
    """A destination that refuses a whole credit step with a business error."""

    @activity.defn(name="credit_funds")
    async def credit_funds(self, credit: CreditFundsInput) -> CreditOutcome:
        """Refuse the step as a whole, as an escaping `LedgerError` would."""
        raise ApplicationError("no such account", type="account_not_found", non_retryable=True)


async def test_a_credit_refused_as_a_whole_releases_its_holds(
    api: httpx.AsyncClient,
    shard_dsns: list[str],
    temporal_address: str,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    worker_cluster: ShardCluster,
) -> None:
    """A credit step that fails with a non-retryable code is not retried and does not fail
    the saga: its transfers are compensated (hold released, `failed` with that code)."""
    queue = f"test-credit-refused-{ULID()}"
    pair = await open_cross_pair(api)
    await fund(api, pair, 1_000)
    faulty = CreditRefusedActivities(worker_cluster)
    async with (
        build_worker(
            client=temporal_env.client, cluster=worker_cluster, task_queue=queue, activities=faulty
        ),
        api_settling_on(queue, shard_dsns, temporal_address, tenant_key) as api_q,
    ):
        response = await transfer(api_q, pair.source["id"], pair.target["id"], 400)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "account_not_found"
    (failed,) = await settled(api, pair.source["id"])
    assert (failed["status"], failed["failure_code"]) == ("failed", "account_not_found")
    assert (await balance(api, pair.source["id"]))["available"] == 1_000
    assert (await balance(api, pair.target["id"]))["posted"] == 0
