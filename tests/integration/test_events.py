"""`GET /v1/events`: every final change of a tenant's transfers, written with the change,
once, in order, and never another tenant's."""

import asyncio
from datetime import datetime

import httpx
import pytest

from ledger.transfers import EventType
from shards.cluster import ShardCluster
from shards.events import purge_old_events
from tests.conftest import other_tenant
from tests.integration.cross_shard import all_transfers, fund, open_cross_pair, settled
from tests.integration.helpers import all_entries, balance, create_account, transfer

pytestmark = pytest.mark.usefixtures("books")


async def all_events(api: httpx.AsyncClient, **params: object) -> list[dict]:
    """Every event of the tenant, newest first, page by page."""
    found: list[dict] = []
    query: dict[str, object] = {"limit": 7, **params}
    while True:
        response = await api.get("/v1/events", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(page["data"])
        if not page["has_more"]:
            return found
        query["starting_after"] = page["data"][-1]["id"]


async def test_feed_has_one_event_per_final_transfer_in_order(
    api: httpx.AsyncClient, payee_read_stale: None
) -> None:
    """Single-shard posted, cross-shard posted and cross-shard failed transfers (a payee
    frozen since the API read it) each report exactly one event, with the transfer as it
    ended; retries of a request add none; the feed is newest first and its times never go
    backwards."""
    pair = await open_cross_pair(api)
    await fund(api, pair, 50_000)
    frozen = await create_account(api)
    while frozen["shard"] == pair.source["shard"]:
        frozen = await create_account(api)
    assert (await api.post(f"/v1/accounts/{frozen['id']}/freeze")).status_code == 200
    for n in range(6):
        key = f"events-{pair.source['id']}-{n}"
        target = (pair.target, frozen, pair.funding)[n % 3]
        response = await transfer(api, pair.source["id"], target["id"], 100 + n, key=key)
        # The same request again: a replay, never a second event.
        again = await transfer(api, pair.source["id"], target["id"], 100 + n, key=key)
        # A refusal at the destination within the short wait answers with its error.
        assert response.status_code in (201, 202, 409), response.text
        assert again.json() == response.json()
    await settled(api)
    transfers = {t["id"]: t for t in await all_transfers(api)}

    events = await all_events(api)
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)
    stamps = [datetime.fromisoformat(e["created_at"]) for e in events]
    assert stamps == sorted(stamps, reverse=True)
    by_transfer: dict[str, list[dict]] = {}
    for event in events:
        assert event["object"] == "event"
        by_transfer.setdefault(event["data"]["object"]["id"], []).append(event)
    # The funding transfer and the six above, each reported once, as it ended.
    assert set(by_transfer) == set(transfers)
    for transfer_id, reported in by_transfer.items():
        assert len(reported) == 1, reported
        (event,) = reported
        final = transfers[transfer_id]
        assert event["data"]["object"] == final
        expected = {"posted": "transfer.posted", "failed": "transfer.failed"}[final["status"]]
        assert event["type"] == expected
    failed = [t for t in transfers.values() if t["status"] == "failed"]
    assert {t["credit_account_id"] for t in failed} == {frozen["id"]}
    assert len(failed) == 2

    # The type filter, and a page walked backwards from the oldest event.
    only_failed = await all_events(api, type="transfer.failed")
    assert {e["data"]["object"]["id"] for e in only_failed} == {t["id"] for t in failed}
    assert await all_events(api, type="transfer.voided") == []
    newer = await api.get("/v1/events", params={"ending_before": events[-1]["id"], "limit": 3})
    assert [e["id"] for e in newer.json()["data"]] == [e["id"] for e in events[-4:-1]]
    one = await api.get(f"/v1/events/{events[0]['id']}")
    assert one.status_code == 200
    assert one.json() == events[0]


