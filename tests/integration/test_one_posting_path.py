"""Every change of money goes through the one posting path: a hold's changes and delayed
credits keep the rules of a new transfer, and a retry under a key whose operation
committed is answered with that operation, whatever the clock says now.

Each test here failed on the code where captures, voids, increments and delayed credits
each ran a transaction of their own with checks of their own.
"""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.worker import Worker
from ulid import ULID

from ledger.holds import HoldAction
from ledger.ids import clearing_account_id
from ledger.limits import BIGINT_MAX
from ledgerflow.composition import Wiring
from shards.cluster import ShardCluster
from shards.followups import apply_followups, find_open_followups
from shards.holds import expire_due_holds
from shards.posting import post_batch_on
from shards.posting_types import HoldChangeRequest
from tests.conftest import TASK_QUEUE, new_tenant_key, served, tenant_client
from tests.integration.cross_shard import account_on, api_key_id_of, settled, tenant_of
from tests.integration.helpers import balance, post_keyed, transfer_body

PAYER_SHARD = 0


async def _funded(api: httpx.AsyncClient, shard: int, amount: int, **fields: object) -> dict:
    """An account on `shard` holding `amount`, with `fields` (limits) set after funding."""
    account = await account_on(api, shard)
    funding = await account_on(api, shard, allow_overdraft=True)
    funded = await post_keyed(api, "/v1/transfers", transfer_body(funding, account, amount))
    assert funded.status_code == 201, funded.text
    if "limits" in fields:
        changed = await post_keyed(api, f"/v1/accounts/{account['id']}/limits", fields["limits"])
        assert changed.status_code == 200, changed.text
    return account


async def _hold(api: httpx.AsyncClient, payer: dict, payee: dict, amount: int) -> dict:
    """A hold, once its payee's shard shows it (`pending`)."""
    placed = await post_keyed(
        api, "/v1/transfers", transfer_body(payer, payee, amount, pending=True)
    )
    assert placed.status_code in (201, 202), placed.text
    hold = placed.json()
    for _ in range(300):
        if hold["status"] == "pending":
            return hold
        await asyncio.sleep(0.1)
        hold = (await api.get(f"/v1/transfers/{hold['id']}")).json()
    raise AssertionError(f"the hold did not open: {hold}")


@pytest.mark.parametrize("across", [False, True], ids=["one-shard", "across-shards"])
async def test_an_increment_keeps_the_review_limit_of_what_the_hold_debits(
    api: httpx.AsyncClient, books: None, across: bool
) -> None:
    """With `review_above: 1000` a plain transfer of 5,000 waits for review; a hold of
    1,000 raised by 1,000 would debit 2,000 in all, so the increment is refused like a hold
    of 2,000 (400 `review_not_supported`), the hold stays 1,000, and a capture posts 1,000.
    (The increment's own amount was compared with the limit: five increments then took the
    hold to 6,000 and a capture posted it unreviewed.)"""
    payer = await _funded(api, PAYER_SHARD, 10_000, limits={"review_above": 1_000})
    payee = await account_on(api, (PAYER_SHARD + 1) % 4 if across else PAYER_SHARD)
    waiting = await post_keyed(api, "/v1/transfers", transfer_body(payer, payee, 5_000))
    assert waiting.status_code == 202, waiting.text
    assert waiting.json()["status"] == "requires_review"
    rejected = await post_keyed(api, f"/v1/transfers/{waiting.json()['id']}/reject")
    assert rejected.status_code == 200, rejected.text

    hold = await _hold(api, payer, payee, 1_000)
    for _ in range(5):
        raised = await post_keyed(api, f"/v1/transfers/{hold['id']}/increment", {"amount": 1_000})
        assert raised.status_code == 400, raised.text
        assert raised.json()["error"]["code"] == "review_not_supported"
    assert (await api.get(f"/v1/transfers/{hold['id']}")).json()["amount"] == 1_000
    assert (await balance(api, payer["id"]))["held"] == 1_000
    captured = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {})
    assert captured.status_code == 200, captured.text
    assert captured.json()["captured_amount"] == 1_000
    await settled(api)
    assert (await balance(api, payer["id"]))["posted"] == 9_000
    assert (await balance(api, payee["id"]))["posted"] == 1_000


