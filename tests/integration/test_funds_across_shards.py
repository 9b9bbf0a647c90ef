"""Holds and delayed credits between accounts on two shards, through the HTTP API: the saga
opens the hold (pending on the destination), captures, increments, voids and the expiry
reach the destination through follow-ups, and a delayed credit becomes available on its
date; the books, clearing accounts included, are checked after each."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.transfer_changes import TransferChanges
from ledger.ids import slot_of
from ledger.limits import BIGINT_MAX
from ledger.posting import Movement
from ledgerflow.devstack import EmbeddedPostgres
from shards.accounts import new_account_id
from shards.cluster import ShardCluster, new_transfer_id
from shards.followups import apply_followups, find_open_followups, record_followups
from shards.posting_types import PostingRequest
from shards.raises import settle_open_raises
from tests.conftest import other_tenant
from tests.integration.cross_shard import tenant_of
from tests.integration.helpers import (
    balance,
    create_account,
    post_keyed,
    run_ledgerflow,
    transfer_body,
)

pytestmark = pytest.mark.usefixtures("books")

EMPTY = {"posted": 0, "pending": 0, "held": 0, "available": 0}


async def _apart(api: httpx.AsyncClient, funds: int = 10_000, **payee: object) -> tuple[dict, dict]:
    """A payer holding `funds` and a payee on another shard."""
    funding = await create_account(api, allow_overdraft=True)
    payer = await create_account(api)
    while payer["shard"] != funding["shard"]:
        payer = await create_account(api)
    while True:
        response = await api.post("/v1/accounts", json={"currency": "USD", **payee})
        assert response.status_code == 201, response.text
        merchant = response.json()
        if merchant["shard"] != payer["shard"]:
            break
    response = await post_keyed(api, "/v1/transfers", transfer_body(funding, payer, funds))
    assert response.status_code == 201, response.text
    return payer, merchant


async def _until(
    api: httpx.AsyncClient, transfer_id: str, status: str, within_s: float = 15
) -> dict:
    """The transfer once it reached `status`, within `within_s` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        found = (await api.get(f"/v1/transfers/{transfer_id}")).json()
        if found["status"] == status:
            return found
        assert loop.time() < deadline, f"{transfer_id} is {found['status']}, not {status}"
        await asyncio.sleep(0.1)


async def _refused(
    api: httpx.AsyncClient, response: httpx.Response, code: str, status: int
) -> None:
    """A new transfer refused with `code`: answered `status` at once, or 202 and then
    `failed` with it once its saga settled."""
    if response.status_code == 202:
        failed = await _until(api, response.json()["id"], "failed")
        assert failed["failure_code"] == code, failed
    else:
        assert response.status_code == status, response.text
        assert response.json()["error"]["code"] == code, response.text


async def _hold(
    api: httpx.AsyncClient, payer: dict, merchant: dict, amount: int, **extra: object
) -> dict:
    """Place a hold across shards: 201 `pending` when the saga opened it within the wait,
    else 202 `processing` until it did."""
    response = await post_keyed(
        api, "/v1/transfers", transfer_body(payer, merchant, amount, pending=True, **extra)
    )
    assert response.status_code in (201, 202), response.text
    placed = response.json()
    assert placed["cross_shard"] is True
    assert placed["expires_at"] is not None
    assert placed["status"] == ("pending" if response.status_code == 201 else "processing")
    return await _until(api, placed["id"], "pending")


