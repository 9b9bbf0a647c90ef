"""`ledgerflow verify` proves the books, and names the account when they do not balance."""

import json

import httpx
import pytest

from ledger.accounts import NormalBalance
from ledger.posting import Movement
from shards.accounts import insert_account, new_account_id
from shards.cluster import ShardCluster
from shards.posting import post_batch
from shards.posting_types import PostingRequest
from shards.reconcile import reconcile
from tests.integration.helpers import create_account, run_ledgerflow, transfer

pytestmark = pytest.mark.usefixtures("books")


async def _verify(dsns: list[str]) -> tuple[int, str]:
    code, out, err = await run_ledgerflow(dsns, "verify")
    return code, out + err


async def test_verify_passes_and_catches_a_tampered_account(
    api: httpx.AsyncClient, cluster: ShardCluster, shard_dsns: list[str]
) -> None:
    """verify exits 0 on balanced books, and 1 naming the account whose totals were
    changed behind the ledger's back; entries themselves cannot be changed at all."""
    funding = await create_account(api, allow_overdraft=True)
    target = None
    while target is None or target["shard"] != funding["shard"]:
        target = await create_account(api)
    assert (await transfer(api, funding["id"], target["id"], 700)).status_code == 201

    code, output = await _verify(shard_dsns)
    assert code == 0, output
    assert "the books balance" in output
    code, out, err = await run_ledgerflow(shard_dsns, "verify", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    assert report["problems"] == []
    assert report["shards"] == 4
    assert report["accounts_checked"] >= 2
    assert report["entries_checked"] >= 2

    pool = cluster.shards[target["shard"]].pool
    async with pool.acquire() as conn:
        await conn.execute(
            "update accounts set credits_posted = credits_posted + 1 where id = $1", target["id"]
        )
    try:
        code, output = await _verify(shard_dsns)
        assert code == 1, output
        assert target["id"] in output
        assert "credits_posted" in output
        code, out, _ = await run_ledgerflow(shard_dsns, "verify", "--json")
        assert code == 1
        report = json.loads(out)  # stdout is the JSON alone; the one-line error is on stderr
        assert report["ok"] is False
        assert any(target["id"] in problem for problem in report["problems"])
    finally:
        async with pool.acquire() as conn:
            await conn.execute(
                "update accounts set credits_posted = credits_posted - 1 where id = $1",
                target["id"],
            )
    async with pool.acquire() as conn:
        with pytest.raises(Exception, match="immutable"):
            await conn.execute("update entries set amount = 1 where account_id = $1", target["id"])


async def test_verify_and_stuck_with_a_shard_unreachable_report_the_others(
    shard_dsns: list[str],
) -> None:
    """With a shard that does not answer, `verify` checks the others, names the shard it
    could not reach and exits 3 (incomplete), without a traceback; `transfers stuck` lists
    what the others hold and exits 3 too, its JSON naming the shard. (Both failed with one
    line and exit 2, reporting nothing, on the day an operator needs them most.)"""
    down = len(shard_dsns) - 1
    dsns = [*shard_dsns[:-1], "postgresql://postgres@127.0.0.1:1/ledgerflow"]
    code, output = await _verify(dsns)
    assert code == 3, output
    assert f"shard {down} did not answer" in output
    assert f"on {down} of {len(shard_dsns)} shards" in output
    assert "incomplete" in output
    assert "Traceback" not in output
    code, out, err = await run_ledgerflow(dsns, "verify", "--json")
    assert code == 3, out + err
    document = json.loads(out)
    assert (document["ok"], document["complete"], document["unreachable"]) == (True, False, [down])
    assert document["problems"] == []
    code, out, err = await run_ledgerflow(dsns, "transfers", "stuck", "--json")
    assert code == 3, out + err
    assert json.loads(out)["unreachable"] == [down]
    code, out, err = await run_ledgerflow(dsns, "transfers", "stuck")
    assert code == 3, out + err
    assert f"shard {down} did not answer" in err
    assert "Traceback" not in out + err


async def _account_on(cluster: ShardCluster, shard: int, *, overdraft: bool = False) -> str:
    """A fresh USD account that hashes to `shard`."""
    while True:
        account_id = new_account_id()
        if cluster.shard_of(account_id).index == shard:
            break
    async with cluster.shards[shard].pool.acquire() as conn:
        await insert_account(
            conn,
            shard=shard,
            account_id=account_id,
            tenant_id="t_verify",
            currency="USD",
            normal_balance=NormalBalance.CREDIT,
            allow_overdraft=overdraft,
            metadata={},
        )
    return account_id


async def _post(cluster: ShardCluster, shard: int, movement: Movement, **fields: object) -> None:
    transfer_id = str(fields.pop("transfer_id"))
    request = PostingRequest(
        operation_key=f"{transfer_id}:{movement}",
        transfer_id=transfer_id,
        tenant_id="t_verify",
        movement=movement,
        currency="USD",
        **fields,  # type: ignore[arg-type]
    )
    async with cluster.shards[shard].pool.acquire() as conn:
        (result,) = await post_batch(conn, shard=shard, requests=[request])
    assert result.ok, result.error


async def test_verify_catches_cross_shard_money_that_no_saga_explains(
    scratch_cluster: ShardCluster,
) -> None:
    """Each shard can balance on its own while money is created across shards. A credit
    with no reserve behind it, and a post whose credit never happened, are both caught by
    the cross-shard check (on databases of their own: entries cannot be deleted)."""
    cluster = scratch_cluster
    payer = await _account_on(cluster, 0, overdraft=True)
    payee = await _account_on(cluster, 1)
    report = await reconcile(cluster)
    assert report.ok, report.problems

    # A credit on shard 1 that no reserve on shard 0 pays for.
    await _post(
        cluster,
        1,
        Movement.CREDIT_FUNDS,
        transfer_id="tr_forged_credit",
        debit_account_id=payer,
        credit_account_id=payee,
        amount=500,
        source_shard=0,
        destination_shard=1,
    )
    # A reserve on shard 0 posted without its credit on shard 1.
    common = {
        "transfer_id": "tr_forged_post",
        "debit_account_id": payer,
        "credit_account_id": payee,
        "amount": 300,
        "source_shard": 0,
        "destination_shard": 1,
    }
    await _post(cluster, 0, Movement.RESERVE_FUNDS, **common)
    await _post(cluster, 0, Movement.POST_HOLD, **common)

    report = await reconcile(cluster)
    assert not [p for p in report.problems if p.startswith("shard ")], report.problems
    assert any("tr_forged_credit" in p and "reserve is missing" in p for p in report.problems)
    assert any("tr_forged_post" in p and "credited nothing" in p for p in report.problems)