async def _record_shard(cluster: ShardCluster, owner: str, key: str) -> int:
    for index, shard in enumerate(cluster.shards):
        async with shard.connection() as conn:
            found = await conn.fetchval(
                "select count(*) from idempotency_keys where api_key_id = $1 and key = $2",
                owner,
                key,
            )
        if found:
            return index
    raise AssertionError(f"no idempotency record of {key}")


async def _crash_before_the_answer(cluster: ShardCluster, api: httpx.AsyncClient, key: str) -> None:
    """Leave the idempotency record of `key` as an API process that died after the money
    moved and before it stored the answer leaves it: in flight, its lease over."""
    owner = await api_key_id_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    async with cluster.shards[await _record_shard(cluster, owner, key)].connection() as conn:
        changed = await conn.execute(
            "update idempotency_keys set state = 'in_flight', locked_at = '-infinity',"
            " response_status = null, response_body = null"
            " where api_key_id = $1 and key = $2",
            owner,
            key,
        )
    assert changed == "UPDATE 1", changed


@pytest.mark.parametrize("way", ["single", "batch-item"])
@pytest.mark.parametrize("across", [False, True], ids=["one-shard", "across-shards"])
async def test_a_delayed_credit_retried_after_it_fell_due_is_answered_with_it(
    api: httpx.AsyncClient, cluster: ShardCluster, books: None, across: bool, way: str
) -> None:
    """A delayed credit committed, its API process died before storing the answer, and the
    retry under the same key comes after `available_on`: it is answered with the transfer
    (not 400 "available_on must be in the future" while the money had moved), and the
    money moved once."""
    payer = await _funded(api, PAYER_SHARD, 1_000)
    payee = await account_on(api, (PAYER_SHARD + 1) % 4 if across else PAYER_SHARD)
    due = datetime.now(UTC) + timedelta(seconds=2)
    body = transfer_body(payer, payee, 300, available_on=due.isoformat())
    key = f"later-{ULID()}"

    async def send() -> httpx.Response:
        if way == "single":
            return await post_keyed(api, "/v1/transfers", body, key=key)
        return await post_keyed(
            api, "/v1/transfers/batch", {"transfers": [{**body, "idempotency_key": key}]}
        )

    def answer(response: httpx.Response) -> tuple[int, dict]:
        if way == "single":
            return response.status_code, response.json()
        (item,) = response.json()["data"]
        return item["status"], item["transfer"] or item["error"]

    status, first = answer(await send())
    assert status in (201, 202), first
    await settled(api)
    await _crash_before_the_answer(cluster, api, key)
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 1.0)
    status, retried = answer(await send())
    assert status in (200, 201), retried
    assert retried["id"] == first["id"], retried
    assert (await balance(api, payer["id"]))["posted"] == 700
    listed = [t for t in await settled(api) if t["credit_account_id"] == payee["id"]]
    assert [t["id"] for t in listed] == [first["id"]], "the money moved once"


async def test_a_delayed_credit_not_in_the_future_is_refused_and_moves_nothing(
    api: httpx.AsyncClient, books: None
) -> None:
    """A new delayed credit whose `available_on` is behind the shard's clock, or more than
    90 days ahead, is 400 naming `available_on`, and nothing moves."""
    payer = await _funded(api, PAYER_SHARD, 1_000)
    payee = await account_on(api, PAYER_SHARD)
    for when in (datetime.now(UTC) - timedelta(seconds=1), datetime.now(UTC) + timedelta(days=91)):
        refused = await post_keyed(
            api, "/v1/transfers", transfer_body(payer, payee, 10, available_on=when.isoformat())
        )
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["param"] == "available_on"
    assert (await balance(api, payer["id"]))["posted"] == 1_000