async def test_concurrent_transfers_report_each_change_once(api: httpx.AsyncClient) -> None:
    """Transfers racing on one account, each sent twice at once with one key: one event
    each, and the account's events follow its entries' order."""
    funding = await create_account(api, allow_overdraft=True)
    source = await create_account(api)
    while source["shard"] != funding["shard"]:
        source = await create_account(api)
    assert (await transfer(api, funding["id"], source["id"], 10_000)).status_code == 201
    targets = [await create_account(api) for _ in range(4)]
    keys = [f"race-{source['id']}-{n}" for n in range(40)]
    responses = await asyncio.gather(
        *(
            transfer(api, source["id"], targets[n % 4]["id"], 10 + n, key=key)
            for n, key in enumerate(keys)
            for _ in range(2)
        )
    )
    assert {r.status_code for r in responses} <= {201, 202, 409}, [r.text for r in responses]
    await settled(api)
    transfers = await all_transfers(api)
    assert len(transfers) == 41
    events = await all_events(api)
    assert sorted(e["data"]["object"]["id"] for e in events) == sorted(t["id"] for t in transfers)
    # The source's entries, oldest first, name its transfers in the order they changed it;
    # its posted single-shard transfers' events come in the same order.
    entries = await all_entries(api, source["id"])
    moved = [e["transfer_id"] for e in entries if e["layer"] == "posted"]
    single = {t["id"] for t in transfers if not t["cross_shard"]}
    reported = [
        e["data"]["object"]["id"]
        for e in reversed(events)
        if source["id"]
        in (e["data"]["object"]["debit_account_id"], e["data"]["object"]["credit_account_id"])
    ]
    assert [t for t in reported if t in single] == [t for t in moved if t in single]


async def test_events_are_the_tenants_own(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster
) -> None:
    """Another tenant sees none of them, by list or by id; bad ids and types are refused."""
    funding = await create_account(api, allow_overdraft=True)
    target = await create_account(api)
    assert (await transfer(api, funding["id"], target["id"], 500)).status_code in (201, 202)
    await settled(api)
    (event,) = await all_events(api)

    async with other_tenant(api_url, cluster) as other:
        assert await all_events(other) == []
        response = await other.get(f"/v1/events/{event['id']}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "resource_not_found"
        response = await other.get("/v1/events", params={"ending_before": event["id"]})
        assert response.json()["data"] == []
    # Well-formed on a shard that does not exist, and malformed ids.
    assert (await api.get(f"/v1/events/evt_{'f' * 30}")).status_code == 404
    for bad in ("evt_", "evt_zz", event["id"][:-1] + "g", "evt_" + "f" * 31, "acct_x"):
        assert (await api.get(f"/v1/events/{bad}")).status_code == 404, bad
        response = await api.get("/v1/events", params={"starting_after": bad})
        assert response.status_code == 400, bad
    response = await api.get("/v1/events", params={"type": "transfer.stolen"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "type"
    assert {t.value for t in EventType} >= {"transfer.posted", "transfer.failed"}


async def test_events_past_their_retention_are_purged_and_the_transfers_stay(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """The upkeep deletes events older than the retention, a batch per statement, by their
    ids (which start with their time): the old events are gone from the feed and from
    `GET /v1/events/{id}`, a newer one stays, and the transfers they reported, with their
    entries and balances, stay."""
    funding = await create_account(api, allow_overdraft=True)
    payee = await create_account(api)
    while payee["shard"] != funding["shard"]:
        payee = await create_account(api)
    old = [await transfer(api, funding["id"], payee["id"], 10) for _ in range(3)]
    assert all(r.status_code == 201 for r in old)
    await asyncio.sleep(3.0)
    new = await transfer(api, funding["id"], payee["id"], 10)
    assert new.status_code == 201, new.text
    events = {e["data"]["object"]["id"]: e for e in await all_events(api)}
    newest_old = max(datetime.fromisoformat(events[r.json()["id"]]["created_at"]) for r in old)

    shard = cluster.shards[funding["shard"]]
    async with shard.connection() as conn:
        # The cutoff falls 1.5 s after the last old event, about as long before the new one:
        # margin enough for a slow statement on a loaded machine.
        age_s = await conn.fetchval(
            "select extract(epoch from clock_timestamp() - $1::timestamptz)::float8", newest_old
        )
        purged = await purge_old_events(conn, retention_s=float(age_s) - 1.5, batch_max=2)
    assert purged >= 3

    left = {e["data"]["object"]["id"] for e in await all_events(api)}
    assert left == {new.json()["id"]}
    for response in old:
        gone = await api.get(f"/v1/events/{events[response.json()['id']]['id']}")
        assert gone.status_code == 404, gone.text
        kept = await api.get(f"/v1/transfers/{response.json()['id']}")
        assert kept.status_code == 200
        assert kept.json()["status"] == "posted"
    assert (await api.get(f"/v1/events/{events[new.json()['id']]['id']}")).status_code == 200
    assert (await balance(api, payee["id"]))["posted"] == 40
