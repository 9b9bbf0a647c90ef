"""Cross-shard transfers through the HTTP API, settled by batched Temporal sagas.

Every test checks the books afterwards (`books`), including the clearing invariant: the
clearing accounts of all shards sum to the money in flight, and to zero once sagas finish.
"""

import asyncio

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment
from ulid import ULID

from ledger.limits import BIGINT_MAX, SAGA_BATCH_SIZE_MAX
from shards.cluster import ShardCluster
from tests.conftest import TASK_QUEUE
from tests.integration.cross_shard import (
    CrossPair,
    account_on,
    fund,
    open_cross_pair,
    reserve_only,
    saga_count,
    settled,
    shard_of,
    tenant_of,
)
from tests.integration.helpers import balance, transfer
from workflows.handover.connect import open_settlement

pytestmark = pytest.mark.usefixtures("books")


async def test_transfer_across_shards_posts_through_one_saga(
    api: httpx.AsyncClient, cluster: ShardCluster, temporal_env: WorkflowEnvironment
) -> None:
    """201 posted within the wait, answered exactly as GET shows it afterwards (cross_shard,
    the saga step and its workflow); the workflow is found by its transfer id and reports
    the transfer as posted."""
    pair = await open_cross_pair(api)
    await fund(api, pair, 10_000)

    response = await transfer(api, pair.source["id"], pair.target["id"], 2_500)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "posted"
    assert body["cross_shard"] is True

    fetched = (await api.get(f"/v1/transfers/{body['id']}")).json()
    assert fetched == body
    assert fetched["status"] == "posted"
    assert fetched["cross_shard"] is True
    assert fetched["saga"]["step"] == "posted"
    assert fetched["saga"]["source_shard"] == pair.source["shard"]
    assert fetched["saga"]["destination_shard"] == pair.target["shard"]
    workflow_id = fetched["saga"]["workflow_id"]
    assert workflow_id.startswith(f"settle-{pair.source['shard']}-tr_")

    assert await balance(api, pair.source["id"]) == {
        "posted": 7_500,
        "pending": 0,
        "held": 0,
        "available": 7_500,
    }
    assert (await balance(api, pair.target["id"]))["available"] == 2_500

    client = temporal_env.client
    assert await saga_count(client, cluster, body["id"]) == 1
    handle = client.get_workflow_handle(workflow_id)
    states = await handle.query("transfers")
    assert {"transfer_id": body["id"], "step": "posted", "failure_code": None} in states
    described = await handle.describe()
    attributes = {k.name: v for k, v in described.typed_search_attributes}
    assert attributes["LedgerflowStatus"] == "completed"
    assert attributes["LedgerflowStep"] == "done"
    assert attributes["LedgerflowSourceShard"] == str(pair.source["shard"])
    assert str(pair.target["shard"]) in attributes["LedgerflowDestinationShards"]
    assert body["id"] in attributes["LedgerflowTransferIds"]


def _sample(metrics: str, name: str, labels: str) -> float:
    """The value of one sample in a Prometheus text page, 0 when absent."""
    prefix = f"{name}{{{labels}}} "
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


async def test_sagas_the_api_starts_show_in_its_metrics(api: httpx.AsyncClient) -> None:
    """/metrics counts the sagas this API process started per source shard, with their
    sizes and how long they took to settle."""
    pair = await open_cross_pair(api)
    await fund(api, pair, 1_000)
    labels = f'source_shard="{pair.source["shard"]}"'
    before = (await api.get("/metrics")).text

    assert (await transfer(api, pair.source["id"], pair.target["id"], 300)).status_code == 201

    after = (await api.get("/metrics")).text
    for name in ("ledgerflow_saga_batch_size_count", "ledgerflow_saga_seconds_count"):
        assert _sample(after, name, labels) >= _sample(before, name, labels) + 1, name
    assert (
        _sample(after, "ledgerflow_saga_batch_size_sum", labels)
        >= _sample(before, "ledgerflow_saga_batch_size_sum", labels) + 1
    )
    assert _sample(after, "ledgerflow_saga_seconds_sum", labels) > _sample(
        before, "ledgerflow_saga_seconds_sum", labels
    )


async def test_insufficient_funds_is_402_and_nothing_moves(api: httpx.AsyncClient) -> None:
    """The reserve refuses synchronously: 402, no hold, nothing credited, no saga."""
    pair = await open_cross_pair(api)
    await fund(api, pair, 100)
    response = await transfer(api, pair.source["id"], pair.target["id"], 101)
    assert response.status_code == 402, response.text
    assert response.json()["error"]["code"] == "insufficient_funds"
    assert (await balance(api, pair.source["id"]))["available"] == 100
    assert (await balance(api, pair.source["id"]))["held"] == 0
    assert (await balance(api, pair.target["id"]))["posted"] == 0