async def test_an_increment_without_the_funds_takes_no_lock_on_the_payees_shard(
    api_url: str, tenant_key: str, cluster: ShardCluster, books: None
) -> None:
    """A hostile tenant's increments from an account without the funds, while another
    transaction holds the payee shard's clearing account (as every tenant's saga steps
    do): each is refused 402 at once, as one item of a batch on the payer's shard, and
    waits for no lock there. (They were tried on the payee's shard first, in a transaction
    that locked its clearing account, so each waited for it.)"""
    payee_shard = (PAYER_SHARD + 1) % 4
    async with tenant_client(api_url, tenant_key, timeout_s=5.0) as api:
        payer = await _funded(api, PAYER_SHARD, 1_000)
        payee = await account_on(api, payee_shard)
        hold = await _hold(api, payer, payee, 1_000)
        async with cluster.shards[payee_shard].connection() as conn, conn.transaction():
            await conn.execute(
                "select 1 from accounts where id = $1 for update",
                clearing_account_id(payee_shard, "USD"),
            )
            refused = await asyncio.gather(
                *(
                    post_keyed(api, f"/v1/transfers/{hold['id']}/increment", {"amount": 1})
                    for _ in range(10)
                )
            )
            # A frozen payer refuses at once too, whatever the amount.
            frozen = await post_keyed(api, f"/v1/accounts/{payer['id']}/freeze")
            assert frozen.status_code == 200, frozen.text
            refused_frozen = await post_keyed(
                api, f"/v1/transfers/{hold['id']}/increment", {"amount": 1}
            )
            assert refused_frozen.status_code == 409, refused_frozen.text
            assert refused_frozen.json()["error"]["code"] == "account_frozen"
            unfrozen = await post_keyed(api, f"/v1/accounts/{payer['id']}/unfreeze")
            assert unfrozen.status_code == 200, unfrozen.text
        assert [r.status_code for r in refused] == [402] * 10, [r.text for r in refused]
        assert {r.json()["error"]["code"] for r in refused} == {"insufficient_funds"}
        voided = await post_keyed(api, f"/v1/transfers/{hold['id']}/void")
        assert voided.status_code == 200, voided.text
        await settled(api)


@pytest.mark.parametrize("across", [False, True], ids=["one-shard", "across-shards"])
async def test_increments_racing_a_capture_count_exactly_what_was_held(
    api: httpx.AsyncClient, books: None, across: bool
) -> None:
    """Twenty increments of 100 race a final capture of 500 on one hold of 1,000: each
    increment lands before the capture (and is part of what it releases) or after it (409
    `transfer_not_pending`); the payee gets exactly 500 and the payer keeps the rest."""
    payer = await _funded(api, PAYER_SHARD, 10_000)
    payee = await account_on(api, (PAYER_SHARD + 1) % 4 if across else PAYER_SHARD)
    hold = await _hold(api, payer, payee, 1_000)
    path = f"/v1/transfers/{hold['id']}"
    answers = await asyncio.gather(
        *(post_keyed(api, f"{path}/increment", {"amount": 100}) for _ in range(10)),
        post_keyed(api, f"{path}/capture", {"amount": 500}),
        *(post_keyed(api, f"{path}/increment", {"amount": 100}) for _ in range(10)),
    )
    capture = answers[10]
    assert capture.status_code == 200, capture.text
    increments = answers[:10] + answers[11:]
    landed = [r for r in increments if r.status_code == 200]
    late = [r for r in increments if r.status_code != 200]
    assert {r.json()["error"]["code"] for r in late} <= {"transfer_not_pending"}, late
    final = (await api.get(path)).json()
    assert final["status"] == "posted"
    assert final["amount"] == 1_000 + 100 * len(landed)
    assert final["captured_amount"] == 500
    await settled(api)
    assert await balance(api, payer["id"]) == {
        "posted": 9_500,
        "pending": 0,
        "held": 0,
        "available": 9_500,
    }
    assert (await balance(api, payee["id"]))["posted"] == 500
    assert (await balance(api, payee["id"]))["pending"] == 0
    # Every change is in the event feed once.
    for kind, count in (("transfer.incremented", len(landed)), ("transfer.captured", 1)):
        page = (await api.get("/v1/events", params={"type": kind, "limit": 100})).json()
        mine = [e for e in page["data"] if e["data"]["object"]["id"] == hold["id"]]
        assert len(mine) == count, (kind, page)


