"""Holds through the HTTP API: place, capture (in part, several times), increment, void and
expire, with the balances, the events and the books checked after each."""

import asyncio

import httpx
import pytest

from shards.cluster import ShardCluster
from tests.conftest import other_tenant
from tests.integration.helpers import balance, create_account, post_keyed, transfer_body

pytestmark = pytest.mark.usefixtures("books")


async def _accounts(api: httpx.AsyncClient, funds: int = 10_000) -> tuple[dict, dict]:
    """A funded payer and a merchant on the payer's shard."""
    funding = await create_account(api, allow_overdraft=True)
    payer = await create_account(api)
    while payer["shard"] != funding["shard"]:
        payer = await create_account(api)
    merchant = await create_account(api)
    while merchant["shard"] != funding["shard"]:
        merchant = await create_account(api)
    response = await post_keyed(api, "/v1/transfers", transfer_body(funding, payer, funds))
    assert response.status_code == 201, response.text
    return payer, merchant


async def _hold(
    api: httpx.AsyncClient, payer: dict, merchant: dict, amount: int, **extra: object
) -> dict:
    response = await post_keyed(
        api, "/v1/transfers", transfer_body(payer, merchant, amount, pending=True, **extra)
    )
    assert response.status_code == 201, response.text
    hold = response.json()
    assert hold["status"] == "pending"
    assert hold["expires_at"] is not None
    assert hold["captured_amount"] == 0
    assert hold["captures"] == []
    return hold


async def test_hold_then_partial_capture(api: httpx.AsyncClient) -> None:
    """A hold moves available to held on the payer and to pending on the merchant; a final
    partial capture posts that much and releases the rest."""
    payer, merchant = await _accounts(api)
    hold = await _hold(api, payer, merchant, 4_000)
    assert await balance(api, payer["id"]) == {
        "posted": 10_000,
        "pending": 0,
        "held": 4_000,
        "available": 6_000,
    }
    assert await balance(api, merchant["id"]) == {
        "posted": 0,
        "pending": 4_000,
        "held": 0,
        "available": 0,
    }
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {"amount": 2_500})
    assert response.status_code == 200, response.text
    captured = response.json()
    assert captured["status"] == "posted"
    assert captured["captured_amount"] == 2_500
    assert [c["amount"] for c in captured["captures"]] == [2_500]
    assert await balance(api, payer["id"]) == {
        "posted": 7_500,
        "pending": 0,
        "held": 0,
        "available": 7_500,
    }
    assert await balance(api, merchant["id"]) == {
        "posted": 2_500,
        "pending": 0,
        "held": 0,
        "available": 2_500,
    }
    assert (await api.get(f"/v1/transfers/{hold['id']}")).json() == captured
    # Nothing more to capture or void.
    for path, body in (("capture", {"amount": 1}), ("void", None), ("increment", {"amount": 5})):
        response = await post_keyed(api, f"/v1/transfers/{hold['id']}/{path}", body)
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "transfer_not_pending"
    events = (await api.get("/v1/events", params={"limit": 100})).json()["data"]
    mine = [e["type"] for e in events if e["data"]["object"]["id"] == hold["id"]]
    assert mine == ["transfer.captured", "transfer.pending"]


async def test_multicapture_increment_and_void(api: httpx.AsyncClient) -> None:
    """Captures with `final: false` keep the rest held; an increment raises the hold when the
    funds are there (402 when not); a void releases what is left and keeps what was captured."""
    payer, merchant = await _accounts(api)
    hold = await _hold(api, payer, merchant, 3_000)
    for amount in (1_000, 500):
        response = await post_keyed(
            api, f"/v1/transfers/{hold['id']}/capture", {"amount": amount, "final": False}
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "pending"
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {"amount": 1_501})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "amount_exceeds_hold"
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/increment", {"amount": 8_501})
    assert response.status_code == 402, response.text
    assert response.json()["error"]["code"] == "insufficient_funds"
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/increment", {"amount": 2_000})
    assert response.status_code == 200, response.text
    increased = response.json()
    assert increased["amount"] == 5_000
    assert increased["captured_amount"] == 1_500
    assert await balance(api, payer["id"]) == {
        "posted": 8_500,
        "pending": 0,
        "held": 3_500,
        "available": 5_000,
    }
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/void")
    assert response.status_code == 200, response.text
    voided = response.json()
    assert voided["status"] == "voided"
    assert [c["amount"] for c in voided["captures"]] == [1_000, 500]
    assert [c["final"] for c in voided["captures"]] == [False, False]
    assert await balance(api, payer["id"]) == {
        "posted": 8_500,
        "pending": 0,
        "held": 0,
        "available": 8_500,
    }
    assert await balance(api, merchant["id"]) == {
        "posted": 1_500,
        "pending": 0,
        "held": 0,
        "available": 1_500,
    }