async def _settled(
    api: httpx.AsyncClient, account: dict, expected: dict, within_s: float = 15
) -> None:
    """The account's balance reaches `expected` within `within_s` seconds (a follow-up the
    API could not apply at once is applied by the funds timers)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while (found := await balance(api, account["id"])) != expected:
        assert loop.time() < deadline, f"{account['id']}: {found} != {expected}"
        await asyncio.sleep(0.1)


async def test_hold_across_shards_captured_in_parts(api: httpx.AsyncClient) -> None:
    """Held on the payer's shard, pending on the merchant's; a partial capture that keeps
    the hold open, an increment, then a final capture that releases the rest, each shown on
    both shards in the answer's wake; the events follow the hold."""
    payer, merchant = await _apart(api)
    hold = await _hold(api, payer, merchant, 4_000)
    assert hold["saga"]["step"] == "held"
    assert await balance(api, payer["id"]) == {
        "posted": 10_000,
        "pending": 0,
        "held": 4_000,
        "available": 6_000,
    }
    assert await balance(api, merchant["id"]) == {**EMPTY, "pending": 4_000}

    response = await post_keyed(
        api, f"/v1/transfers/{hold['id']}/capture", {"amount": 1_500, "final": False}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending"
    assert response.json()["captured_amount"] == 1_500
    await _settled(
        api, merchant, {"posted": 1_500, "pending": 2_500, "held": 0, "available": 1_500}
    )

    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/increment", {"amount": 1_000})
    assert response.status_code == 200, response.text
    assert response.json()["amount"] == 5_000
    await _settled(
        api, merchant, {"posted": 1_500, "pending": 3_500, "held": 0, "available": 1_500}
    )
    assert (await balance(api, payer["id"]))["held"] == 3_500

    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {"amount": 2_000})
    assert response.status_code == 200, response.text
    captured = response.json()
    assert captured["status"] == "posted"
    assert captured["captured_amount"] == 3_500
    assert [c["amount"] for c in captured["captures"]] == [1_500, 2_000]
    await _settled(api, merchant, {"posted": 3_500, "pending": 0, "held": 0, "available": 3_500})
    assert await balance(api, payer["id"]) == {
        "posted": 6_500,
        "pending": 0,
        "held": 0,
        "available": 6_500,
    }

    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {"amount": 1})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "transfer_not_pending"
    events = (await api.get("/v1/events", params={"limit": 100})).json()["data"]
    types = [e["type"] for e in events if e["data"]["object"]["id"] == hold["id"]]
    assert types == [
        "transfer.captured",
        "transfer.incremented",
        "transfer.captured",
        "transfer.pending",
    ], types


async def test_void_and_refused_hold_across_shards(api: httpx.AsyncClient) -> None:
    """A void releases the money on both shards; a hold whose payee is frozen fails
    (`account_frozen`) and holds nothing anywhere."""
    payer, merchant = await _apart(api)
    hold = await _hold(api, payer, merchant, 2_000)
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/void")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "voided"
    await _settled(api, merchant, EMPTY)
    assert await balance(api, payer["id"]) == {
        "posted": 10_000,
        "pending": 0,
        "held": 0,
        "available": 10_000,
    }

    assert (await api.post(f"/v1/accounts/{merchant['id']}/freeze")).status_code == 200
    response = await post_keyed(
        api, "/v1/transfers", transfer_body(payer, merchant, 500, pending=True)
    )
    await _refused(api, response, "account_frozen", 409)
    assert (await balance(api, payer["id"]))["held"] == 0
    assert await balance(api, merchant["id"]) == EMPTY


async def test_capture_racing_void_across_shards_moves_money_once(api: httpx.AsyncClient) -> None:
    """Ten captures and ten voids of one hold at once: exactly one wins, the rest are 409,
    and the merchant receives the money once or not at all."""
    payer, merchant = await _apart(api)
    hold = await _hold(api, payer, merchant, 1_000)
    paths = [f"/v1/transfers/{hold['id']}/{a}" for a in ("capture", "void") for _ in range(10)]
    responses = await asyncio.gather(
        *(post_keyed(api, p, {} if p.endswith("capture") else None) for p in paths)
    )
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1, [r.status_code for r in responses]
    assert all(r.status_code == 409 for r in responses if r.status_code != 200)
    won = winners[0].json()["status"]
    moved = 1_000 if won == "posted" else 0
    await _settled(api, merchant, {"posted": moved, "pending": 0, "held": 0, "available": moved})
    assert (await balance(api, payer["id"]))["posted"] == 10_000 - moved


