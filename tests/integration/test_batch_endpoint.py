"""`POST /v1/transfers/batch` through HTTP on real shards and a real Temporal server.

Every test opens its own accounts and checks the books afterwards (`books`): every shard
balances, and no money is left in flight once the sagas are done.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import orjson
import pytest
from temporalio.testing import WorkflowEnvironment
from ulid import ULID

from api.app import create_app
from ledger.ids import clearing_account_id, slot_of
from ledger.limits import REQUEST_BODY_BYTES_MAX
from shards.cluster import ShardCluster, new_transfer_id
from shards.posting import post_batch
from tests.conftest import TASK_QUEUE, other_tenant, served, settlement_config
from tests.integration.cross_shard import account_on, settled, sweep_now, tenant_of
from tests.integration.helpers import balance, transfer
from tests.integration.helpers import transfer_body as item
from workflows.atomic.activities import atomic_requests
from workflows.atomic.inputs import AtomicBatch, AtomicLeg, AtomicStepInput, atomic_workflow_id
from workflows.atomic.start import start_atomic
from workflows.worker import build_worker

pytestmark = pytest.mark.usefixtures("books")

# `item`: a batch item is the body of a single transfer (plus an optional idempotency_key).


async def funded(api: httpx.AsyncClient, shard: int, amount: int) -> dict:
    """A customer account on `shard` holding `amount`, paid in from an overdraft account
    on the same shard."""
    funding = await account_on(api, shard, allow_overdraft=True)
    account = await account_on(api, shard)
    if amount:
        response = await transfer(api, funding["id"], account["id"], amount)
        assert response.status_code == 201, response.text
    return account


async def batch(
    api: httpx.AsyncClient, items: list[dict], *, atomic: bool = False, key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await api.post(
        "/v1/transfers/batch", json={"transfers": items, "atomic": atomic}, headers=headers
    )


async def test_items_stand_alone_single_and_cross_shard(api: httpx.AsyncClient) -> None:
    """Single-shard, cross-shard and a refused item in one request: each answered as a single
    request would be, in order; the refused one moves nothing and refuses nothing else."""
    payer = await funded(api, 0, 10_000)
    broke = await funded(api, 0, 0)
    near, far = await account_on(api, 0), await account_on(api, 1)

    response = await batch(
        api,
        [
            item(payer, near, 1_000),
            item(payer, far, 2_000),
            item(broke, near, 1),
            item(payer, near, 500, metadata={"n": "4"}),
        ],
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["status"] for d in data] == [201, data[1]["status"], 402, 201]
    assert data[1]["status"] in (201, 202)
    assert data[2]["error"]["code"] == "insufficient_funds"
    assert data[2]["transfer"] is None
    assert data[0]["transfer"]["cross_shard"] is False
    assert data[1]["transfer"]["cross_shard"] is True
    assert data[3]["transfer"]["metadata"] == {"n": "4"}

    await settled(api)
    for answered in (data[0], data[1], data[3]):
        fetched = (await api.get(f"/v1/transfers/{answered['transfer']['id']}")).json()
        assert fetched["status"] == "posted"
    assert (await balance(api, payer["id"]))["posted"] == 6_500
    assert (await balance(api, near["id"]))["posted"] == 1_500
    assert (await balance(api, far["id"]))["posted"] == 2_000
    assert (await balance(api, broke["id"]))["posted"] == 0


async def test_an_atomic_payment_fee_and_tax_on_three_shards_posts_every_leg(
    api: httpx.AsyncClient,
) -> None:
    """A payment, its fee and a tax leg (three destination shards) and a same-shard leg:
    every leg posted by one workflow, shown posted by GET."""
    payer = await funded(api, 0, 10_000)
    merchant, fees, tax = [await account_on(api, s) for s in (1, 2, 3)]
    refund_pool = await account_on(api, 0)

    response = await batch(
        api,
        [
            item(payer, merchant, 9_000),
            item(payer, fees, 290),
            item(payer, tax, 60),
            item(payer, refund_pool, 50),
        ],
        atomic=True,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["atomic"] is True
    data = body["data"]
    assert all(d["error"] is None for d in data), data
    ids = [d["transfer"]["id"] for d in data]
    await settled(api)
    workflows = set()
    for transfer_id in ids:
        fetched = (await api.get(f"/v1/transfers/{transfer_id}")).json()
        assert fetched["status"] == "posted"
        assert fetched["saga"]["step"] == "posted"
        workflows.add(fetched["saga"]["workflow_id"])
    assert len(workflows) == 1
    assert workflows.pop().startswith("atomic-")
    assert (await balance(api, payer["id"])) == {
        "posted": 600,
        "pending": 0,
        "held": 0,
        "available": 600,
    }
    for account, amount in ((merchant, 9_000), (fees, 290), (tax, 60), (refund_pool, 50)):
        assert (await balance(api, account["id"]))["available"] == amount


async def test_an_atomic_batch_with_a_leg_refused_at_its_reserve_moves_nothing(
    api: httpx.AsyncClient,
) -> None:
    """Three source shards; one leg lacks funds: it answers 402, every other leg
    `batch_leg_refused`, every hold is released and no balance changed."""
    first, second = await funded(api, 0, 1_000), await funded(api, 2, 1_000)
    short = await funded(api, 3, 10)
    targets = [await account_on(api, s) for s in (1, 3, 0)]

    response = await batch(
        api,
        [item(first, targets[0], 700), item(second, targets[1], 300), item(short, targets[2], 11)],
        atomic=True,
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["status"] for d in data] == [409, 409, 402]
    assert data[2]["error"]["code"] == "insufficient_funds"
    assert [d["error"]["code"] for d in data[:2]] == ["batch_leg_refused"] * 2
    assert "transfers[2]" in data[0]["error"]["message"]

    for account, amount in ((first, 1_000), (second, 1_000), (short, 10)):
        assert await balance(api, account["id"]) == {
            "posted": amount,
            "pending": 0,
            "held": 0,
            "available": amount,
        }
    for target in targets:
        assert (await balance(api, target["id"]))["posted"] == 0
    failed = [t for t in await settled(api) if t["status"] == "failed"]
    assert sorted(t["failure_code"] for t in failed) == ["batch_leg_refused"] * 2


@pytest.mark.parametrize("frozen_since_read", [True, False], ids=["after-read", "before"])
async def test_an_atomic_batch_whose_credit_is_refused_releases_every_leg(
    api: httpx.AsyncClient, request: pytest.FixtureRequest, frozen_since_read: bool
) -> None:
    """One destination (frozen) refuses its credit: nothing moved on any of three shards.

    Frozen before the batch came, its leg is refused at its reserve (the payee's shard was
    read first, `REFUSAL_ORDER`). Frozen after that read (the read is patched to see it
    active), every leg is reserved, the prepare step refuses the credit, and the prepared
    credits are voided and the holds released."""
    if frozen_since_read:
        request.getfixturevalue("payee_read_stale")
    payer = await funded(api, 0, 5_000)
    open_one, frozen, open_two = [await account_on(api, s) for s in (1, 2, 3)]
    assert (await api.post(f"/v1/accounts/{frozen['id']}/freeze")).status_code == 200

    response = await batch(
        api,
        [item(payer, open_one, 1_000), item(payer, frozen, 100), item(payer, open_two, 10)],
        atomic=True,
    )
    data = response.json()["data"]
    assert [d["status"] for d in data] == [409, 409, 409], data
    assert [d["error"]["code"] for d in data] == [
        "batch_leg_refused",
        "account_frozen",
        "batch_leg_refused",
    ]
    assert await balance(api, payer["id"]) == {
        "posted": 5_000,
        "pending": 0,
        "held": 0,
        "available": 5_000,
    }
    for account in (open_one, frozen, open_two):
        assert await balance(api, account["id"]) == {
            "posted": 0,
            "pending": 0,
            "held": 0,
            "available": 0,
        }
    failed = sorted(t["failure_code"] for t in await settled(api) if t["status"] == "failed")
    if frozen_since_read:
        assert failed == ["account_frozen", "batch_leg_refused", "batch_leg_refused"]
    else:
        assert failed == ["batch_leg_refused", "batch_leg_refused"], "its leg never reserved"


async def test_a_batch_and_its_items_are_idempotent(api: httpx.AsyncClient) -> None:
    """The request's key replays the whole answer; an item's key replays that item for a
    later single request with the same body, and refuses another body."""
    payer = await funded(api, 0, 10_000)
    near, far = await account_on(api, 0), await account_on(api, 2)
    item_key = f"item-{ULID()}"
    items = [item(payer, near, 100, idempotency_key=item_key), item(payer, far, 200)]
    key = f"batch-{ULID()}"

    first = await batch(api, items, key=key)
    await settled(api)
    if first.json()["data"][1]["status"] == 202:
        # A processing item is not frozen: the retry answers its final state.
        first = await batch(api, items, key=key)
    again = await batch(api, items, key=key)
    assert again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json() == first.json()

    single = await api.post(
        "/v1/transfers",
        json={k: v for k, v in items[0].items() if k != "idempotency_key"},
        headers={"Idempotency-Key": item_key},
    )
    assert single.status_code == 201
    assert single.headers.get("Idempotent-Replayed") == "true"
    assert single.json()["id"] == first.json()["data"][0]["transfer"]["id"]
    other = await transfer(api, payer["id"], near["id"], 101, key=item_key)
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "idempotency_key_reused"

    assert (await balance(api, payer["id"]))["posted"] == 9_700


async def test_an_atomic_batch_replays_under_its_key(api: httpx.AsyncClient) -> None:
    """A retried atomic batch finds its workflow: the same transfers, moved once."""
    payer = await funded(api, 1, 1_000)
    a, b = await account_on(api, 2), await account_on(api, 3)
    items = [item(payer, a, 300), item(payer, b, 200)]
    key = f"atomic-{ULID()}"
    first = (await batch(api, items, atomic=True, key=key)).json()
    await settled(api)
    again = (await batch(api, items, atomic=True, key=key)).json()
    ids = [d["transfer"]["id"] for d in first["data"]]
    assert [d["transfer"]["id"] for d in again["data"]] == ids
    assert [d["transfer"]["status"] for d in again["data"]] == ["posted", "posted"]
    assert (await balance(api, payer["id"]))["posted"] == 500


async def test_bad_input_refuses_the_batch_naming_the_item(api: httpx.AsyncClient) -> None:
    """400 naming the item and its field; nothing moved for the good items before it."""
    payer = await funded(api, 0, 1_000)
    near = await account_on(api, 0)
    good = item(payer, near, 10)
    cases = [
        ([good, {**good, "amount": -5}], "amount_invalid", "transfers[1].amount"),
        ([good, good, item(payer, payer, 1)], "same_account", "transfers[2].credit_account_id"),
        ([good, {**good, "currency": "XXX"}], "currency_unknown", "transfers[1].currency"),
        ([{**good, "colour": "red"}], "invalid_request", "transfers[0].colour"),
        (
            [{**good, "idempotency_key": "k"}, {**good, "idempotency_key": "k"}],
            "invalid_request",
            "transfers[1].idempotency_key",
        ),
        ([], "invalid_request", "transfers"),
    ]
    for items, code, param in cases:
        response = await batch(api, items)
        assert response.status_code == 400, (param, response.text)
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["param"] == param
    too_many = await batch(api, [good] * 1_001, atomic=True)
    assert too_many.status_code == 400
    assert too_many.json()["error"]["param"] == "transfers"
    assert (await balance(api, payer["id"]))["posted"] == 1_000


async def test_an_atomic_batch_of_a_thousand_legs_on_four_shards(api: httpx.AsyncClient) -> None:
    """A thousand legs debiting payers on four shards and crediting payees on the others
    post all together; the same thousand with one leg to a frozen account move nothing:
    neither payers nor payees change, nothing is left held or pending."""
    payers = [await funded(api, s, 100_000) for s in range(4)]
    payees = [await account_on(api, s) for s in range(4)]
    legs = [item(payers[n % 4], payees[(n + 1) % 4], 1 + n % 7) for n in range(1_000)]
    response = await batch(api, legs, atomic=True)
    assert response.status_code == 200, response.text[:500]
    await settled(api, timeout_s=120)
    for shard in range(4):
        sent = sum(1 + n % 7 for n in range(1_000) if n % 4 == shard)
        received = sum(1 + n % 7 for n in range(1_000) if (n + 1) % 4 == shard)
        assert (await balance(api, payers[shard]["id"]))["posted"] == 100_000 - sent
        assert (await balance(api, payees[shard]["id"]))["posted"] == received

    frozen = await account_on(api, 2)
    assert (await api.post(f"/v1/accounts/{frozen['id']}/freeze")).status_code == 200
    refused = [*legs[:500], item(payers[0], frozen, 5), *legs[500:999]]
    response = await batch(api, refused, atomic=True)
    assert response.status_code == 200, response.text[:500]
    await settled(api, timeout_s=120)
    for shard in range(4):
        sent = sum(1 + n % 7 for n in range(1_000) if n % 4 == shard)
        received = sum(1 + n % 7 for n in range(1_000) if (n + 1) % 4 == shard)
        assert (await balance(api, payers[shard]["id"]))["posted"] == 100_000 - sent
        assert (await balance(api, payers[shard]["id"]))["held"] == 0
        # The payees have exactly what the first batch gave them: nothing pending either.
        assert await balance(api, payees[shard]["id"]) == {
            "posted": received,
            "pending": 0,
            "held": 0,
            "available": received,
        }
    assert (await balance(api, frozen["id"]))["posted"] == 0
    assert response.json()["data"][500]["error"]["code"] == "account_frozen"
    # The frozen leg is refused at its reserve (its payee was read first): no transfer.
    codes = {t["failure_code"] for t in await settled(api) if t["status"] == "failed"}
    assert codes == {"batch_leg_refused"}


async def test_a_thousand_items_fit_the_body_limit(api: httpx.AsyncClient) -> None:
    """A thousand ordinary items with metadata and keys stay under 1 MiB and all post; a
    body over the limit is 413."""
    payer = await funded(api, 0, 1_000_000)
    near = await account_on(api, 0)
    items = [
        item(
            payer,
            near,
            7,
            metadata={"order": f"ord_{i:08d}", "customer": f"cus_{ULID()}"},
            idempotency_key=f"payout-{ULID()}",
        )
        for i in range(1_000)
    ]
    size = len(orjson.dumps({"transfers": items}))
    assert size < REQUEST_BODY_BYTES_MAX // 2, size
    response = await batch(api, items)
    assert response.status_code == 200, response.text[:500]
    assert [d["status"] for d in response.json()["data"]] == [201] * 1_000
    assert (await balance(api, near["id"]))["posted"] == 7_000

    padded = [{**items[0], "metadata": {f"k{j}": "x" * 500 for j in range(50)}}] * 41
    assert len(orjson.dumps({"transfers": padded})) > REQUEST_BODY_BYTES_MAX
    too_big = await batch(api, padded)
    assert too_big.status_code == 413
    assert (await balance(api, near["id"]))["posted"] == 7_000


async def test_batches_and_single_requests_on_the_same_accounts(api: httpx.AsyncClient) -> None:
    """Batches (plain and atomic) and single requests race on the same accounts; every
    balance ends exact."""
    payer = await funded(api, 0, 100_000)
    near, far = await account_on(api, 0), await account_on(api, 1)

    async def plain() -> None:
        r = await batch(api, [item(payer, near, 3), item(payer, far, 5)] * 10)
        assert all(d["status"] in (201, 202) for d in r.json()["data"]), r.text

    async def atomic() -> None:
        r = await batch(api, [item(payer, near, 1), item(payer, far, 2)], atomic=True)
        assert all(d["status"] in (201, 202) for d in r.json()["data"]), r.text

    async def single() -> None:
        r = await transfer(api, payer["id"], far["id"], 7)
        assert r.status_code in (201, 202), r.text

    await asyncio.gather(*(f() for _ in range(10) for f in (plain, atomic, single)))
    await settled(api)
    assert (await balance(api, near["id"]))["posted"] == 10 * (30 + 1)
    assert (await balance(api, far["id"]))["posted"] == 10 * (50 + 2 + 7)
    assert (await balance(api, payer["id"]))["available"] == 100_000 - 10 * (80 + 3 + 7)


async def test_a_hostile_tenant_reaches_no_other_account(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster
) -> None:
    """Another tenant's accounts and every clearing account are unknown (404) to a batch,
    atomic or not; the victim's balances do not move."""
    victim = await funded(api, 0, 1_000)
    victim_far = await account_on(api, 1)
    async with other_tenant(api_url, cluster) as hostile:
        own = await funded(hostile, 0, 1_000)
        clearing = {"id": clearing_account_id(1, "USD")}
        attempts = [
            item(victim, own, 100),
            item(own, victim_far, 100),
            item(clearing, own, 100),
            item(own, clearing, 100),
        ]
        plain = (await batch(hostile, attempts)).json()["data"]
        assert [d["status"] for d in plain] == [404] * 4
        assert all(d["error"]["code"] == "account_not_found" for d in plain)
        for legs in ([attempts[0], item(own, victim_far, 1)], [attempts[1]], [attempts[3]]):
            data = (await batch(hostile, legs, atomic=True)).json()["data"]
            assert all(d["status"] in (404, 409) for d in data), data
            assert any(d["error"]["code"] == "account_not_found" for d in data)
        assert (await balance(hostile, own["id"]))["posted"] == 1_000
    assert (await balance(api, victim["id"]))["posted"] == 1_000
    assert (await balance(api, victim_far["id"]))["posted"] == 0