async def test_a_tenant_cannot_make_reviews_common(
    shard_dsns: list[str],
    temporal_address: str,
    tenant_key: str,
    settlement_worker: Worker,
    cluster: ShardCluster,
    books: None,
) -> None:
    """With `LEDGERFLOW_REVIEWS_WAITING_MAX=8` on 4 shards, a tenant with `review_above: 1`
    gets 2 transfers of 2 waiting for review on a shard; the next ones, sent at once, are
    409 `review_queue_full` and hold nothing; a decided review frees its place; another
    tenant's reviews are not counted against it."""
    wiring = Wiring(
        shard_dsns=shard_dsns,
        temporal_address=temporal_address,
        task_queue=TASK_QUEUE,
        pool_size_max=4,
        reviews_waiting_max=8,
    )
    app = wiring.app()
    async with served(app, tenant_key) as api, served(app, await new_tenant_key(cluster)) as other:
        payer = await _funded(api, PAYER_SHARD, 1_000, limits={"review_above": 1})
        payee = await account_on(api, PAYER_SHARD)
        answers = await asyncio.gather(
            *(post_keyed(api, "/v1/transfers", transfer_body(payer, payee, 2)) for _ in range(12))
        )
        waiting = [r for r in answers if r.status_code == 202]
        full = [r for r in answers if r.status_code != 202]
        assert len(waiting) == 2, [r.text for r in answers]
        assert {(r.status_code, r.json()["error"]["code"]) for r in full} == {
            (409, "review_queue_full")
        }
        assert (await balance(api, payer["id"]))["held"] == 4, "a refused review held money"

        theirs = await _funded(other, PAYER_SHARD, 100, limits={"review_above": 1})
        their_payee = await account_on(other, PAYER_SHARD)
        held = await post_keyed(other, "/v1/transfers", transfer_body(theirs, their_payee, 2))
        assert held.status_code == 202, held.text

        rejected = await post_keyed(api, f"/v1/transfers/{waiting[0].json()['id']}/reject")
        assert rejected.status_code == 200, rejected.text
        again = await post_keyed(api, "/v1/transfers", transfer_body(payer, payee, 2))
        assert again.status_code == 202, again.text
        for response in (waiting[1], again):
            decided = await post_keyed(api, f"/v1/transfers/{response.json()['id']}/reject")
            assert decided.status_code == 200, decided.text
        decided = await post_keyed(other, f"/v1/transfers/{held.json()['id']}/reject")
        assert decided.status_code == 200, decided.text
        assert (await balance(api, payer["id"]))["available"] == 1_000


async def _age(cluster: ShardCluster, shard: int, transfer_id: str) -> None:
    """Move a transfer, and what the daily limits counted of it, two days back."""
    async with cluster.shards[shard].connection() as conn:
        await conn.execute(
            "update transfers set created_at = created_at - interval '2 days' where id = $1",
            transfer_id,
        )
        if await conn.fetchval("select to_regclass('outgoing') is not null"):
            await conn.execute(
                "update outgoing set created_at = created_at - interval '2 days'"
                " where transfer_id = $1",
                transfer_id,
            )