async def test_hold_across_shards_expires_on_both_shards(api: httpx.AsyncClient) -> None:
    """From `expires_at` a capture is refused; within 15 seconds the hold is `expired` and
    both shards show the money released, what was captured before staying posted."""
    payer, merchant = await _apart(api)
    hold = await _hold(api, payer, merchant, 3_000, expires_in=3)
    response = await post_keyed(
        api, f"/v1/transfers/{hold['id']}/capture", {"amount": 1_000, "final": False}
    )
    assert response.status_code == 200, response.text
    await asyncio.sleep(
        max(0, (datetime.fromisoformat(hold["expires_at"]) - datetime.now(UTC)).total_seconds())
    )
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {"amount": 1})
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "transfer_expired"
    await _until(api, hold["id"], "expired")
    await _settled(api, merchant, {"posted": 1_000, "pending": 0, "held": 0, "available": 1_000})
    assert await balance(api, payer["id"]) == {
        "posted": 9_000,
        "pending": 0,
        "held": 0,
        "available": 9_000,
    }


async def test_increment_across_shards_refused_by_the_payee(api: httpx.AsyncClient) -> None:
    """An increment the payee's `max_balance` refuses is 409 `balance_limit_exceeded`, one
    the payer cannot fund is 402; neither changes either side."""
    payer, merchant = await _apart(api, limits={"max_balance": 2_500})
    hold = await _hold(api, payer, merchant, 2_000)
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/increment", {"amount": 501})
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "balance_limit_exceeded"
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/increment", {"amount": 9_000})
    assert response.status_code in (402, 409), response.text
    assert (await api.get(f"/v1/transfers/{hold['id']}")).json()["amount"] == 2_000
    assert await balance(api, merchant["id"]) == {**EMPTY, "pending": 2_000}
    assert (await balance(api, payer["id"]))["held"] == 2_000
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/increment", {"amount": 500})
    assert response.status_code == 200, response.text
    await _settled(api, merchant, {**EMPTY, "pending": 2_500})
    assert (await post_keyed(api, f"/v1/transfers/{hold['id']}/void")).status_code == 200
    await _settled(api, merchant, EMPTY)


async def test_hostile_tenant_cannot_touch_a_hold_across_shards(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster
) -> None:
    """Another tenant's capture, void and increment of a hold across shards are 404 and
    move nothing; nor can it list the payee's waiting credits."""
    payer, merchant = await _apart(api)
    hold = await _hold(api, payer, merchant, 1_000)
    async with other_tenant(api_url, cluster) as other:
        for path, body in (("capture", {}), ("void", None), ("increment", {"amount": 10})):
            response = await post_keyed(other, f"/v1/transfers/{hold['id']}/{path}", body)
            assert response.status_code == 404, response.text
        response = await other.get(f"/v1/accounts/{merchant['id']}/availability")
        assert response.status_code == 404
        theirs = await create_account(other)
        while theirs["shard"] == payer["shard"]:
            theirs = await create_account(other)
    # A hold to another tenant's account on another shard is refused by the saga, as an
    # unknown account; nothing stays held.
    response = await post_keyed(
        api, "/v1/transfers", transfer_body(payer, theirs, 300, pending=True)
    )
    await _refused(api, response, "account_not_found", 404)
    assert (await balance(api, payer["id"]))["held"] == 1_000
    assert await balance(api, merchant["id"]) == {**EMPTY, "pending": 1_000}
    assert (await post_keyed(api, f"/v1/transfers/{hold['id']}/void")).status_code == 200
    await _settled(api, merchant, EMPTY)