async def test_the_sweep_restarts_an_atomic_batch_whose_workflow_was_terminated(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
) -> None:
    """An atomic batch's workflow terminated after its reserves (its rows claimed by it):
    the sweep starts it again under `-r1` with the closed run's legs, which posts every leg
    once; the legs are never settled one by one."""
    payer = await funded(api, 0, 1_000)
    targets = [await account_on(api, s) for s in (1, 2)]
    tenant = await tenant_of(cluster, tenant_key)
    legs = []
    for target in targets:
        transfer_id = new_transfer_id(slot_of(payer["id"]))
        legs.append(
            AtomicLeg(
                id=transfer_id,
                tenant_id=tenant,
                operation_key=f"transfer:{transfer_id}",
                debit_account_id=payer["id"],
                credit_account_id=target["id"],
                amount=100,
                currency="USD",
                source_shard=0,
                destination_shard=target["shard"],
            )
        )
    batch_in = AtomicBatch(atomic_workflow_id([leg.operation_key for leg in legs]), legs)
    # Started where no worker polls, so only the reserves below happen before it is ended.
    handle = await start_atomic(temporal_env.client, task_queue=f"idle-{ULID()}", batch=batch_in)
    requests = atomic_requests(AtomicStepInput(batch_in.batch_id, 0, "reserve_funds", legs))
    async with cluster.shards[0].connection() as conn:
        assert all(r.ok for r in await post_batch(conn, shard=0, requests=requests))
    await handle.terminate("operator")

    outcome = await sweep_now(temporal_env.client, TASK_QUEUE)
    assert outcome.reclaimed == 2
    done = await settled(api, payer["id"])
    assert {t["status"] for t in done[:2]} == {"posted"}
    assert {t["saga"]["workflow_id"] for t in done[:2]} == {f"{batch_in.batch_id}-r1"}
    assert (await balance(api, payer["id"]))["posted"] == 800
    for target in targets:
        assert (await balance(api, target["id"]))["posted"] == 100