async def test_capture_races_void_and_moves_money_once(api: httpx.AsyncClient) -> None:
    """Captures and voids of one hold sent at once: exactly one wins, the others are 409,
    and the balances show the winner's movement only."""
    payer, merchant = await _accounts(api, funds=100_000)
    for _ in range(5):
        hold = await _hold(api, payer, merchant, 1_000)
        before = await balance(api, merchant["id"])
        responses = await asyncio.gather(
            *(
                post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {"amount": 700})
                for _ in range(4)
            ),
            *(post_keyed(api, f"/v1/transfers/{hold['id']}/void") for _ in range(4)),
        )
        winners = [r for r in responses if r.status_code == 200]
        assert len(winners) == 1, [r.text for r in responses]
        assert all(r.status_code == 409 for r in responses if r.status_code != 200)
        after = await balance(api, merchant["id"])
        moved = 700 if winners[0].json()["status"] == "posted" else 0
        assert after["posted"] == before["posted"] + moved
        assert after["pending"] == 0


async def test_changes_are_idempotent(api: httpx.AsyncClient) -> None:
    """A capture retried with its key replays its answer and captures once; the same key with
    another amount is refused."""
    payer, merchant = await _accounts(api)
    hold = await _hold(api, payer, merchant, 2_000)
    path = f"/v1/transfers/{hold['id']}/capture"
    first = await post_keyed(api, path, {"amount": 600, "final": False}, key="cap-1")
    again = await post_keyed(api, path, {"amount": 600, "final": False}, key="cap-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await post_keyed(api, path, {"amount": 601, "final": False}, key="cap-1")
    assert other.status_code == 400
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert (await balance(api, merchant["id"]))["posted"] == 600


async def test_expiry_refuses_at_once_and_releases_within_the_deadline(
    api: httpx.AsyncClient,
) -> None:
    """From `expires_at` a capture is 409 `transfer_expired`; the shard's expiry workflow
    releases the money and marks the hold `expired` within 15 seconds."""
    payer, merchant = await _accounts(api)
    hold = await _hold(api, payer, merchant, 3_000, expires_in=2)
    partial = await post_keyed(
        api, f"/v1/transfers/{hold['id']}/capture", {"amount": 1_000, "final": False}
    )
    assert partial.status_code == 200, partial.text
    await asyncio.sleep(2.2)
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {"amount": 1})
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "transfer_expired"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while (await api.get(f"/v1/transfers/{hold['id']}")).json()["status"] != "expired":
        assert loop.time() < deadline, "the hold was not expired within 15 s of expires_at"
        await asyncio.sleep(0.25)
    assert await balance(api, payer["id"]) == {
        "posted": 9_000,
        "pending": 0,
        "held": 0,
        "available": 9_000,
    }
    assert await balance(api, merchant["id"]) == {
        "posted": 1_000,
        "pending": 0,
        "held": 0,
        "available": 1_000,
    }
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/void")
    assert response.json()["error"]["code"] == "transfer_expired"
    types = {e["type"] for e in (await api.get("/v1/events", params={"limit": 100})).json()["data"]}
    assert "transfer.expired" in types


async def test_hostile_tenant_cannot_touch_a_hold(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster
) -> None:
    """Another tenant's capture, void and increment of a hold are 404 and change nothing; a
    transfer that is not a hold is not capturable; bad input is 400 and moves nothing."""
    payer, merchant = await _accounts(api)
    hold = await _hold(api, payer, merchant, 1_000)
    async with other_tenant(api_url, cluster) as other:
        for path, body in (("capture", {}), ("void", None), ("increment", {"amount": 10**9})):
            response = await post_keyed(other, f"/v1/transfers/{hold['id']}/{path}", body)
            assert response.status_code == 404, response.text
            assert response.json()["error"]["code"] == "transfer_not_found"
    plain = await post_keyed(api, "/v1/transfers", transfer_body(payer, merchant, 10))
    response = await post_keyed(api, f"/v1/transfers/{plain.json()['id']}/capture", {})
    assert response.status_code == 409
    for bad in (
        transfer_body(payer, merchant, 10, pending=True, expires_in=0),
        transfer_body(payer, merchant, 10, pending=True, expires_in=604_801),
        transfer_body(payer, merchant, 10, expires_in=60),
        transfer_body(payer, merchant, 10, pending="yes"),
    ):
        response = await post_keyed(api, "/v1/transfers", bad)
        assert response.status_code == 400, (bad, response.text)
    for bad_body in ({"amount": 0}, {"amount": -5}, {"amount": "5"}, {"final": "no"}):
        response = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", bad_body)
        assert response.status_code == 400, (bad_body, response.text)
    assert await balance(api, payer["id"]) == {
        "posted": 9_990,
        "pending": 0,
        "held": 1_000,
        "available": 8_990,
    }
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/void")
    assert response.status_code == 200
