"""Idempotency that cannot lie: what a retried request answers is what happened, once.

Each test breaks one promise the way a real fault would (a record that expired, an API
process that died between the write and the answer, a commit whose answer was lost) and
checks the answer and the money afterwards.
"""

import asyncio

import asyncpg
import httpx
import pytest
from ulid import ULID

from ledger.errors import ErrorCode, LedgerError
from ledger.ids import slot_of
from ledger.posting import Movement
from shards.batching import ShardBatcher
from shards.cluster import ShardCluster, new_transfer_id
from shards.posting import post_batch, recover_batch
from shards.posting_types import PostingRequest, PostingResult
from tests.integration.cross_shard import api_key_id_of, tenant_of
from tests.integration.helpers import balance, create_account, transfer

pytestmark = pytest.mark.usefixtures("books")


async def _same_shard_pair(api: httpx.AsyncClient) -> tuple[dict, dict]:
    funding = await create_account(api, allow_overdraft=True)
    for _ in range(100):
        target = await create_account(api)
        if target["shard"] == funding["shard"]:
            return funding, target
    raise AssertionError("no two accounts on one shard")


async def _record_shard(cluster: ShardCluster, api: httpx.AsyncClient, key: str) -> int:
    """The shard that keeps the idempotency record of `key` for this client's API key."""
    owner = await api_key_id_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    return cluster.shard_of(f"{owner}:{key}").index


async def _age_record(
    cluster: ShardCluster, api: httpx.AsyncClient, key: str, statement: str
) -> None:
    """Change this client's idempotency record of `key` with `statement` (`$1` the API key
    id, `$2` the key), as time or a crash would have left it."""
    owner = await api_key_id_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    async with cluster.shards[await _record_shard(cluster, api, key)].connection() as conn:
        changed = await conn.execute(statement, owner, key)
    assert changed.endswith(" 1"), changed