async def test_atomic_items_keep_their_own_keys(api: httpx.AsyncClient) -> None:
    """An atomic batch whose items carry keys (and the request none) replays from them; a
    single request with an item's key replays that leg; a batch that takes in a key an
    earlier request used is refused, naming the item, and moves nothing."""
    payer = await funded(api, 0, 1_000)
    a, b = await account_on(api, 1), await account_on(api, 2)
    keys = [f"leg-{ULID()}", f"leg-{ULID()}"]
    items = [
        item(payer, a, 100, idempotency_key=keys[0]),
        item(payer, b, 50, idempotency_key=keys[1]),
    ]
    first = (await batch(api, items, atomic=True)).json()["data"]
    await settled(api)
    again = (await batch(api, items, atomic=True)).json()["data"]
    assert [d["transfer"]["id"] for d in again] == [d["transfer"]["id"] for d in first]
    assert [d["transfer"]["status"] for d in again] == ["posted", "posted"]

    single = await api.post(
        "/v1/transfers",
        json={k: v for k, v in items[1].items() if k != "idempotency_key"},
        headers={"Idempotency-Key": keys[1]},
    )
    assert single.status_code == 201
    assert single.json()["id"] == first[1]["transfer"]["id"]

    used = f"used-{ULID()}"
    assert (await transfer(api, payer["id"], a["id"], 1, key=used)).status_code in (201, 202)
    await settled(api)
    mixed = [
        item(payer, b, 5, idempotency_key=f"new-{ULID()}"),
        item(payer, a, 1, idempotency_key=used),
    ]
    refused = await batch(api, mixed, atomic=True)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "idempotency_key_reused"
    assert refused.json()["error"]["param"] == "transfers[1].idempotency_key"
    assert (await balance(api, payer["id"]))["posted"] == 849
    assert (await balance(api, b["id"]))["posted"] == 50