@pytest.mark.parametrize("across", [False, True], ids=["one-shard", "across-shards"])
async def test_a_daily_limit_counts_money_when_it_is_held_or_sent(
    api: httpx.AsyncClient, cluster: ShardCluster, books: None, across: bool
) -> None:
    """`daily_outgoing: 1000` and a hold of 900 placed two days ago: raising it by 900
    counts now (the window holds 900), a further 200 is 402 `daily_limit_exceeded`, the
    capture of what was held adds nothing, and 100 more can still be sent, 1 more not.
    (A hold older than a day could be raised any number of times: only transfers created
    within the window counted.) A void gives back what the window counted."""
    payer = await _funded(api, PAYER_SHARD, 10_000, limits={"daily_outgoing": 1_000})
    payee = await account_on(api, (PAYER_SHARD + 1) % 4 if across else PAYER_SHARD)
    hold = await _hold(api, payer, payee, 900)
    await _age(cluster, PAYER_SHARD, hold["id"])
    path = f"/v1/transfers/{hold['id']}"
    raised = await post_keyed(api, f"{path}/increment", {"amount": 900})
    assert raised.status_code == 200, raised.text
    refused = await post_keyed(api, f"{path}/increment", {"amount": 200})
    assert refused.status_code == 402, refused.text
    assert refused.json()["error"]["code"] == "daily_limit_exceeded"
    captured = await post_keyed(api, f"{path}/capture", {})
    assert captured.status_code == 200, captured.text
    assert captured.json()["captured_amount"] == 1_800
    sent = await post_keyed(api, "/v1/transfers", transfer_body(payer, payee, 100))
    assert sent.status_code in (201, 202), sent.text
    over = await post_keyed(api, "/v1/transfers", transfer_body(payer, payee, 1))
    assert over.status_code == 402, over.text
    assert over.json()["error"]["code"] == "daily_limit_exceeded"
    await settled(api)
    assert (await balance(api, payer["id"]))["posted"] == 10_000 - 1_900


async def test_a_void_gives_back_what_the_daily_limit_counted(
    api: httpx.AsyncClient, books: None
) -> None:
    """A hold of 800 leaves 200 of a daily limit of 1,000; voided, the 800 are back."""
    payer = await _funded(api, PAYER_SHARD, 10_000, limits={"daily_outgoing": 1_000})
    payee = await account_on(api, PAYER_SHARD)
    hold = await _hold(api, payer, payee, 800)
    over = await post_keyed(api, "/v1/transfers", transfer_body(payer, payee, 300))
    assert over.status_code == 402, over.text
    voided = await post_keyed(api, f"/v1/transfers/{hold['id']}/void")
    assert voided.status_code == 200, voided.text
    sent = await post_keyed(api, "/v1/transfers", transfer_body(payer, payee, 300))
    assert sent.status_code == 201, sent.text
    assert (await balance(api, payer["id"]))["posted"] == 9_700


async def test_a_follow_up_that_raises_holds_up_no_other(
    api: httpx.AsyncClient,
    cluster: ShardCluster,
    monkeypatch: pytest.MonkeyPatch,
    books: None,
) -> None:
    """A follow-up its destination cannot apply, raising rather than refusing (a void of
    more than is pending there trips the posting's own assertion), sits first in its
    source's line: the other follow-ups of the pass still apply, each on its own, and the
    one that raised stays open with what it raised. (It aborted the whole pass, so from
    then on no follow-up of that source shard applied, for any tenant.)"""
    from api import transfer_changes  # noqa: PLC0415 - patched for this test only

    async def left_to_the_timers(*_: object, **__: object) -> None:
        return None

    monkeypatch.setattr(transfer_changes, "apply_followups", left_to_the_timers)
    payee_shard = (PAYER_SHARD + 1) % 4
    payer = await _funded(api, PAYER_SHARD, 1_000)
    payee = await account_on(api, payee_shard)
    hold = await _hold(api, payer, payee, 100)
    tenant = await tenant_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    bogus = f"bogus:{ULID()}"
    async with cluster.shards[PAYER_SHARD].connection() as conn:
        await conn.execute(
            "insert into remote_postings (operation_key, transfer_id, tenant_id, movement,"
            " debit_account_id, credit_account_id, amount, currency, source_shard,"
            " destination_shard, created_at)"
            " values ($1, $2, $3, 'void_credit', $4, $5, 1000000, 'USD', $6, $7,"
            " clock_timestamp() - interval '1 minute')",
            bogus,
            f"tr_{ULID()}",
            tenant,
            payer["id"],
            payee["id"],
            PAYER_SHARD,
            payee_shard,
        )
    try:
        captured = await post_keyed(api, f"/v1/transfers/{hold['id']}/capture", {})
        assert captured.status_code == 200, captured.text
        await apply_followups(cluster, PAYER_SHARD)
        for _ in range(100):
            if (await balance(api, payee["id"]))["posted"] == 100:
                break
            await asyncio.sleep(0.1)
        assert await balance(api, payee["id"]) == {
            "posted": 100,
            "pending": 0,
            "held": 0,
            "available": 100,
        }
        open_ones = await find_open_followups(cluster, older_than_s=0)
        (stuck,) = [f for f in open_ones if f.operation_key == bogus]
        assert stuck.refused_at is not None
        assert "raised" in (stuck.refusal or ""), stuck
    finally:
        async with cluster.shards[PAYER_SHARD].connection() as conn:
            await conn.execute("delete from remote_postings where operation_key = $1", bogus)


