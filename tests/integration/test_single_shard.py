"""Single-shard transfers through the HTTP API, with the books checked after each test."""

import asyncio
import hashlib
import json

import httpx
import pytest
from ulid import ULID

from ledger.posting import Movement
from shards.cluster import ShardCluster
from shards.posting import post_batch
from shards.posting_types import PostingRequest
from tests.integration.cross_shard import api_key_id_of, tenant_of
from tests.integration.helpers import accounts_by_shard, balance, create_account, transfer

pytestmark = pytest.mark.usefixtures("books")


async def _pair(api: httpx.AsyncClient) -> tuple[dict, dict, dict]:
    """A funding account (may overdraw) and two customer accounts, all on one shard."""
    by_shard = await accounts_by_shard(api, per_shard=2)
    shard = next(s for s, accounts in by_shard.items() if len(accounts) >= 2)
    source, target = by_shard[shard][:2]
    funding = None
    while funding is None or funding["shard"] != shard:
        funding = await create_account(api, allow_overdraft=True)
    return funding, source, target


async def test_transfer_moves_money_and_writes_entries(api: httpx.AsyncClient) -> None:
    """A posted transfer moves the amount, bumps versions and writes one entry per side."""
    funding, source, target = await _pair(api)
    response = await transfer(api, funding["id"], source["id"], 10_000)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "posted"
    assert body["cross_shard"] is False
    assert body["object"] == "transfer"

    response = await transfer(api, source["id"], target["id"], 2_500)
    assert response.status_code == 201, response.text
    assert await balance(api, source["id"]) == {
        "posted": 7_500,
        "pending": 0,
        "held": 0,
        "available": 7_500,
    }
    assert (await balance(api, target["id"]))["available"] == 2_500
    assert (await balance(api, funding["id"]))["posted"] == -10_000

    entries = (await api.get(f"/v1/accounts/{source['id']}/entries")).json()
    assert [e["amount"] for e in entries["data"]] == [2_500, 10_000]
    assert [e["side"] for e in entries["data"]] == ["debit", "credit"]
    assert [e["posted_after"] for e in entries["data"]] == [7_500, 10_000]
    assert entries["has_more"] is False
    first = (await api.get(f"/v1/accounts/{source['id']}/entries", params={"limit": 1})).json()
    assert [e["amount"] for e in first["data"]] == [2_500]
    assert first["has_more"] is True
    rest = (
        await api.get(
            f"/v1/accounts/{source['id']}/entries",
            params={"limit": 1, "starting_after": first["data"][0]["id"]},
        )
    ).json()
    assert [e["amount"] for e in rest["data"]] == [10_000]
    assert rest["has_more"] is False

    fetched = await api.get(f"/v1/transfers/{response.json()['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["amount"] == 2_500


async def test_insufficient_funds_is_402_and_moves_nothing(api: httpx.AsyncClient) -> None:
    """A debit past the available balance of a no-overdraft account is refused whole."""
    funding, source, target = await _pair(api)
    assert (await transfer(api, funding["id"], source["id"], 100)).status_code == 201
    response = await transfer(api, source["id"], target["id"], 101)
    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "insufficient_funds"
    assert error["type"] == "funds_error"
    assert (await balance(api, source["id"]))["available"] == 100
    assert (await balance(api, target["id"]))["available"] == 0


async def test_concurrent_transfers_leave_exact_balances(api: httpx.AsyncClient) -> None:
    """60 concurrent debits of one account: exactly as many succeed as the balance allows."""
    funding, source, target = await _pair(api)
    assert (await transfer(api, funding["id"], source["id"], 4_000)).status_code == 201
    responses = await asyncio.gather(
        *(transfer(api, source["id"], target["id"], 100) for _ in range(60))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 40
    assert statuses.count(402) == 20
    assert (await balance(api, source["id"]))["available"] == 0
    assert (await balance(api, target["id"]))["available"] == 4_000


async def test_idempotent_replay_under_concurrency(api: httpx.AsyncClient) -> None:
    """The same key sent 20 times at once moves money once; the rest replay or get 409."""
    funding, source, target = await _pair(api)
    assert (await transfer(api, funding["id"], source["id"], 1_000)).status_code == 201
    responses = await asyncio.gather(
        *(transfer(api, source["id"], target["id"], 300, key="same-key") for _ in range(20))
    )
    ok = [r for r in responses if r.status_code == 201]
    assert ok, [r.text for r in responses]
    assert {r.json()["id"] for r in ok} == {ok[0].json()["id"]}
    assert all(r.status_code in (201, 409) for r in responses)
    replay = await transfer(api, source["id"], target["id"], 300, key="same-key")
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == ok[0].json()
    assert (await balance(api, source["id"]))["available"] == 700

    reused = await transfer(api, source["id"], target["id"], 301, key="same-key")
    assert reused.status_code == 400
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


async def test_a_retry_spelling_the_same_json_differently_replays(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """The same parameters in another key order and spacing replay the first answer; other
    parameters under the key are refused. A record stored before requests were compared by
    their parameters (hashed from the body's bytes) still replays a byte-identical retry.
    Money moves once."""
    funding, source, target = await _pair(api)
    assert (await transfer(api, funding["id"], source["id"], 1_000)).status_code == 201
    params = {"debit_account_id": source["id"], "credit_account_id": target["id"]}
    first_body = json.dumps({**params, "amount": 300, "currency": "USD"})
    respelled = json.dumps({"currency": "USD", "amount": 300, **params}, indent=2)
    headers = {"Idempotency-Key": "spelled", "Content-Type": "application/json"}
    first = await api.post("/v1/transfers", content=first_body, headers=headers)
    assert first.status_code == 201, first.text
    again = await api.post("/v1/transfers", content=respelled, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    other = json.dumps({**params, "amount": 301, "currency": "USD"})
    reused = await api.post("/v1/transfers", content=other, headers=headers)
    assert reused.status_code == 400
    assert reused.json()["error"]["code"] == "idempotency_key_reused"

    # A record as stored before: its hash is of the method, path and body bytes.
    legacy_key = "stored-the-old-way"
    legacy = await api.post(
        "/v1/transfers", content=first_body, headers={**headers, "Idempotency-Key": legacy_key}
    )
    assert legacy.status_code == 201
    api_key_id = await api_key_id_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    raw_hash = hashlib.sha256(b"POST /v1/transfers\n" + first_body.encode()).hexdigest()
    shard = cluster.shard_of(f"{api_key_id}:{legacy_key}")
    async with shard.pool.acquire() as conn:
        updated = await conn.execute(
            "update idempotency_keys set request_hash = $3 where api_key_id = $1 and key = $2",
            api_key_id,
            legacy_key,
            raw_hash,
        )
    assert updated == "UPDATE 1"
    # Such a record knows the bytes only, so the retry replays when it sends the same ones.
    replayed = await api.post(
        "/v1/transfers", content=first_body, headers={**headers, "Idempotency-Key": legacy_key}
    )
    assert replayed.status_code == 201, replayed.text
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == legacy.json()
    assert (await balance(api, source["id"]))["available"] == 400


async def test_a_transfer_is_found_on_the_shard_its_id_names(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """Single- and cross-shard transfer ids name the debit account's shard, and GET reads
    them there; an id minted before ids carried their slot is still found."""
    by_shard = await accounts_by_shard(api, per_shard=2)
    shards = sorted(s for s, accounts in by_shard.items() if len(accounts) >= 2)
    source, same, other = by_shard[shards[0]][0], by_shard[shards[0]][1], by_shard[shards[1]][0]
    funding = None
    while funding is None or funding["shard"] != source["shard"]:
        funding = await create_account(api, allow_overdraft=True)
    assert (await transfer(api, funding["id"], source["id"], 1_000)).status_code == 201
    for target in (same, other):
        created = (await transfer(api, source["id"], target["id"], 10)).json()
        assert cluster.shard_of_transfer(created["id"]).index == source["shard"]
        fetched = await api.get(f"/v1/transfers/{created['id']}")
        assert fetched.status_code == 200
        assert fetched.json()["id"] == created["id"]

    # An id whose lowest bits name another slot (as ids made before carried none): the
    # transfer is written where its debit account lives, and GET still finds it.
    while True:
        legacy = f"tr_{ULID()}"
        if cluster.shard_of_transfer(legacy).index != source["shard"]:
            break
    secret = api.headers["Authorization"].removeprefix("Bearer ")
    request = PostingRequest(
        operation_key=f"transfer:{legacy}",
        transfer_id=legacy,
        tenant_id=await tenant_of(cluster, secret),
        movement=Movement.TRANSFER,
        debit_account_id=source["id"],
        credit_account_id=same["id"],
        amount=5,
        currency="USD",
        source_shard=source["shard"],
        destination_shard=source["shard"],
    )
    async with cluster.shards[source["shard"]].pool.acquire() as conn:
        (result,) = await post_batch(conn, shard=source["shard"], requests=[request])
    assert result.ok, result.error
    fetched = await api.get(f"/v1/transfers/{legacy}")
    assert fetched.status_code == 200
    assert fetched.json()["amount"] == 5
    assert (await api.get(f"/v1/transfers/tr_{ULID()}")).status_code == 404