async def test_an_atomic_batch_not_settled_in_time_answers_processing_then_settles(
    api: httpx.AsyncClient,
    shard_dsns: list[str],
    temporal_address: str,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    worker_cluster: ShardCluster,
) -> None:
    """With no worker on its task queue the workflow cannot run within the wait: every item
    answers 202 `processing` with its transfer id, a retry under the same key answers the
    same ids and moves nothing more, and once a worker runs every leg reaches `posted`."""
    payer = await funded(api, 0, 1_000)
    targets = [await account_on(api, s) for s in (1, 2)]
    items = [item(payer, targets[0], 100), item(payer, targets[1], 200)]
    key = f"late-{ULID()}"
    async with _api_without_worker(shard_dsns, temporal_address, tenant_key) as (late, queue):
        first = (await batch(late, items, atomic=True, key=key)).json()["data"]
        assert [d["status"] for d in first] == [202, 202]
        assert {d["transfer"]["status"] for d in first} == {"processing"}
        again = (await batch(late, items, atomic=True, key=key)).json()["data"]
        ids = [d["transfer"]["id"] for d in first]
        assert [d["transfer"]["id"] for d in again] == ids
        async with build_worker(
            client=temporal_env.client, cluster=worker_cluster, task_queue=queue
        ):
            await settled(api)
            final = (await batch(late, items, atomic=True, key=key)).json()["data"]
    assert [d["status"] for d in final] == [201, 201]
    for transfer_id in ids:
        assert (await api.get(f"/v1/transfers/{transfer_id}")).json()["status"] == "posted"
    assert (await balance(api, payer["id"]))["posted"] == 700


