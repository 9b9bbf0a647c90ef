"""Review of transfers between accounts on two shards, through the HTTP API on real shards
and the real Temporal server: above the debit account's `review_above` the money is
reserved on the source shard and no saga takes the transfer until it is approved; approving
hands it to a saga that posts it, rejecting (or the review's timeout) releases it. The
books are checked after each test."""

import asyncio
import json

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from shards.cluster import ShardCluster
from tests.conftest import TASK_QUEUE, other_tenant
from tests.integration.cross_shard import saga_count, sweep_now
from tests.integration.helpers import balance, post_keyed, run_ledgerflow, transfer_body
from workflows.review import activities as review_activities
from workflows.settlement.inputs import SettlementBatch

pytestmark = pytest.mark.usefixtures("books")

_FUNDED = 10_000
_UNTOUCHED = {"posted": 0, "pending": 0, "held": 0, "available": 0}
_RESTORED = {"posted": _FUNDED, "pending": 0, "held": 0, "available": _FUNDED}


async def _account(
    api: httpx.AsyncClient,
    *,
    shard: int | None = None,
    not_shard: int | None = None,
    **body: object,
) -> dict:
    """Open accounts until one lands on `shard` (or off `not_shard`)."""
    for _ in range(200):
        response = await api.post("/v1/accounts", json={"currency": "USD", **body})
        assert response.status_code == 201, response.text
        landed = response.json()["shard"]
        if (shard is None or landed == shard) and landed != not_shard:
            return response.json()
    raise AssertionError(f"no account landed as asked (shard {shard}, not {not_shard})")


async def _reviewed_across(api: httpx.AsyncClient) -> tuple[dict, dict]:
    """A payer holding 10,000 whose transfers above 1,000 are reviewed, and a payee on
    another shard."""
    payer = await _account(api, limits={"review_above": 1_000})
    funding = await _account(api, shard=payer["shard"], allow_overdraft=True)
    payee = await _account(api, not_shard=payer["shard"])
    assert (
        await post_keyed(api, "/v1/transfers", transfer_body(funding, payer, _FUNDED))
    ).status_code == 201
    return payer, payee


async def _held(api: httpx.AsyncClient, payer: dict, payee: dict, amount: int) -> dict:
    """A transfer across shards above `review_above`: 202, waiting for review, reserved on
    the source shard and not yet taken by any saga."""
    response = await post_keyed(api, "/v1/transfers", transfer_body(payer, payee, amount))
    assert response.status_code == 202, response.text
    held = response.json()
    assert held["status"] == "requires_review"
    assert held["cross_shard"] is True
    assert held["saga"]["step"] == "reserved"
    return held


async def _until(
    api: httpx.AsyncClient, transfer_id: str, status: str, *, timeout_s: float = 30
) -> dict:
    """Poll the transfer until it has `status`; returns it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (current := (await api.get(f"/v1/transfers/{transfer_id}")).json())["status"] != status:
        assert loop.time() < deadline, current
        await asyncio.sleep(0.1)
    return current


async def _event_types(api: httpx.AsyncClient, transfer_id: str) -> list[str]:
    """The types of the transfer's events, oldest first."""
    events = (await api.get("/v1/events", params={"limit": 100})).json()["data"]
    return [e["type"] for e in reversed(events) if e["data"]["object"]["id"] == transfer_id]


async def test_approved_across_shards_is_settled_by_a_saga(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    shard_dsns: list[str],
    temporal_env: WorkflowEnvironment,
) -> None:
    """Held for review, the money is reserved on the payer and the payee sees nothing; the
    review is listed by `ledgerflow transfers review` and no saga runs for it. Approved, one
    saga settles it promptly (well before the outbox sweep would): the money moves once and
    the events are requires_review, approved, posted."""
    payer, payee = await _reviewed_across(api)
    held = await _held(api, payer, payee, 1_500)
    assert await balance(api, payer["id"]) == {
        "posted": _FUNDED,
        "pending": 0,
        "held": 1_500,
        "available": 8_500,
    }
    assert await balance(api, payee["id"]) == _UNTOUCHED

    code, out, err = await run_ledgerflow(shard_dsns, "transfers", "review", "--json")
    assert code == 0, err
    assert held["id"] in {row["transfer_id"] for row in json.loads(out)}
    assert await saga_count(temporal_env.client, cluster, held["id"]) == 0

    loop = asyncio.get_running_loop()
    approved_at = loop.time()
    approved = await post_keyed(api, f"/v1/transfers/{held['id']}/approve")
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] in ("processing", "posted")
    posted = await _until(api, held["id"], "posted")
    assert loop.time() - approved_at < 8, "the saga started with the approval, not the sweep"
    assert posted["saga"]["step"] == "posted"
    assert posted["saga"]["workflow_id"].startswith("settle-")
    assert await saga_count(temporal_env.client, cluster, held["id"]) == 1

    assert await balance(api, payer["id"]) == {
        "posted": 8_500,
        "pending": 0,
        "held": 0,
        "available": 8_500,
    }
    assert await balance(api, payee["id"]) == {
        "posted": 1_500,
        "pending": 0,
        "held": 0,
        "available": 1_500,
    }
    assert await _event_types(api, held["id"]) == [
        "transfer.requires_review",
        "transfer.approved",
        "transfer.posted",
    ]