@pytest.mark.parametrize("approve", [True, False], ids=["approve", "reject"])
@pytest.mark.parametrize("across", [False, True], ids=["one-shard", "across-shards"])
async def test_a_decision_retried_after_it_applied_is_answered_with_it(
    api: httpx.AsyncClient, cluster: ShardCluster, books: None, across: bool, approve: bool
) -> None:
    """A review decision applied, its API process died before storing the answer, and the
    retry under the same key finds the transfer decided: it is answered 200 with that
    decision (it was 409 `transfer_not_pending`, telling the client its decision had not
    applied). Another request, later, is still 409."""
    payer = await _funded(api, PAYER_SHARD, 10_000, limits={"review_above": 100})
    payee = await account_on(api, (PAYER_SHARD + 1) % 4 if across else PAYER_SHARD)
    waiting = await post_keyed(api, "/v1/transfers", transfer_body(payer, payee, 500))
    assert waiting.status_code == 202, waiting.text
    path = f"/v1/transfers/{waiting.json()['id']}/{'approve' if approve else 'reject'}"
    key = f"decide-{ULID()}"
    first = await post_keyed(api, path, key=key)
    assert first.status_code == 200, first.text
    await settled(api)
    await _crash_before_the_answer(cluster, api, key)
    retried = await post_keyed(api, path, key=key)
    assert retried.status_code == 200, retried.text
    assert retried.json()["id"] == first.json()["id"]
    assert retried.json()["status"] in (("posted", "processing") if approve else ("failed",))
    later = await post_keyed(api, path)
    assert later.status_code == 409, later.text
    assert later.json()["error"]["code"] == "transfer_not_pending"
    await settled(api)
    assert (await balance(api, payer["id"]))["posted"] == (9_500 if approve else 10_000)