async def test_an_item_key_used_alone_before_its_batch_reserved_moves_money_once(
    api: httpx.AsyncClient,
    shard_dsns: list[str],
    temporal_address: str,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    worker_cluster: ShardCluster,
) -> None:
    """A single request under an atomic item's key, sent before the batch's workflow ran,
    makes its own transfer; the batch then refuses that leg (`idempotency_key_reused`) and
    releases the other: the key moved money once, and the batch moved none."""
    payer = await funded(api, 0, 1_000)
    targets = [await account_on(api, s) for s in (1, 2)]
    item_key = f"early-{ULID()}"
    items = [item(payer, targets[0], 100, idempotency_key=item_key), item(payer, targets[1], 200)]
    key = f"early-batch-{ULID()}"
    async with _api_without_worker(shard_dsns, temporal_address, tenant_key) as (late, queue):
        first = (await batch(late, items, atomic=True, key=key)).json()["data"]
        assert [d["status"] for d in first] == [202, 202]
        single = await api.post(
            "/v1/transfers",
            json={k: v for k, v in items[0].items() if k != "idempotency_key"},
            headers={"Idempotency-Key": item_key},
        )
        assert single.status_code in (201, 202), single.text
        async with build_worker(
            client=temporal_env.client, cluster=worker_cluster, task_queue=queue
        ):
            workflow_id = first[1]["transfer"]["saga"]["workflow_id"]
            await temporal_env.client.get_workflow_handle(workflow_id).result()
            done = await settled(api, payer["id"])
            retry = await batch(late, items, atomic=True, key=key)
    # The batch's legs: the first refused at its reserve (no transfer), the other released.
    assert [t["failure_code"] for t in done if t["status"] == "failed"] == ["batch_leg_refused"]
    assert retry.status_code == 400
    assert retry.json()["error"]["code"] == "idempotency_key_reused"
    assert retry.json()["error"]["param"] == "transfers[0].idempotency_key"
    assert (await balance(api, payer["id"]))["posted"] == 900
    assert (await balance(api, targets[0]["id"]))["posted"] == 100
    assert (await balance(api, targets[1]["id"]))["posted"] == 0


@asynccontextmanager
async def _api_without_worker(
    shard_dsns: list[str], temporal_address: str, tenant_key: str
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """An API whose sagas go to a task queue no worker polls yet, answering after 0.2 s;
    yields its client and the queue."""
    queue = f"atomic-late-{ULID()}"
    config = settlement_config(shard_dsns, temporal_address, task_queue=queue, sync_wait_s=0.2)
    async with served(create_app(config), tenant_key) as client:
        yield client, queue
