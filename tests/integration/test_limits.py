"""Per-account limits through the HTTP API: the floor (`min_available`), the ceiling
(`max_balance`) and the rolling daily outgoing limit, under concurrency, with the books
checked after each test."""

import asyncio
from collections.abc import Awaitable

import httpx
import pytest
from ulid import ULID

from shards.cluster import ShardCluster
from shards.reconcile import reconcile
from tests.conftest import other_tenant
from tests.integration.cross_shard import settled
from tests.integration.helpers import balance

pytestmark = pytest.mark.usefixtures("books")


async def _account(api: httpx.AsyncClient, *, shard: int | None = None, **body: object) -> dict:
    while True:
        response = await api.post("/v1/accounts", json={"currency": "USD", **body})
        assert response.status_code == 201, response.text
        account = response.json()
        if shard is None or account["shard"] == shard:
            return account


async def _move(
    api: httpx.AsyncClient, debit: dict, credit: dict, amount: int, **extra: object
) -> httpx.Response:
    return await api.post(
        "/v1/transfers",
        json={
            "debit_account_id": debit["id"],
            "credit_account_id": credit["id"],
            "amount": amount,
            "currency": "USD",
            **extra,
        },
        headers={"Idempotency-Key": f"test-{ULID()}"},
    )


async def test_min_available_is_an_overdraft_line_or_a_floor(api: httpx.AsyncClient) -> None:
    """A negative `min_available` lets an account overdraw that far and no further; a
    positive one keeps that much available."""
    funding = await _account(api, allow_overdraft=True)
    line = await _account(api, shard=funding["shard"], limits={"min_available": -500})
    assert line["limits"] == {
        "min_available": -500,
        "max_balance": None,
        "daily_outgoing": None,
        "review_above": None,
    }
    assert (await _move(api, line, funding, 500)).status_code == 201
    response = await _move(api, line, funding, 1)
    assert response.status_code == 402
    assert response.json()["error"]["code"] == "insufficient_funds"
    assert (await balance(api, line["id"]))["available"] == -500

    floor = await _account(api, shard=funding["shard"], limits={"min_available": 100})
    assert (await _move(api, funding, floor, 1_000)).status_code == 201
    assert (await _move(api, floor, funding, 901)).status_code == 402
    assert (await _move(api, floor, funding, 900)).status_code == 201
    # A hold counts against the floor too.
    response = await _move(api, floor, funding, 1, pending=True)
    assert response.status_code == 402


async def test_max_balance_refuses_single_and_cross_shard_credits(api: httpx.AsyncClient) -> None:
    """A credit past `max_balance` is 409 `balance_limit_exceeded`, on one shard at once and
    across shards from the saga (the transfer fails and its hold is released)."""
    funding = await _account(api, allow_overdraft=True)
    capped = await _account(api, shard=funding["shard"], limits={"max_balance": 1_000})
    assert (await _move(api, funding, capped, 1_000)).status_code == 201
    response = await _move(api, funding, capped, 1)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "balance_limit_exceeded"

    elsewhere = await _account(api, allow_overdraft=True)
    while elsewhere["shard"] == capped["shard"]:
        elsewhere = await _account(api, allow_overdraft=True)
    response = await _move(api, elsewhere, capped, 5)
    if response.status_code == 202:
        (failed,) = [t for t in await settled(api) if t["id"] == response.json()["id"]]
        assert failed["failure_code"] == "balance_limit_exceeded"
    else:
        assert response.json()["error"]["code"] == "balance_limit_exceeded", response.text
    assert (await balance(api, capped["id"]))["posted"] == 1_000
    assert (await balance(api, elsewhere["id"]))["held"] == 0


