"""Review through the HTTP API and the real Temporal server: a transfer above its debit
account's `review_above` waits with its money held until approved, rejected, or its review
times out; the books checked after each test."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from shards.cluster import ShardCluster
from tests.conftest import other_tenant
from tests.integration.helpers import balance, post_keyed, run_ledgerflow, transfer_body

pytestmark = pytest.mark.usefixtures("books")


async def _account(api: httpx.AsyncClient, *, shard: int | None = None, **body: object) -> dict:
    while True:
        response = await api.post("/v1/accounts", json={"currency": "USD", **body})
        assert response.status_code == 201, response.text
        if shard is None or response.json()["shard"] == shard:
            return response.json()


async def _reviewed_pair(api: httpx.AsyncClient) -> tuple[dict, dict, dict]:
    """A funding account, a payer holding 10,000 whose transfers above 1,000 are reviewed,
    and a payee, all on one shard."""
    funding = await _account(api, allow_overdraft=True)
    payer = await _account(api, shard=funding["shard"], limits={"review_above": 1_000})
    payee = await _account(api, shard=funding["shard"])
    body = transfer_body(funding, payer, 10_000)
    assert (await post_keyed(api, "/v1/transfers", body)).status_code == 201
    return funding, payer, payee


async def _held(api: httpx.AsyncClient, payer: dict, payee: dict, amount: int) -> dict:
    response = await post_keyed(api, "/v1/transfers", transfer_body(payer, payee, amount))
    assert response.status_code == 202, response.text
    held = response.json()
    assert held["status"] == "requires_review"
    return held


async def test_approve_posts_and_reject_releases(
    api: httpx.AsyncClient, shard_dsns: list[str], temporal_env: WorkflowEnvironment
) -> None:
    """At the limit a transfer posts at once; above it, its money is held and the transfer
    is found by `ledgerflow transfers review` and the Temporal UI's one filter; approving
    posts it, rejecting releases it, and a second decision is 409."""
    _, payer, payee = await _reviewed_pair(api)
    assert (
        await post_keyed(api, "/v1/transfers", transfer_body(payer, payee, 1_000))
    ).status_code == 201
    first = await _held(api, payer, payee, 1_500)
    second = await _held(api, payer, payee, 2_500)
    assert await balance(api, payer["id"]) == {
        "posted": 9_000,
        "pending": 0,
        "held": 4_000,
        "available": 5_000,
    }
    assert (await balance(api, payee["id"]))["pending"] == 4_000

    code, out, err = await run_ledgerflow(shard_dsns, "transfers", "review", "--json")
    assert code == 0, err
    assert {first["id"], second["id"]} <= {row["transfer_id"] for row in _json(out)}
    code, out, err = await run_ledgerflow(shard_dsns, "transfers", "review")
    assert code == 0, err
    listed = next(line for line in out.splitlines() if first["id"] in line)
    assert "15.00 USD" in listed
    running = [
        w.id
        async for w in temporal_env.client.list_workflows(
            'WorkflowType="ReviewTransfer" AND ExecutionStatus="Running"'
        )
    ]
    assert f"review-{first['id']}" in running

    approved = await post_keyed(api, f"/v1/transfers/{first['id']}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "posted"
    rejected = await post_keyed(api, f"/v1/transfers/{second['id']}/reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "failed"
    assert rejected.json()["failure_code"] == "review_rejected"
    for transfer_id, path in ((first["id"], "reject"), (second["id"], "approve")):
        again = await post_keyed(api, f"/v1/transfers/{transfer_id}/{path}")
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "transfer_not_pending"
    assert await balance(api, payer["id"]) == {
        "posted": 7_500,
        "pending": 0,
        "held": 0,
        "available": 7_500,
    }
    assert await balance(api, payee["id"]) == {
        "posted": 2_500,
        "pending": 0,
        "held": 0,
        "available": 2_500,
    }
    events = (await api.get("/v1/events", params={"limit": 100})).json()["data"]
    kinds = [(e["type"], e["data"]["object"]["id"]) for e in events]
    assert ("transfer.requires_review", first["id"]) in kinds
    assert ("transfer.approved", first["id"]) in kinds
    assert ("transfer.rejected", second["id"]) in kinds


def _json(text: str) -> list[dict]:
    return json.loads(text)


async def test_racing_decisions_apply_once(api: httpx.AsyncClient) -> None:
    """Approvals and rejections of one transfer sent at once: the first decision wins, the
    others are 409 (exactly one 200), and the money moves once."""
    _, payer, payee = await _reviewed_pair(api)
    held = await _held(api, payer, payee, 2_000)
    responses = await asyncio.gather(
        *(
            post_keyed(api, f"/v1/transfers/{held['id']}/{'approve' if n % 2 else 'reject'}")
            for n in range(6)
        )
    )
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1, [r.text for r in responses]
    assert {r.json()["status"] for r in winners} in ({"posted"}, {"failed"})
    assert all(r.status_code == 409 for r in responses if r.status_code != 200)
    moved = 2_000 if winners[0].json()["status"] == "posted" else 0
    assert (await balance(api, payee["id"]))["posted"] == moved
    assert (await balance(api, payer["id"]))["held"] == 0


async def test_a_review_without_a_decision_is_rejected(
    short_review_api: httpx.AsyncClient,
) -> None:
    """With `LEDGERFLOW_REVIEW_TIMEOUT_S` of 3, an undecided transfer is rejected by its
    review workflow and its money released."""
    api = short_review_api
    _, payer, payee = await _reviewed_pair(api)
    held = await _held(api, payer, payee, 3_000)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while (current := (await api.get(f"/v1/transfers/{held['id']}")).json())["status"] != "failed":
        assert loop.time() < deadline, current
        await asyncio.sleep(0.25)
    assert current["failure_code"] == "review_rejected"
    assert await balance(api, payer["id"]) == {
        "posted": 10_000,
        "pending": 0,
        "held": 0,
        "available": 10_000,
    }
    late = await post_keyed(api, f"/v1/transfers/{held['id']}/approve")
    assert late.status_code == 409


async def test_review_cannot_be_dodged_or_decided_by_another_tenant(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster
) -> None:
    """Above `review_above`, a hold and a delayed credit are 400 `review_not_supported`
    (never sent on unreviewed; a plain transfer across shards is reviewed,
    `test_review_across_shards`); another tenant's approve is 404."""
    _, payer, payee = await _reviewed_pair(api)
    for body in (
        transfer_body(payer, payee, 1_001, pending=True),
        transfer_body(
            payer, payee, 1_001, available_on=(datetime.now(UTC) + timedelta(days=1)).isoformat()
        ),
    ):
        response = await post_keyed(api, "/v1/transfers", body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "review_not_supported", response.text
    held = await _held(api, payer, payee, 5_000)
    async with other_tenant(api_url, cluster) as other:
        for path in ("approve", "reject"):
            response = await post_keyed(other, f"/v1/transfers/{held['id']}/{path}")
            assert response.status_code == 404
    assert (await post_keyed(api, f"/v1/transfers/{held['id']}/reject")).status_code == 200
    assert (await balance(api, payer["id"]))["available"] == 10_000