async def test_a_hold_past_the_bigint_range_is_400_and_nothing_moves(
    api: httpx.AsyncClient,
) -> None:
    """An overdrawn account whose available balance a hold would take past the bigint range:
    the reserve refuses with 400 `amount_overflow` (once a 500 from the shard), nothing is
    held and no saga starts."""
    pair = await open_cross_pair(api)
    bank = pair.funding["id"]
    overdrawn = await transfer(api, bank, pair.source["id"], BIGINT_MAX - 1)
    assert overdrawn.status_code == 201, overdrawn.text
    before = await balance(api, bank)
    response = await transfer(api, bank, pair.target["id"], 2)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "amount_overflow"
    assert response.json()["error"]["param"] == "amount"
    assert await balance(api, bank) == before
    assert (await balance(api, pair.target["id"]))["posted"] == 0
    listed = (await api.get("/v1/transfers")).json()["data"]
    assert [t["id"] for t in listed] == [overdrawn.json()["id"]]


@pytest.mark.parametrize("refusal", ["missing", "currency", "frozen", "closed"])
@pytest.mark.parametrize("changed_since_read", [True, False], ids=["after-read", "at-request"])
async def test_refused_credit_releases_the_hold(
    api: httpx.AsyncClient, request: pytest.FixtureRequest, refusal: str, changed_since_read: bool
) -> None:
    """A credit the destination refuses is refused at once when the API's read of the payee
    shows it (nothing reserved, no transfer); when the payee changed after that read, the
    saga's credit step refuses it and compensates: the hold is released, the transfer ends
    failed with the refusal's code, and the destination gets nothing."""
    if changed_since_read:
        request.getfixturevalue("payee_read_stale")
    pair = await open_cross_pair(api)
    await fund(api, pair, 5_000)
    target_id = pair.target["id"]
    expected = {
        "missing": "account_not_found",
        "currency": "currency_mismatch",
        "frozen": "account_frozen",
        "closed": "account_closed",
    }[refusal]
    if refusal == "missing":
        # A well-formed id on the other shard that no account has.
        while True:
            target_id = f"acct_{ULID()}"
            if shard_of(target_id) != pair.source["shard"]:
                break
    elif refusal == "currency":
        target_id = (await account_on(api, pair.target["shard"], currency="EUR"))["id"]
    else:
        action = "freeze" if refusal == "frozen" else "close"
        changed = await api.post(f"/v1/accounts/{target_id}/{action}")
        assert changed.status_code == 200, changed.text

    response = await transfer(api, pair.source["id"], target_id, 1_000)
    assert response.json()["error"]["code"] == expected, response.text
    if refusal != "missing":
        # The destination gets nothing: no balance, not one entry (the saga's credit step
        # refused before writing any).
        await settled(api, pair.source["id"])
        assert await balance(api, target_id) == {
            "posted": 0,
            "pending": 0,
            "held": 0,
            "available": 0,
        }
        entries = await api.get(f"/v1/accounts/{target_id}/entries")
        assert entries.status_code == 200, entries.text
        assert entries.json()["data"] == []
    if not changed_since_read:
        assert await settled(api, pair.source["id"]) == [], "refused before any reserve"
        assert (await balance(api, pair.source["id"]))["available"] == 5_000
        return
    (failed,) = await settled(api, pair.source["id"])
    assert failed["status"] == "failed"
    assert failed["failure_code"] == expected
    assert failed["saga"]["step"] == "released"
    assert await balance(api, pair.source["id"]) == {
        "posted": 5_000,
        "pending": 0,
        "held": 0,
        "available": 5_000,
    }


async def test_one_batch_settles_many_and_refuses_one_alone(
    api: httpx.AsyncClient, temporal_env: WorkflowEnvironment, payee_read_stale: None
) -> None:
    """Concurrent transfers between one pair share sagas; one destination frozen since the
    API read it fails alone in its saga while the others post. Each saga carries exactly
    the transfers that name it."""
    pair = await open_cross_pair(api)
    await fund(api, pair, 10_000)
    frozen = await account_on(api, pair.target["shard"])
    assert (await api.post(f"/v1/accounts/{frozen['id']}/freeze")).status_code == 200
    targets = [pair.target["id"]] * 19 + [frozen["id"]]
    responses = await asyncio.gather(*(transfer(api, pair.source["id"], t, 100) for t in targets))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(409) == 1, [r.text for r in responses]
    assert set(codes) <= {201, 202, 409}
    transfers = await settled(api, pair.source["id"])
    assert (await balance(api, pair.target["id"]))["posted"] == 1_900
    assert (await balance(api, pair.source["id"]))["available"] == 10_000 - 1_900
    assert len(transfers) == len(targets)
    carried: dict[str, set[str]] = {}
    for settled_transfer in transfers:
        workflow_id = settled_transfer["saga"]["workflow_id"]
        carried.setdefault(workflow_id, set()).add(settled_transfer["id"])
    for workflow_id, transfer_ids in carried.items():
        handle = temporal_env.client.get_workflow_handle(workflow_id)
        states = await handle.query("transfers")
        assert {state["transfer_id"] for state in states} == transfer_ids, workflow_id
        described = await handle.describe()
        attributes = {k.name: v for k, v in described.typed_search_attributes}
        assert attributes["LedgerflowTransferCount"] == len(transfer_ids), workflow_id
    shares = sorted((len(ids) for ids in carried.values()), reverse=True)
    # 20 reserves arrive within a batch window or while the first saga settles: at least
    # one saga carries several of them, whatever the timing on a busy machine.
    assert shares[0] >= 2, f"transfers between one pair were not batched: {shares}"