async def test_fifty_concurrent_spends_never_pass_the_daily_limit(api: httpx.AsyncClient) -> None:
    """50 spends of 100 at once against a daily limit of 1,000: exactly ten go through, the
    others are 402 `daily_limit_exceeded`, and holds and cross-shard spends count too."""
    funding = await _account(api, allow_overdraft=True)
    spender = await _account(api, shard=funding["shard"], limits={"daily_outgoing": 1_000})
    assert (await _move(api, funding, spender, 100_000)).status_code == 201
    targets = [await _account(api) for _ in range(4)]
    local = await _account(api, shard=spender["shard"])

    def spend(n: int) -> Awaitable[httpx.Response]:
        if n % 7 == 0:
            return _move(api, spender, local, 100, pending=True)
        return _move(api, spender, targets[n % 4], 100)

    responses = await asyncio.gather(*(spend(n) for n in range(50)))
    accepted = [r for r in responses if r.status_code in (201, 202)]
    refused = [r for r in responses if r.status_code == 402]
    assert len(accepted) + len(refused) == 50, [r.text for r in responses]
    assert len(accepted) == 10
    assert {r.json()["error"]["code"] for r in refused} == {"daily_limit_exceeded"}
    await settled(api)
    after = await balance(api, spender["id"])
    holds = sum(1 for r in accepted if r.json()["status"] == "pending")
    assert after["held"] == 100 * holds
    assert after["posted"] == 100_000 - 100 * (10 - holds)
    assert after["available"] == 99_000
    # Raising the limit lets more through; a void gives the hold's room back.
    response = await api.post(
        f"/v1/accounts/{spender['id']}/limits",
        json={"daily_outgoing": 1_100},
        headers={"Idempotency-Key": f"test-{ULID()}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["limits"]["daily_outgoing"] == 1_100
    assert (await _move(api, spender, targets[0], 100)).status_code in (201, 202)
    assert (await _move(api, spender, targets[0], 1)).status_code == 402


async def test_limits_are_the_tenants_own_and_checked(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster
) -> None:
    """Another tenant cannot set an account's limits (404); bad limits are 400 and change
    nothing; a limit left out of a replacement is removed."""
    account = await _account(api, limits={"max_balance": 10})
    async with other_tenant(api_url, cluster) as other:
        response = await other.post(
            f"/v1/accounts/{account['id']}/limits", json={"max_balance": 10**12}
        )
        assert response.status_code == 404
    for bad in (
        {"max_balance": -1},
        {"daily_outgoing": 0},
        {"daily_outgoing": "100"},
        {"min_available": 2**63},
        {"review_above": 0},
    ):
        response = await api.post(f"/v1/accounts/{account['id']}/limits", json=bad)
        assert response.status_code == 400, (bad, response.text)
        response = await api.post("/v1/accounts", json={"currency": "USD", "limits": bad})
        assert response.status_code == 400, (bad, response.text)
    assert (await api.get(f"/v1/accounts/{account['id']}")).json()["limits"]["max_balance"] == 10
    response = await api.post(f"/v1/accounts/{account['id']}/limits", json={})
    assert response.json()["limits"] == {
        "min_available": None,
        "max_balance": None,
        "daily_outgoing": None,
        "review_above": None,
    }


async def test_a_limits_change_never_leaves_an_account_below_its_floor(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """An account that used its overdraft line (-1,000 of `min_available: -1000`) cannot
    have the line taken away while it stands below the new floor: 409
    `limits_below_balance`, nothing changed. Once it is back above, the change is taken.
    (The change was taken, and `verify` then reported the correct account "overdrawn" on
    every run.) `verify` holds every account to the lower of its floor and zero."""
    funding = await _account(api, allow_overdraft=True)
    line = await _account(api, shard=funding["shard"], limits={"min_available": -1_000})
    assert (await _move(api, line, funding, 1_000)).status_code == 201
    for limits in ({}, {"min_available": -999}, {"min_available": 0, "max_balance": 5}):
        response = await api.post(f"/v1/accounts/{line['id']}/limits", json=limits)
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("limits_below_balance", "min_available")
        account = (await api.get(f"/v1/accounts/{line['id']}")).json()
        assert account["limits"]["min_available"] == -1_000
    report = await reconcile(cluster)
    assert report.ok, report.problems
    # `verify` finds an account overdrawn past its floor (set behind the API's back).
    async with cluster.shards[line["shard"]].connection() as conn:
        await conn.execute("update accounts set min_available = -999 where id = $1", line["id"])
        try:
            report = await reconcile(cluster)
            assert [p for p in report.problems if line["id"] in p] == [
                f"shard {line['shard']}: account {line['id']} is overdrawn: -1000 available,"
                " below its floor of -999"
            ], report.problems
        finally:
            await conn.execute(
                "update accounts set min_available = -1000 where id = $1", line["id"]
            )
    # A lower floor is taken; so is any change once the money is back, a positive floor
    # not reached yet too (as at an account's opening).
    response = await api.post(f"/v1/accounts/{line['id']}/limits", json={"min_available": -2_000})
    assert response.status_code == 200, response.text
    assert (await _move(api, funding, line, 1_000)).status_code == 201
    for limits in ({}, {"min_available": 500}):
        response = await api.post(f"/v1/accounts/{line['id']}/limits", json=limits)
        assert response.status_code == 200, response.text
    assert (await _move(api, line, funding, 1)).status_code == 402
