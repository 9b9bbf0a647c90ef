"""`GET /v1/accounts/{id}/balance?at=`: balances as they stood at an instant, checked
against what the API answered at that instant and against a replay of the entries."""

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ledger.accounts import Layer, NormalBalance, Side, balance_of
from ledger.ids import clearing_account_id
from shards.cluster import ShardCluster
from tests.conftest import other_tenant
from tests.integration.helpers import (
    accounts_by_shard,
    all_entries,
    balance,
    create_account,
    transfer,
)

pytestmark = pytest.mark.usefixtures("books")


async def _balance_at(api: httpx.AsyncClient, account_id: str, at: datetime) -> dict:
    response = await api.get(f"/v1/accounts/{account_id}/balance", params={"at": at.isoformat()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "balance"
    assert body["account_id"] == account_id
    return {k: body[k] for k in ("posted", "pending", "held", "available")}


def _replay(entries: list[dict], normal: str, at: datetime) -> dict:
    """The model: the four raw totals summed over the entries stamped at or before `at`."""
    totals = {(layer, side): 0 for layer in Layer for side in Side}
    for entry in entries:
        if datetime.fromisoformat(entry["created_at"]) <= at:
            totals[(Layer(entry["layer"]), Side(entry["side"]))] += entry["amount"]
    folded = balance_of(
        NormalBalance(normal),
        debits_posted=totals[(Layer.POSTED, Side.DEBIT)],
        credits_posted=totals[(Layer.POSTED, Side.CREDIT)],
        debits_pending=totals[(Layer.PENDING, Side.DEBIT)],
        credits_pending=totals[(Layer.PENDING, Side.CREDIT)],
    )
    return {
        "posted": folded.posted,
        "pending": folded.pending,
        "held": folded.held,
        "available": folded.available,
    }


async def test_balance_at_matches_what_was_seen_then(api: httpx.AsyncClient) -> None:
    """After each transfer (single- and cross-shard) the balance read at that moment is the
    balance `?at=` answers for that moment later; before the account's first entry it is
    zero; and every answer equals a replay of the entries."""
    by_shard = await accounts_by_shard(api, per_shard=1)
    account = by_shard[0][0]
    funding = await create_account(api, allow_overdraft=True)
    before_everything = datetime.now(UTC)
    seen: list[tuple[datetime, dict]] = []
    moves = [
        (funding["id"], account["id"], 10_000),
        *((account["id"], by_shard[s][0]["id"], 700 + s) for s in (1, 2, 3)),
        (by_shard[2][0]["id"], account["id"], 300),
        (account["id"], funding["id"], 1_234),
    ]
    for debit, credit, amount in moves:
        response = await transfer(api, debit, credit, amount)
        assert response.status_code in (201, 202), response.text
        await asyncio.sleep(0.01)
        # Once the saga settled, what is read now is what `at=now` must answer later.
        await _settled(api, response.json()["id"])
        instant = datetime.now(UTC)
        seen.append((instant, await balance(api, account["id"])))
        await asyncio.sleep(0.01)

    assert await _balance_at(api, account["id"], before_everything) == {
        "posted": 0,
        "pending": 0,
        "held": 0,
        "available": 0,
    }
    entries = await all_entries(api, account["id"])
    for instant, expected in seen:
        assert await _balance_at(api, account["id"], instant) == expected
        assert _replay(entries, "credit", instant) == expected
    # Between and on entries too: each entry's own stamp, and a microsecond before it.
    for entry in entries:
        stamp = datetime.fromisoformat(entry["created_at"])
        for instant in (stamp, stamp - timedelta(microseconds=1)):
            assert await _balance_at(api, account["id"], instant) == _replay(
                entries, "credit", instant
            )
    # Without `at`, the balance now.
    now = (await api.get(f"/v1/accounts/{account['id']}/balance")).json()
    assert {k: now[k] for k in ("posted", "held")} == {
        k: seen[-1][1][k] for k in ("posted", "held")
    }


async def _settled(api: httpx.AsyncClient, transfer_id: str) -> None:
    for _ in range(300):
        body = (await api.get(f"/v1/transfers/{transfer_id}")).json()
        if body["status"] != "processing":
            assert body["status"] == "posted", body
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{transfer_id} still processing")


async def test_held_money_shows_at_the_moment_it_was_held(api: httpx.AsyncClient) -> None:
    """While a cross-shard transfer is in its saga the debit side's money is held; the
    entries record it, and `?at=` between the reserve and the post shows it held."""
    by_shard = await accounts_by_shard(api, per_shard=1)
    account = by_shard[1][0]
    funding = await create_account(api, allow_overdraft=True)
    assert (await transfer(api, funding["id"], account["id"], 5_000)).status_code in (201, 202)
    response = await transfer(api, account["id"], by_shard[3][0]["id"], 2_000)
    await _settled(api, response.json()["id"])
    if account["shard"] == by_shard[3][0]["shard"]:
        pytest.fail("accounts_by_shard gave two accounts on one shard")
    entries = await all_entries(api, account["id"])
    reserve = next(e for e in entries if e["layer"] == "pending" and e["amount"] > 0)
    at_reserve = datetime.fromisoformat(reserve["created_at"])
    assert await _balance_at(api, account["id"], at_reserve) == _replay(
        entries, "credit", at_reserve
    )
    assert (await _balance_at(api, account["id"], at_reserve))["held"] == 2_000
    assert await _balance_at(api, account["id"], datetime.now(UTC)) == {
        "posted": 3_000,
        "pending": 0,
        "held": 0,
        "available": 3_000,
    }


async def test_entry_times_never_go_backwards_under_concurrency(api: httpx.AsyncClient) -> None:
    """A hot account credited from every shard at once: its entries' times rise with
    their versions, so `?at=` can read by time."""
    by_shard = await accounts_by_shard(api, per_shard=2, allow_overdraft=True)
    hot = by_shard[0][0]
    sources = [a for s in range(4) for a in by_shard[s] if a["id"] != hot["id"]]
    responses = await asyncio.gather(
        *(transfer(api, sources[i % len(sources)]["id"], hot["id"], 1 + i) for i in range(48))
    )
    assert all(r.status_code in (201, 202) for r in responses), [
        r.text for r in responses if r.status_code not in (201, 202)
    ]
    for r in responses:
        await _settled(api, r.json()["id"])
    entries = await all_entries(api, hot["id"])
    assert [e["version"] for e in entries] == list(range(1, len(entries) + 1))
    stamps = [datetime.fromisoformat(e["created_at"]) for e in entries]
    assert stamps == sorted(stamps), "an entry carries an earlier time than the one before it"
    assert (await _balance_at(api, hot["id"], datetime.now(UTC)))["posted"] == sum(
        1 + i for i in range(48)
    )


async def test_balance_at_refuses_bad_instants_and_other_tenants(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster
) -> None:
    """No offset, not a date, the future, an offset that takes the calendar's first or last
    day out of range (a 500 before): 400 naming `at`. Another tenant's account and a
    clearing account: 404, the same answer as an id that does not exist."""
    account = await create_account(api)
    for bad in (
        "2026-01-01T00:00:00",
        "yesterday",
        "2026-13-01T00:00:00Z",
        "",
        "1700000000",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
    ):
        response = await api.get(f"/v1/accounts/{account['id']}/balance", params={"at": bad})
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["error"]["param"] == "at", response.text
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    response = await api.get(f"/v1/accounts/{account['id']}/balance", params={"at": future})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "at"

    async with other_tenant(api_url, cluster) as other:
        for target in (account["id"], clearing_account_id(account["shard"], "USD")):
            response = await other.get(f"/v1/accounts/{target}/balance")
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "account_not_found"
        response = await api.get(
            f"/v1/accounts/{clearing_account_id(0, 'USD')}/balance",
            params={"at": datetime.now(UTC).isoformat()},
        )
        assert response.status_code == 404