@pytest.mark.parametrize("across", [False, True], ids=["one-shard", "across-shards"])
async def test_a_delayed_credit_is_refused_in_the_fixed_order(
    api: httpx.AsyncClient, books: None, across: bool
) -> None:
    """A delayed credit from an account without the funds to a closed account is 409
    `account_closed` (state before funds), on one shard as across two. (On one shard the
    payer's debit was checked, and refused 402, before the payee's credit; found by the
    state machine.)"""
    payer = await account_on(api, PAYER_SHARD)
    payee = await account_on(api, (PAYER_SHARD + 1) % 4 if across else PAYER_SHARD)
    closed = await post_keyed(api, f"/v1/accounts/{payee['id']}/close")
    assert closed.status_code == 200, closed.text
    when = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    refused = await post_keyed(
        api, "/v1/transfers", transfer_body(payer, payee, 10, available_on=when)
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "account_closed"


def _index_conditions(plan: dict) -> list[str]:
    """Every index condition of a JSON plan, and the filters next to them."""
    found = [f"cond:{plan['Index Cond']}"] if "Index Cond" in plan else []
    found += [f"filter:{plan['Filter']}"] if "Filter" in plan else []
    for child in plan.get("Plans", []):
        found += _index_conditions(child)
    return found


async def test_the_limits_queries_are_bounded_by_an_index_range(cluster: ShardCluster) -> None:
    """The daily limit's window and the count of a tenant's reviews waiting read an index
    range, their bound a parameter (a volatile function as the bound is a filter over the
    account's whole history): `EXPLAIN` shows the time and the status as index
    conditions."""
    from shards import posting  # noqa: PLC0415 - its statements, as the posting path runs them

    async with cluster.shards[0].connection() as conn, conn.transaction():
        await conn.execute("set local enable_seqscan = off")
        window = await conn.fetchval(
            f"explain (format json) {posting._OUTGOING_24H}",
            ["acct_x"],
            datetime.now(UTC) - timedelta(days=1),
        )
        reviews = await conn.fetchval(
            f"explain (format json) {posting._REVIEWS_WAITING}",
            ["tenant_x"],
            10,
        )
    window_conditions = _index_conditions(json.loads(window)[0]["Plan"])
    assert any("created_at >" in c and c.startswith("cond:") for c in window_conditions), (
        window_conditions
    )
    assert not any("clock_timestamp" in c for c in window_conditions), window_conditions
    review_conditions = _index_conditions(json.loads(reviews)[0]["Plan"])
    assert any("tenant_id" in c and c.startswith("cond:") for c in review_conditions), (
        review_conditions
    )


async def test_available_on_is_an_rfc3339_string(api: httpx.AsyncClient, books: None) -> None:
    """`"available_on": 123` is 400 naming `available_on` (it was taken for a moment in
    1970), and in a batch it refuses the whole batch naming the item (schemathesis found it
    as a schema-violating request accepted, on the seeds that reach it)."""
    payer = await _funded(api, PAYER_SHARD, 1_000)
    payee = await account_on(api, PAYER_SHARD)
    for value in (0, 123, True):
        body = transfer_body(payer, payee, 10, available_on=value)
        single = await post_keyed(api, "/v1/transfers", body)
        assert single.status_code == 400, single.text
        assert single.json()["error"]["param"] == "available_on", single.text
        batch = await post_keyed(api, "/v1/transfers/batch", {"transfers": [body]})
        assert batch.status_code == 400, batch.text
        assert batch.json()["error"]["param"] == "transfers[0].available_on", batch.text
    assert (await balance(api, payer["id"]))["posted"] == 1_000


async def test_the_funds_timers_read_an_index_range_of_what_is_due(
    cluster: ShardCluster,
) -> None:
    """The due holds, the due delayed credits and the raises left open are found by an
    index range on their time, bounded by the shard's clock as a parameter, not filtered
    from every pending hold or waiting credit (a volatile function as the bound cannot
    bound an index scan)."""
    from shards import availability, holds, raises  # noqa: PLC0415 - their statements, as the timers run them

    async with cluster.shards[0].connection() as conn, conn.transaction():
        await conn.execute("set local enable_seqscan = off")
        now = datetime.now(UTC)
        plans = {
            "expires_at": await conn.fetchval(
                f"explain (format json) {holds._DUE}",
                10,
                now,
            ),
            "available_on": await conn.fetchval(
                f"explain (format json) {availability._DUE}",
                10,
                now,
            ),
            "created_at": await conn.fetchval(
                f"explain (format json) {raises._OPEN}",
                now,
                10,
            ),
        }
    for column, plan in plans.items():
        conditions = _index_conditions(json.loads(plan)[0]["Plan"])
        assert any(column in c and c.startswith("cond:") for c in conditions), conditions
        assert not any("clock_timestamp" in c for c in conditions), conditions


@pytest.mark.parametrize("across", [False, True], ids=["one-shard", "across-shards"])
async def test_an_increment_past_the_bigint_range_of_what_a_hold_debits_is_400(
    api: httpx.AsyncClient, across: bool
) -> None:
    """A hold of nearly the whole bigint range, captured in part (so the accounts show
    little), then raised so that what it debits in all passes the range: 400
    `amount_overflow`, every time, and nothing moves. (The transfer row's `amount` left
    its bigint column: 503 on every retry.)"""
    big = BIGINT_MAX - 2_000
    funding = await account_on(api, PAYER_SHARD, allow_overdraft=True)
    payer = await account_on(api, PAYER_SHARD)
    payee = await account_on(api, (PAYER_SHARD + 1) % 4 if across else PAYER_SHARD)
    assert (
        await post_keyed(api, "/v1/transfers", transfer_body(funding, payer, big))
    ).status_code == 201
    hold = await _hold(api, payer, payee, big)
    path = f"/v1/transfers/{hold['id']}"
    captured = await post_keyed(api, f"{path}/capture", {"amount": big - 10, "final": False})
    assert captured.status_code == 200, captured.text
    await settled(api)
    # The payee sends what it was paid back, and the payer gets a little more: both now
    # show little, while the hold has debited nearly the whole range.
    back = await post_keyed(api, "/v1/transfers", transfer_body(payee, funding, big - 10))
    assert back.status_code in (201, 202), back.text
    assert (
        await post_keyed(api, "/v1/transfers", transfer_body(funding, payer, 5_000))
    ).status_code == 201
    await settled(api)
    before = (await balance(api, payer["id"]), await balance(api, payee["id"]))
    key = f"test-{ULID()}"
    for _ in range(2):
        raised = await post_keyed(api, f"{path}/increment", {"amount": 2_500}, key=key)
        assert raised.status_code == 400, raised.text
        assert raised.json()["error"]["code"] == "amount_overflow", raised.text
    assert (await api.get(path)).json()["amount"] == big
    await settled(api)
    assert (await balance(api, payer["id"]), await balance(api, payee["id"])) == before
    fits = await post_keyed(api, f"{path}/increment", {"amount": 2_000})
    assert fits.status_code == 200, fits.text
    assert fits.json()["amount"] == BIGINT_MAX
    assert (await post_keyed(api, f"{path}/void")).status_code == 200


async def test_the_expiry_is_a_change_of_the_posting_path(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """The funds timers expire a hold through the posting batch, under the key
    `expire:<id>`, checked under the row's lock: a hold not due yet is refused and left as
    it is, a due one is released once (one `transfer.expired` event), one captured first is
    left posted, and a second pass finds nothing."""
    payer = await _funded(api, PAYER_SHARD, 10_000)
    payee = await account_on(api, PAYER_SHARD)
    due, early, captured = [await _hold(api, payer, payee, 1_000) for _ in range(3)]
    shard = cluster.shards[PAYER_SHARD]
    refused = await post_batch_on(
        shard,
        [
            HoldChangeRequest(
                operation_key=f"test-expire:{early['id']}",
                transfer_id=early["id"],
                tenant_id=None,
                action=HoldAction.EXPIRE,
            )
        ],
    )
    assert [str(r.error.code) for r in refused if r.error] == ["invalid_request"]
    captured_now = await post_keyed(api, f"/v1/transfers/{captured['id']}/capture", {})
    assert captured_now.status_code == 200, captured_now.text
    async with shard.connection() as conn:
        await conn.execute(
            "update transfers set expires_at = clock_timestamp() - interval '1 second'"
            " where id = any($1::text[])",
            [due["id"], captured["id"]],
        )
    first = await expire_due_holds(shard, limit=100)
    assert first.expired >= 1
    again = await expire_due_holds(shard, limit=100)
    assert again.expired == 0
    statuses = [
        (await api.get(f"/v1/transfers/{h['id']}")).json()["status"] for h in (due, early, captured)
    ]
    assert statuses == ["expired", "pending", "posted"]
    async with shard.connection() as conn:
        result = await conn.fetchval(
            "select result from operations where key = $1", f"expire:{due['id']}"
        )
    assert result == {"ok": True}
    events = (await api.get("/v1/events", params={"type": "transfer.expired"})).json()["data"]
    assert [e["data"]["object"]["id"] for e in events] == [due["id"]]
    assert await balance(api, payer["id"]) == {
        "posted": 9_000,
        "pending": 0,
        "held": 1_000,
        "available": 8_000,
    }
    assert (await post_keyed(api, f"/v1/transfers/{early['id']}/void")).status_code == 200