async def test_a_key_reused_after_its_record_expired_moves_money_anew(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """Once a key's record has expired (24 h), the same key with other parameters is a new
    request: a new transfer of the new amount, not a replay of the old transfer. The same
    parameters again still find the first transfer: money never moves twice for them."""
    funding, target = await _same_shard_pair(api)
    key = f"reused-{ULID()}"
    first = await transfer(api, funding["id"], target["id"], 100, key=key)
    assert first.status_code == 201, first.text
    expire = (
        "update idempotency_keys set created_at = now() - interval '25 hours'"
        " where api_key_id = $1 and key = $2"
    )
    await _age_record(cluster, api, key, expire)
    second = await transfer(api, funding["id"], target["id"], 250, key=key)
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first.json()["id"]
    assert second.json()["amount"] == 250
    await _age_record(cluster, api, key, expire)
    again = await transfer(api, funding["id"], target["id"], 250, key=key)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == second.json()["id"]
    assert (await balance(api, target["id"]))["posted"] == 350


async def test_a_request_begun_before_operation_keys_were_stored_keeps_its_key(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """A record claimed before records stored their operation key (none stored) and left
    in flight by a crash is retried under the operation key it began with, so the retry
    finds the transfer the first attempt wrote instead of moving the money again."""
    funding, target = await _same_shard_pair(api)
    key = f"legacy-{ULID()}"
    first = await transfer(api, funding["id"], target["id"], 70, key=key)
    assert first.status_code == 201, first.text
    owner = await api_key_id_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    async with cluster.shards[funding["shard"]].connection() as conn:
        renamed = await conn.execute(
            "update operations set key = $1 where transfer_id = $2",
            f"idem:{owner}:{key}",
            first.json()["id"],
        )
    assert renamed == "UPDATE 1"
    await _age_record(
        cluster,
        api,
        key,
        "update idempotency_keys set operation_key = null, state = 'in_flight',"
        " locked_at = '-infinity', response_status = null, response_body = null"
        " where api_key_id = $1 and key = $2",
    )
    retried = await transfer(api, funding["id"], target["id"], 70, key=key)
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == first.json()["id"]
    assert (await balance(api, target["id"]))["posted"] == 70


async def test_account_creation_is_exactly_once_across_a_crash(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """An API process that opened the account and died before recording its answer leaves
    the key in flight; the retry with the same key opens no second account."""
    key = f"open-{ULID()}"
    body = {"currency": "EUR", "metadata": {"ref": key}}
    first = await api.post("/v1/accounts", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.text
    await _age_record(
        cluster,
        api,
        key,
        "update idempotency_keys set state = 'in_flight', locked_at = '-infinity',"
        " response_status = null, response_body = null where api_key_id = $1 and key = $2",
    )
    retried = await api.post("/v1/accounts", json=body, headers={"Idempotency-Key": key})
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == first.json()["id"]
    listed = (await api.get("/v1/accounts", params={"limit": 100})).json()["data"]
    assert [a["id"] for a in listed if a["metadata"].get("ref") == key] == [first.json()["id"]]


def _requests(tenant: str, debit: dict, credit: dict, count: int) -> list[PostingRequest]:
    return [
        PostingRequest(
            operation_key=f"test:{ULID()}",
            transfer_id=new_transfer_id(slot_of(debit["id"])),
            tenant_id=tenant,
            movement=Movement.TRANSFER,
            debit_account_id=debit["id"],
            credit_account_id=credit["id"],
            amount=10,
            currency="USD",
            source_shard=debit["shard"],
            destination_shard=credit["shard"],
        )
        for _ in range(count)
    ]


async def test_recovery_tells_a_committed_batch_from_one_that_wrote_nothing(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """After a batch's answer is lost, the operation keys tell: a committed batch gives its
    results back; one that never committed is reported as such and the probe leaves no
    trace; and a batch still committing is waited for, never guessed."""
    funding, target = await _same_shard_pair(api)
    tenant = await tenant_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    shard = cluster.shards[funding["shard"]]
    committed = _requests(tenant, funding, target, 3)
    async with shard.connection() as conn:
        posted = await post_batch(conn, shard=shard.index, requests=committed)
        recovered = await recover_batch(conn, shard.index, committed)
    assert recovered is not None
    assert [r.transfer_id for r in recovered] == [r.transfer_id for r in posted]
    assert all(r.ok and r.replayed for r in recovered)

    never = _requests(tenant, funding, target, 2)
    async with shard.connection() as conn:
        assert await recover_batch(conn, shard.index, never) is None
        left = await conn.fetchval(
            "select count(*) from operations where key = any($1::text[])",
            [r.operation_key for r in never],
        )
    assert left == 0

    in_commit = _requests(tenant, funding, target, 2)
    async with shard.connection() as writer, shard.connection() as prober:
        open_transaction = writer.transaction()
        await open_transaction.start()
        await post_batch(writer, shard=shard.index, requests=in_commit)
        probe = asyncio.create_task(recover_batch(prober, shard.index, in_commit))
        await asyncio.sleep(0.3)
        assert not probe.done(), "the probe must wait for the open transaction"
        await open_transaction.commit()
        found = await asyncio.wait_for(probe, timeout=10)
    assert found is not None
    assert [r.transfer_id for r in found] == [r.transfer_id for r in in_commit]
    assert (await balance(api, target["id"]))["posted"] == 50


async def test_a_lost_answer_to_a_commit_is_not_answered_retry(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """A batch that commits and then loses its connection answers its callers with what it
    wrote (transfer ids that exist), not `shard_unavailable`; a batch that fails before it
    writes answers `shard_unavailable`, and a retry of it then posts once."""
    funding, target = await _same_shard_pair(api)
    tenant = await tenant_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    shard = funding["shard"]

    async def commit_then_lose(
        conn: asyncpg.Connection, index: int, items: list[PostingRequest]
    ) -> list[PostingResult]:
        await post_batch(conn, shard=index, requests=items)
        raise ConnectionResetError("connection lost after COMMIT")

    async def lose_before_writing(
        conn: asyncpg.Connection, index: int, items: list[PostingRequest]
    ) -> list[PostingResult]:
        raise ConnectionResetError("connection lost before the batch")

    lossy = ShardBatcher(
        cluster, commit_then_lose, recover=recover_batch, what="posting", batch_size_max=16
    )
    requests = _requests(tenant, funding, target, 4)
    results = await asyncio.gather(*(lossy.submit(shard, r) for r in requests))
    assert [r.transfer_id for r in results] == [r.transfer_id for r in requests]
    for result in results:
        fetched = await api.get(f"/v1/transfers/{result.transfer_id}")
        assert fetched.status_code == 200, fetched.text

    failing = ShardBatcher(
        cluster, lose_before_writing, recover=recover_batch, what="posting", batch_size_max=16
    )
    (lost,) = _requests(tenant, funding, target, 1)
    with pytest.raises(LedgerError) as refused:
        await failing.submit(shard, lost)
    assert refused.value.code is ErrorCode.SHARD_UNAVAILABLE
    assert "connection lost" not in refused.value.message
    async with cluster.shards[shard].connection() as conn:
        (retried,) = await post_batch(conn, shard=shard, requests=[lost])
        (again,) = await post_batch(conn, shard=shard, requests=[lost])
    assert retried.ok
    assert not retried.replayed
    assert again.replayed
    assert (await balance(api, target["id"]))["posted"] == 50


async def test_a_batch_the_shard_never_answered_is_not_probed_on_it_again(
    api: httpx.AsyncClient, cluster: ShardCluster
) -> None:
    """A batch that timed out (a hung shard) answers its callers at once that its outcome is
    unknown, with a retry under the same key as the remedy, instead of sending a recovery
    probe to the shard that just did not answer; a retry then posts once."""
    funding, target = await _same_shard_pair(api)
    tenant = await tenant_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    shard = funding["shard"]
    probes: list[int] = []

    async def hang(
        conn: asyncpg.Connection, index: int, items: list[PostingRequest]
    ) -> list[PostingResult]:
        raise TimeoutError

    async def probe(
        conn: asyncpg.Connection, index: int, items: list[PostingRequest]
    ) -> list[PostingResult] | None:
        probes.append(index)
        return await recover_batch(conn, index, items)

    hung = ShardBatcher(cluster, hang, recover=probe, what="posting", batch_size_max=16)
    (request,) = _requests(tenant, funding, target, 1)
    with pytest.raises(LedgerError) as refused:
        await hung.submit(shard, request)
    assert refused.value.code is ErrorCode.SHARD_UNAVAILABLE
    assert refused.value.param == "Idempotency-Key"
    assert probes == []
    async with cluster.shards[shard].connection() as conn:
        (retried,) = await post_batch(conn, shard=shard, requests=[request])
    assert retried.ok
    assert not retried.replayed
    assert (await balance(api, target["id"]))["posted"] == 10


async def test_a_refused_retry_never_names_a_transfer(api: httpx.AsyncClient) -> None:
    """A refused request and its retries answer the refusal; no transfer id appears that
    was never written."""
    poor = await create_account(api)
    rich = await create_account(api)
    key = f"refused-{ULID()}"
    answers = [await transfer(api, poor["id"], rich["id"], 5, key=key) for _ in range(3)]
    assert [a.status_code for a in answers] == [402, 402, 402]
    assert all("tr_" not in a.text for a in answers)
    listed = (await api.get("/v1/transfers")).json()["data"]
    assert listed == []