async def test_delayed_credit_across_shards(api: httpx.AsyncClient) -> None:
    """The payer is debited once the saga settles; the payee sees the credit pending and
    listed under `availability` until `available_on`, then available within 15 seconds,
    with a `funds.available` event."""
    payer, payee = await _apart(api)
    available_on = datetime.now(UTC) + timedelta(seconds=4)
    response = await post_keyed(
        api,
        "/v1/transfers",
        transfer_body(payer, payee, 2_500, available_on=available_on.isoformat()),
    )
    assert response.status_code in (201, 202), response.text
    deferred = await _until(api, response.json()["id"], "posted")
    assert deferred["cross_shard"] is True
    assert deferred["available_at"] is None
    assert await balance(api, payer["id"]) == {
        "posted": 7_500,
        "pending": 0,
        "held": 0,
        "available": 7_500,
    }
    assert await balance(api, payee["id"]) == {**EMPTY, "pending": 2_500}
    waiting = (await api.get(f"/v1/accounts/{payee['id']}/availability")).json()["data"]
    assert [(w["transfer_id"], w["amount"]) for w in waiting] == [(deferred["id"], 2_500)]

    await _settled(
        api, payee, {"posted": 2_500, "pending": 0, "held": 0, "available": 2_500}, within_s=20
    )
    assert (await api.get(f"/v1/transfers/{deferred['id']}")).json()["available_at"] is not None
    assert (await api.get(f"/v1/accounts/{payee['id']}/availability")).json()["data"] == []
    events = (await api.get("/v1/events", params={"type": "funds.available"})).json()["data"]
    assert [e["data"]["object"]["id"] for e in events] == [deferred["id"]]


async def test_delayed_credit_across_shards_refused_by_the_payee(api: httpx.AsyncClient) -> None:
    """A frozen payee refuses the credit: the transfer fails and the payer keeps the money;
    the timers never make it available."""
    payer, payee = await _apart(api)
    assert (await api.post(f"/v1/accounts/{payee['id']}/freeze")).status_code == 200
    available_on = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    response = await post_keyed(
        api, "/v1/transfers", transfer_body(payer, payee, 700, available_on=available_on)
    )
    await _refused(api, response, "account_frozen", 409)
    assert await balance(api, payer["id"]) == {
        "posted": 10_000,
        "pending": 0,
        "held": 0,
        "available": 10_000,
    }
    assert await balance(api, payee["id"]) == EMPTY


async def test_capture_while_the_payee_shard_is_down_reaches_it_later(
    api: httpx.AsyncClient, shard_servers: list[EmbeddedPostgres]
) -> None:
    """A capture commits on the payer's shard while the payee's shard is stopped: the answer
    is 200 `posted`, and once the shard is back the funds timers apply what it owes, so the
    payee is credited once, within 15 seconds, with nothing lost or doubled."""
    payer, merchant = await _apart(api)
    hold = await _hold(api, payer, merchant, 1_200)
    server = shard_servers[merchant["shard"]]
    await asyncio.to_thread(server.stop)
    try:
        response = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {"amount": 800})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "posted"
    finally:
        await asyncio.to_thread(server.start)
    assert await balance(api, payer["id"]) == {
        "posted": 9_200,
        "pending": 0,
        "held": 0,
        "available": 9_200,
    }
    await _settled(
        api, merchant, {"posted": 800, "pending": 0, "held": 0, "available": 800}, within_s=20
    )


