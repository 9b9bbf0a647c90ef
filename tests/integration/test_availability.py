"""Delayed availability through the HTTP API: debit now, credit pending until
`available_on`, then available by the shard's funds timers; the books checked after each."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shards.cluster import ShardCluster
from tests.conftest import other_tenant
from tests.integration.helpers import balance, create_account, post_keyed, transfer_body

pytestmark = pytest.mark.usefixtures("books")


async def _three(api: httpx.AsyncClient) -> tuple[dict, dict, dict]:
    """A funding account, a payer holding 10,000 and a payee, all on one shard."""
    funding = await create_account(api, allow_overdraft=True)
    accounts = []
    while len(accounts) < 2:
        account = await create_account(api)
        if account["shard"] == funding["shard"]:
            accounts.append(account)
    payer, payee = accounts
    response = await _transfer(api, funding, payer, 10_000)
    assert response.status_code == 201, response.text
    return funding, payer, payee


async def _transfer(
    api: httpx.AsyncClient, debit: dict, credit: dict, amount: int, **extra: object
) -> httpx.Response:
    return await post_keyed(api, "/v1/transfers", transfer_body(debit, credit, amount, **extra))


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_credit_waits_then_becomes_available(api: httpx.AsyncClient) -> None:
    """The payer is debited at once; the payee sees the credit pending and listed under
    `availability` until `available_on`, then available within 15 seconds, with a
    `funds.available` event; a balance read back at a moment in between shows it pending."""
    _, payer, payee = await _three(api)
    response = await _transfer(api, payer, payee, 2_500, available_on=_in(3))
    assert response.status_code == 201, response.text
    deferred = response.json()
    assert deferred["status"] == "posted"
    assert deferred["available_on"] is not None
    assert deferred["available_at"] is None
    assert await balance(api, payer["id"]) == {
        "posted": 7_500,
        "pending": 0,
        "held": 0,
        "available": 7_500,
    }
    assert await balance(api, payee["id"]) == {
        "posted": 0,
        "pending": 2_500,
        "held": 0,
        "available": 0,
    }
    waiting = (await api.get(f"/v1/accounts/{payee['id']}/availability")).json()
    assert [(w["transfer_id"], w["amount"]) for w in waiting["data"]] == [(deferred["id"], 2_500)]
    meanwhile = datetime.now(UTC)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3 + 15
    while (await balance(api, payee["id"]))["available"] != 2_500:
        assert loop.time() < deadline, "the credit was not available within 15 s"
        await asyncio.sleep(0.25)
    assert await balance(api, payee["id"]) == {
        "posted": 2_500,
        "pending": 0,
        "held": 0,
        "available": 2_500,
    }
    settled = (await api.get(f"/v1/transfers/{deferred['id']}")).json()
    assert settled["available_at"] is not None
    assert datetime.fromisoformat(settled["available_at"]) >= datetime.fromisoformat(
        settled["available_on"]
    )
    assert (await api.get(f"/v1/accounts/{payee['id']}/availability")).json()["data"] == []
    past = (
        await api.get(f"/v1/accounts/{payee['id']}/balance", params={"at": meanwhile.isoformat()})
    ).json()
    assert (past["pending"], past["available"]) == (2_500, 0)
    events = (await api.get("/v1/events", params={"type": "funds.available"})).json()["data"]
    assert [e["data"]["object"]["id"] for e in events] == [deferred["id"]]


async def test_refusals_move_nothing(api: httpx.AsyncClient) -> None:
    """A frozen payee refuses the credit and the debit with it; bad instants and a hold with
    `available_on` are 400 naming the field."""
    funding, payer, payee = await _three(api)
    assert (await api.post(f"/v1/accounts/{payee['id']}/freeze")).status_code == 200
    response = await _transfer(api, payer, payee, 100, available_on=_in(60))
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "account_frozen"
    assert (await balance(api, payer["id"]))["posted"] == 10_000
    assert (await api.post(f"/v1/accounts/{payee['id']}/unfreeze")).status_code == 200

    for target, extra, param in (
        (payee, {"available_on": _in(-5)}, "available_on"),
        (payee, {"available_on": _in(91 * 86_400)}, "available_on"),
        (payee, {"available_on": "2030-01-01T00:00:00"}, "available_on"),
        (payee, {"available_on": 1_900_000_000}, "available_on"),
        (payee, {"available_on": _in(60), "pending": True}, "available_on"),
    ):
        response = await _transfer(api, payer, target, 100, **extra)
        assert response.status_code == 400, (extra, response.text)
        assert response.json()["error"]["param"] == param, response.text
    response = await _transfer(api, payer, funding, 10_001, available_on=_in(60))
    assert response.status_code == 402
    assert await balance(api, payer["id"]) == {
        "posted": 10_000,
        "pending": 0,
        "held": 0,
        "available": 10_000,
    }
    assert (await balance(api, payee["id"]))["pending"] == 0


async def test_availability_is_the_tenants_own(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster
) -> None:
    """Another tenant cannot list an account's waiting credits (404), nor reach the shard's
    availability account by its id."""
    _, payer, payee = await _three(api)
    assert (await _transfer(api, payer, payee, 10, available_on=_in(1))).status_code == 201
    async with other_tenant(api_url, cluster) as other:
        response = await other.get(f"/v1/accounts/{payee['id']}/availability")
        assert response.status_code == 404
        system = f"acct_availability_{payee['shard']}_USD"
        for path in (f"/v1/accounts/{system}", f"/v1/accounts/{system}/availability"):
            assert (await other.get(path)).status_code == 404
        response = await _transfer(other, {"id": system}, payee, 10)
        assert response.status_code in (400, 404), response.text
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while (await balance(api, payee["id"]))["pending"]:
        assert loop.time() < deadline
        await asyncio.sleep(0.25)