async def test_sequential_retry_replays_and_settles_once(
    api: httpx.AsyncClient, cluster: ShardCluster, temporal_env: WorkflowEnvironment
) -> None:
    """The same key sent again returns the first answer; one saga carries the transfer."""
    pair = await open_cross_pair(api)
    await fund(api, pair, 1_000)
    first = await transfer(api, pair.source["id"], pair.target["id"], 300, key="retry-1")
    again = await transfer(api, pair.source["id"], pair.target["id"], 300, key="retry-1")
    assert first.status_code == again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert await saga_count(temporal_env.client, cluster, first.json()["id"]) == 1
    assert (await balance(api, pair.source["id"]))["available"] == 700
    assert (await balance(api, pair.target["id"]))["available"] == 300


async def test_concurrent_retries_settle_once(
    api: httpx.AsyncClient, cluster: ShardCluster, temporal_env: WorkflowEnvironment
) -> None:
    """The same key sent 15 times at once: one transfer, one saga, money moved once."""
    pair = await open_cross_pair(api)
    await fund(api, pair, 1_000)
    responses = await asyncio.gather(
        *(transfer(api, pair.source["id"], pair.target["id"], 300, key="same") for _ in range(15))
    )
    assert {r.status_code for r in responses} <= {201, 409}, [r.text for r in responses]
    ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1
    await settled(api)
    assert await saga_count(temporal_env.client, cluster, ids.pop()) == 1
    assert (await balance(api, pair.source["id"]))["available"] == 700
    assert (await balance(api, pair.target["id"]))["available"] == 300


async def test_repeated_hand_over_starts_one_saga(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
) -> None:
    """What an HTTP retry does after its first attempt died mid-way (the reserve replays,
    the hand-over runs again), at once in one process, in two processes, and afterwards:
    the transfer is claimed once and settled by one workflow."""
    pair = await open_cross_pair(api)
    await fund(api, pair, 1_000)
    reserved = await reserve_only(
        cluster, pair, 400, tenant_id=await tenant_of(cluster, tenant_key)
    )
    settings = {
        "temporal_address": temporal_address,
        "namespace": "default",
        "task_queue": TASK_QUEUE,
        "batch_window_ms": 5,
        "batch_size_max": 10,
    }
    async with (
        open_settlement(cluster, **settings) as first,
        open_settlement(cluster, **settings) as second,
    ):
        await asyncio.gather(
            first.hand_over(reserved, wait_s=5),
            first.hand_over(reserved, wait_s=5),
            second.hand_over(reserved, wait_s=5),
        )
        await second.hand_over(reserved, wait_s=5)
    (found,) = await settled(api, pair.source["id"])
    assert found["id"] == reserved.transfer_id
    assert found["status"] == "posted"
    assert await saga_count(temporal_env.client, cluster, reserved.transfer_id) == 1
    assert (await balance(api, pair.target["id"]))["available"] == 400


async def test_a_full_batch_to_every_shard_settles_in_one_saga(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    temporal_address: str,
) -> None:
    """SAGA_BATCH_SIZE_MAX transfers out of one shard to all the others: Temporal accepts
    the batch's search attributes (the id list fits one value), one saga credits every
    destination shard and posts them all."""
    pair = await open_cross_pair(api, source_shard=0, target_shard=1)
    await fund(api, pair, 100_000)
    targets = [pair.target, await account_on(api, 2), await account_on(api, 3)]
    tenant = await tenant_of(cluster, tenant_key)
    reserved = [
        await reserve_only(
            cluster,
            CrossPair(pair.funding, pair.source, targets[i % len(targets)]),
            10 + i,
            tenant_id=tenant,
        )
        for i in range(SAGA_BATCH_SIZE_MAX)
    ]
    async with open_settlement(
        cluster,
        temporal_address=temporal_address,
        namespace="default",
        task_queue=TASK_QUEUE,
        batch_window_ms=1000,
        batch_size_max=SAGA_BATCH_SIZE_MAX,
    ) as dispatcher:
        await asyncio.gather(*(dispatcher.hand_over(r, wait_s=10) for r in reserved))

    done = await settled(api, pair.source["id"])
    assert [t["status"] for t in done] == ["posted"] * SAGA_BATCH_SIZE_MAX
    (workflow_id,) = {t["saga"]["workflow_id"] for t in done}
    described = await temporal_env.client.get_workflow_handle(workflow_id).describe()
    attributes = {k.name: v for k, v in described.typed_search_attributes}
    assert attributes["LedgerflowTransferCount"] == SAGA_BATCH_SIZE_MAX
    assert attributes["LedgerflowAmount"] == sum(r.amount for r in reserved)
    assert sorted(attributes["LedgerflowDestinationShards"]) == ["1", "2", "3"]
    for target in targets:
        expected = sum(r.amount for r in reserved if r.credit_account_id == target["id"])
        assert (await balance(api, target["id"]))["available"] == expected