async def test_pending_money_cannot_push_a_payee_past_the_range(api: httpx.AsyncClient) -> None:
    """What is pending counts against the bigint range with what is posted: a hold or a
    delayed credit that would take a payee's posted plus pending past 2⁶³−1 is refused
    (`amount_overflow`), on one shard and across two, so no capture, credit made available
    or follow-up can be refused later (one that could would stall the shard's timers for
    every tenant). A capture within the range posts."""
    for same_shard in (True, False):
        whale = await create_account(api, allow_overdraft=True)
        payee = await create_account(api)
        while (payee["shard"] == whale["shard"]) != same_shard:
            payee = await create_account(api)
        funded = await post_keyed(
            api, "/v1/transfers", transfer_body(whale, payee, BIGINT_MAX - 200)
        )
        assert funded.status_code in (201, 202), funded.text
        await _settled(
            api, payee, {**EMPTY, "posted": BIGINT_MAX - 200, "available": BIGINT_MAX - 200}
        )
        # The payer is another account: the whale itself is at the edge of the range.
        payer = await create_account(api)
        while payer["shard"] != whale["shard"]:
            payer = await create_account(api)
        funding = await create_account(api, allow_overdraft=True)
        while funding["shard"] != whale["shard"]:
            funding = await create_account(api, allow_overdraft=True)
        assert (
            await post_keyed(api, "/v1/transfers", transfer_body(funding, payer, 1_000))
        ).status_code == 201
        later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        for extra in ({"pending": True}, {"available_on": later}):
            response = await post_keyed(
                api, "/v1/transfers", transfer_body(payer, payee, 201, **extra)
            )
            await _refused(api, response, "amount_overflow", 400)
        response = await post_keyed(
            api, "/v1/transfers", transfer_body(payer, payee, 100, pending=True)
        )
        assert response.status_code in (201, 202), response.text
        hold = await _until(api, response.json()["id"], "pending")
        # With 100 pending, 101 more posted would overflow once the hold is captured.
        response = await post_keyed(api, "/v1/transfers", transfer_body(payer, payee, 101))
        await _refused(api, response, "amount_overflow", 400)
        response = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {})
        assert response.status_code == 200, response.text
        top = BIGINT_MAX - 100
        await _settled(api, payee, {"posted": top, "pending": 0, "held": 0, "available": top})


async def test_a_follow_up_its_destination_refuses_is_listed_as_money_in_flight(
    api: httpx.AsyncClient, cluster: ShardCluster, shard_dsns: list[str]
) -> None:
    """A follow-up its destination refuses (never expected: the source checks what it can
    first; here a credit to an account the destination does not have) stays open with its
    refusal, and `ledgerflow transfers stuck` lists it, in its table and its JSON, and exits
    1 until it is applied; once it has been open longer than `--max-in-flight`, `verify`
    exits 1 naming it."""
    payer, merchant = await _apart(api)
    source = payer["shard"]
    tenant = await tenant_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    transfer_id = new_transfer_id(slot_of(payer["id"]))
    owed = PostingRequest(
        operation_key=f"{transfer_id}:capture:{Movement.POST_CREDIT}",
        transfer_id=transfer_id,
        tenant_id=tenant,
        movement=Movement.POST_CREDIT,
        debit_account_id=payer["id"],
        credit_account_id=new_account_id(),
        amount=500,
        currency="USD",
        source_shard=source,
        destination_shard=merchant["shard"],
    )
    async with cluster.shards[source].connection() as conn, conn.transaction():
        await record_followups(conn, [owed])
    try:
        await apply_followups(cluster, source, transfer_ids=[transfer_id])
        open_now = await find_open_followups(cluster, older_than_s=0)
        (listed,) = [f for f in open_now if f.transfer_id == transfer_id]
        assert (listed.movement, listed.amount, listed.refused_at is not None) == (
            Movement.POST_CREDIT,
            500,
            True,
        )
        assert listed.refusal is not None
        assert listed.refusal.startswith("account_not_found")
        (code, out, err), (json_code, json_out, json_err) = await asyncio.gather(
            run_ledgerflow(shard_dsns, "transfers", "stuck", "--older-than", "0s"),
            run_ledgerflow(shard_dsns, "transfers", "stuck", "--older-than", "0s", "--json"),
        )
        assert json_code == 1, json_err
        (row,) = [f for f in json.loads(json_out)["followups"] if f["transfer_id"] == transfer_id]
        assert (row["movement"], row["amount"], row["destination_shard"]) == (
            "post_credit",
            500,
            merchant["shard"],
        )
        assert row["refusal"].startswith("account_not_found")
        assert code == 1, err
        line = next(line for line in out.splitlines() if transfer_id in line)
        assert "post_credit" in line
        assert "5.00 USD" in line
        # Open for longer than --max-in-flight (10 minutes unless told), it is a finding of
        # `verify`, named with its transfer, not money merely settling.
        code, out, err = await run_ledgerflow(shard_dsns, "verify", "--max-in-flight", "1h")
        assert code == 0, out + err
        async with cluster.shards[source].connection() as conn:
            await conn.execute(
                "update remote_postings set created_at = created_at - interval '11 minutes'"
                " where transfer_id = $1",
                transfer_id,
            )
        code, out, err = await run_ledgerflow(shard_dsns, "verify")
        assert code == 1, out + err
        assert f"transfer {transfer_id} has had money in flight for 66" in err, err
        assert "its follow-up on the destination is not applied" in err, err
    finally:
        async with cluster.shards[source].connection() as conn:
            await conn.execute("delete from remote_postings where transfer_id = $1", transfer_id)