async def test_rejected_across_shards_releases_the_reserve(api: httpx.AsyncClient) -> None:
    """Rejected, the reserve is released on the source shard: `failed` with
    `review_rejected`, the payer's money available again, the payee never credited, and a
    later decision is 409."""
    payer, payee = await _reviewed_across(api)
    held = await _held(api, payer, payee, 2_000)
    rejected = await post_keyed(api, f"/v1/transfers/{held['id']}/reject")
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "failed"
    assert rejected.json()["failure_code"] == "review_rejected"
    assert rejected.json()["saga"]["step"] == "released"
    assert await balance(api, payer["id"]) == _RESTORED
    assert await balance(api, payee["id"]) == _UNTOUCHED
    for path in ("approve", "reject"):
        again = await post_keyed(api, f"/v1/transfers/{held['id']}/{path}")
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "transfer_not_pending"
    assert await _event_types(api, held["id"]) == [
        "transfer.requires_review",
        "transfer.rejected",
    ]


async def test_a_review_across_shards_without_a_decision_is_rejected(
    short_review_api: httpx.AsyncClient,
) -> None:
    """With `LEDGERFLOW_REVIEW_TIMEOUT_S` of 3, an undecided transfer across shards is
    rejected by its review workflow and its reserve released; approving it then is 409."""
    api = short_review_api
    payer, payee = await _reviewed_across(api)
    held = await _held(api, payer, payee, 3_000)
    failed = await _until(api, held["id"], "failed")
    assert failed["failure_code"] == "review_rejected"
    assert await balance(api, payer["id"]) == _RESTORED
    assert await balance(api, payee["id"]) == _UNTOUCHED
    late = await post_keyed(api, f"/v1/transfers/{held['id']}/approve")
    assert late.status_code == 409, late.text
    assert late.json()["error"]["code"] == "transfer_not_pending"


async def test_another_tenant_cannot_decide_and_a_second_approval_is_refused(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster
) -> None:
    """Another tenant's approve or reject is 404 and changes nothing; the owner's approval
    settles the transfer once, and approving it again is 409 `transfer_not_pending`."""
    payer, payee = await _reviewed_across(api)
    held = await _held(api, payer, payee, 4_000)
    async with other_tenant(api_url, cluster) as other:
        for path in ("approve", "reject"):
            response = await post_keyed(other, f"/v1/transfers/{held['id']}/{path}")
            assert response.status_code == 404, response.text
    unchanged = (await api.get(f"/v1/transfers/{held['id']}")).json()
    assert unchanged["status"] == "requires_review"
    assert (await balance(api, payer["id"]))["held"] == 4_000

    assert (await post_keyed(api, f"/v1/transfers/{held['id']}/approve")).status_code == 200
    again = await post_keyed(api, f"/v1/transfers/{held['id']}/approve")
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "transfer_not_pending"
    await _until(api, held["id"], "posted")
    assert (await balance(api, payee["id"]))["posted"] == 4_000
    assert (await balance(api, payer["id"]))["posted"] == _FUNDED - 4_000


async def test_an_atomic_batch_cannot_dodge_review(api: httpx.AsyncClient) -> None:
    """A leg of an atomic batch above `review_above` is refused with `review_not_supported`
    (its batch's workflow would settle it unreviewed), and so nothing of the batch moves."""
    payer, payee = await _reviewed_across(api)
    response = await post_keyed(
        api,
        "/v1/transfers/batch",
        {
            "atomic": True,
            "transfers": [transfer_body(payer, payee, 500), transfer_body(payer, payee, 1_001)],
        },
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert [d["error"]["code"] for d in data] == ["batch_leg_refused", "review_not_supported"]
    assert await balance(api, payer["id"]) == _RESTORED
    assert await balance(api, payee["id"]) == _UNTOUCHED


async def test_an_approval_whose_saga_could_not_start_is_settled_by_the_sweep(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    temporal_env: WorkflowEnvironment,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Approved while Temporal refuses to start the saga: the approval stands (its outbox
    row is written with the decision and claimed under a workflow id that never started),
    the transfer stays `processing`, and the outbox sweep starts that very workflow id,
    which posts it once."""
    payer, payee = await _reviewed_across(api)
    held = await _held(api, payer, payee, 2_500)
    refused: list[str] = []

    async def temporal_refuses(*_: object, batch: SettlementBatch, **__: object) -> None:
        refused.append(batch.batch_id)
        raise RuntimeError("the Temporal frontend is unavailable")

    monkeypatch.setattr(review_activities, "start_settlement", temporal_refuses)
    approved = await post_keyed(api, f"/v1/transfers/{held['id']}/approve")
    assert approved.status_code == 200, approved.text
    (claimed_by,) = refused
    waiting = await _until(api, held["id"], "processing")
    assert waiting["saga"]["workflow_id"] == claimed_by
    assert await saga_count(temporal_env.client, cluster, held["id"]) == 0
    assert (await balance(api, payer["id"]))["held"] == 2_500
    monkeypatch.undo()

    outcome = await sweep_now(temporal_env.client, TASK_QUEUE)
    assert outcome.restarted >= 1, outcome
    posted = await _until(api, held["id"], "posted")
    assert posted["saga"]["workflow_id"] == claimed_by
    assert await saga_count(temporal_env.client, cluster, held["id"]) == 1
    assert await balance(api, payer["id"]) == {
        "posted": _FUNDED - 2_500,
        "pending": 0,
        "held": 0,
        "available": _FUNDED - 2_500,
    }
    assert await balance(api, payee["id"]) == {
        "posted": 2_500,
        "pending": 0,
        "held": 0,
        "available": 2_500,
    }