async def test_racing_increments_across_shards_keep_the_payees_max_balance(
    api: httpx.AsyncClient,
) -> None:
    """Twelve increments of 500 race on a hold of 1,000 to a payee whose `max_balance` is
    3,000: exactly four land, the others are 409 `balance_limit_exceeded`, and the payee
    never shows more pending than its ceiling. The raise is reserved on the payee's shard,
    under its lock, before the payer's shard holds more. (The payee was read without a
    lock: every increment passed that read, and the destination then raised the pending
    credit checking only the range, to 7,000.)"""
    payer, merchant = await _apart(api, limits={"max_balance": 3_000})
    hold = await _hold(api, payer, merchant, 1_000)
    path = f"/v1/transfers/{hold['id']}/increment"
    answers = await asyncio.gather(*(post_keyed(api, path, {"amount": 500}) for _ in range(12)))
    landed = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    assert len(landed) == 4, [r.text for r in answers]
    assert {(r.status_code, r.json()["error"]["code"]) for r in refused} == {
        (409, "balance_limit_exceeded")
    }
    assert (await api.get(f"/v1/transfers/{hold['id']}")).json()["amount"] == 3_000
    await _settled(api, merchant, {**EMPTY, "pending": 3_000})
    assert (await balance(api, payer["id"]))["held"] == 3_000
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {})
    assert response.status_code == 200, response.text
    await _settled(api, merchant, {"posted": 3_000, "pending": 0, "held": 0, "available": 3_000})


@pytest.mark.parametrize("settled_first", [False, True], ids=["retried", "settled-first"])
async def test_an_increment_interrupted_after_its_raise_was_reserved(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    monkeypatch: pytest.MonkeyPatch,
    settled_first: bool,
) -> None:
    """The request of an increment across shards dies after the payee's shard reserved the
    raise and before the payer's shard took it. Retried under its key, it lands once; left
    alone, the funds timers' pass abandons its key on the payer's shard and voids the raise,
    and a retry is then answered with that decision: nothing moved, on either side."""
    payer, merchant = await _apart(api)
    hold = await _hold(api, payer, merchant, 1_000)
    path = f"/v1/transfers/{hold['id']}/increment"
    original = TransferChanges._reserve_raise

    async def reserve_then_die(self: TransferChanges, *args: object, **kwargs: object) -> object:
        await original(self, *args, **kwargs)  # type: ignore[arg-type]
        raise ConnectionResetError("the API process died here")

    key = f"test-{new_transfer_id(0)}"
    with monkeypatch.context() as patched:
        patched.setattr(TransferChanges, "_reserve_raise", reserve_then_die)
        died = await post_keyed(api, path, {"amount": 500}, key=key)
    assert died.status_code >= 500, died.text
    # The raise is reserved and shown pending; the payer holds no more yet.
    assert await balance(api, merchant["id"]) == {**EMPTY, "pending": 1_500}
    assert (await balance(api, payer["id"]))["held"] == 1_000
    if settled_first:
        settled = await settle_open_raises(cluster, merchant["shard"], older_than_s=0, limit=100)
        assert (settled.kept, settled.voided) == (0, 1)
        assert await balance(api, merchant["id"]) == {**EMPTY, "pending": 1_000}
        for _ in range(2):
            retried = await post_keyed(api, path, {"amount": 500}, key=key)
            assert retried.status_code == 502, retried.text
            assert retried.json()["error"]["code"] == "settlement_failed"
        assert (await api.get(f"/v1/transfers/{hold['id']}")).json()["amount"] == 1_000
        assert await balance(api, merchant["id"]) == {**EMPTY, "pending": 1_000}
        assert (await balance(api, payer["id"]))["held"] == 1_000
        again = await post_keyed(api, path, {"amount": 500})
        assert again.status_code == 200, again.text
    else:
        for _ in range(2):
            retried = await post_keyed(api, path, {"amount": 500}, key=key)
            assert retried.status_code == 200, retried.text
            assert retried.json()["amount"] == 1_500
        settled = await settle_open_raises(cluster, merchant["shard"], older_than_s=0, limit=100)
        assert (settled.kept, settled.voided) == (0, 0)
    await _settled(api, merchant, {**EMPTY, "pending": 1_500})
    assert (await balance(api, payer["id"]))["held"] == 1_500
    response = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {})
    assert response.status_code == 200, response.text
    await _settled(api, merchant, {"posted": 1_500, "pending": 0, "held": 0, "available": 1_500})


async def test_funds_available_across_shards_follows_the_money(
    api: httpx.AsyncClient, cluster: ShardCluster, shard_servers: list[EmbeddedPostgres]
) -> None:
    """A delayed credit across shards falls due while the payee's shard is stopped: until
    that shard has made the money available, the transfer shows no `available_at` and the
    feed has no `funds.available`; once it is back, the money, `available_at` and the event
    come together, the event once. (The event and `available_at` were written when the
    payer's shard recorded what the payee's owed, so the feed said "available" while the
    payee's balance still showed it pending.)"""
    payer, payee = await _apart(api)
    available_on = datetime.now(UTC) + timedelta(seconds=2)
    response = await post_keyed(
        api,
        "/v1/transfers",
        transfer_body(payer, payee, 900, available_on=available_on.isoformat()),
    )
    assert response.status_code in (201, 202), response.text
    deferred = await _until(api, response.json()["id"], "posted")
    server = shard_servers[payee["shard"]]
    await asyncio.to_thread(server.stop)
    try:
        # Past its date, and the payer's shard has recorded what the payee's shard owes.
        source = cluster.shards[payer["shard"]]
        for _ in range(300):
            async with source.connection() as conn:
                recorded = await conn.fetchval(
                    "select count(*) from remote_postings where transfer_id = $1",
                    deferred["id"],
                )
            if recorded:
                break
            await asyncio.sleep(0.1)
        assert recorded == 1
        await asyncio.sleep(1)  # a pass of the timers more
        found = (await api.get(f"/v1/transfers/{deferred['id']}")).json()
        assert found["available_at"] is None, found
        async with source.connection() as conn:
            # Read on the payer's shard itself: the feed merges every shard's, and one is down.
            reported = await conn.fetchval(
                "select count(*) from events where transfer_id = $1 and type = $2",
                deferred["id"],
                "funds.available",
            )
        assert reported == 0
    finally:
        await asyncio.to_thread(server.start)
    await _settled(
        api, payee, {"posted": 900, "pending": 0, "held": 0, "available": 900}, within_s=30
    )
    found = (await api.get(f"/v1/transfers/{deferred['id']}")).json()
    for _ in range(100):
        if found["available_at"] is not None:
            break
        await asyncio.sleep(0.1)
        found = (await api.get(f"/v1/transfers/{deferred['id']}")).json()
    assert found["available_at"] is not None, found
    events = (await api.get("/v1/events", params={"type": "funds.available"})).json()["data"]
    assert [e["data"]["object"]["id"] for e in events] == [deferred["id"]]
