"""A tenant cannot reach the system's accounts, nor spend a total the system shares.

Clearing accounts carry every tenant's cross-shard money. Their ids are guessable
(`acct_clearing_<shard>_<currency>`), so every route must treat them as it treats another
tenant's accounts: they do not exist. And since every tenant's transfers pass through them,
no amount one tenant moves may use up what the others need.
"""

import asyncio

import httpx
import pytest
from ulid import ULID

from ledger.errors import ErrorCode, LedgerError
from ledger.ids import clearing_account_id, slot_of
from ledger.limits import BIGINT_MAX
from ledger.posting import Movement
from shards.api_keys import create_api_key
from shards.cluster import ShardCluster, new_transfer_id
from shards.posting import post_batch
from shards.posting_types import PostingRequest
from tests.conftest import other_tenant
from tests.integration.cross_shard import SHARD_COUNT, account_on, settled, tenant_of
from tests.integration.helpers import balance, run_ledgerflow, transfer

CURRENCIES = ("USD", "JPY")


async def _touch_every_clearing_account(api: httpx.AsyncClient) -> dict[tuple[int, str], dict]:
    """Run one cross-shard transfer out of and into every shard in every currency, so every
    clearing account the tests name exists and holds entries; returns the tenant's own
    account on each (shard, currency)."""
    own: dict[tuple[int, str], dict] = {}
    funding: dict[tuple[int, str], dict] = {}
    for currency in CURRENCIES:
        for shard in range(SHARD_COUNT):
            own[shard, currency] = await account_on(api, shard, currency=currency)
            funding[shard, currency] = await account_on(
                api, shard, currency=currency, allow_overdraft=True
            )
    answers = await asyncio.gather(
        *(
            transfer(
                api,
                funding[shard, currency]["id"],
                own[(shard + 1) % SHARD_COUNT, currency]["id"],
                100,
                currency=currency,
            )
            for currency in CURRENCIES
            for shard in range(SHARD_COUNT)
        )
    )
    assert all(a.status_code in (201, 202) for a in answers), [a.text for a in answers]
    await settled(api)
    return own


def _is_not_found(response: httpx.Response, param: str | None = None) -> None:
    assert response.status_code == 404, response.text
    error = response.json()["error"]
    assert error["code"] == "account_not_found"
    if param is not None:
        assert error["param"] == param


async def test_no_route_reaches_a_clearing_account(
    api: httpx.AsyncClient, cluster: ShardCluster, books: None
) -> None:
    """Every clearing id, on every shard and in every currency, is 404 `account_not_found`
    in every field of every request, exactly like another tenant's id, and nothing moves:
    the attack of crediting oneself from `acct_clearing_1_USD` creates no money."""
    own = await _touch_every_clearing_account(api)
    before = {k: await balance(api, a["id"]) for k, a in own.items()}
    for (shard, currency), mine in own.items():
        clearing = clearing_account_id(shard, currency)
        async with cluster.shards[shard].pool.acquire() as conn:
            exists = await conn.fetchval("select count(*) from accounts where id = $1", clearing)
        assert exists == 1, f"{clearing} should exist for the attack to be meaningful"
        body = {"amount": 1_000_000, "currency": currency}
        stolen = await api.post(
            "/v1/transfers",
            json={**body, "debit_account_id": clearing, "credit_account_id": mine["id"]},
            headers={"Idempotency-Key": f"steal-{ULID()}"},
        )
        _is_not_found(stolen, "debit_account_id")
        dumped = await api.post(
            "/v1/transfers",
            json={**body, "debit_account_id": mine["id"], "credit_account_id": clearing},
            headers={"Idempotency-Key": f"dump-{ULID()}"},
        )
        _is_not_found(dumped, "credit_account_id")
        _is_not_found(await api.get(f"/v1/accounts/{clearing}"))
        _is_not_found(await api.get(f"/v1/accounts/{clearing}/entries"))
        for action in ("freeze", "unfreeze", "close"):
            _is_not_found(
                await api.post(
                    f"/v1/accounts/{clearing}/{action}",
                    headers={"Idempotency-Key": f"{action}-{ULID()}"},
                )
            )
    listed = (await api.get("/v1/accounts", params={"limit": 100})).json()["data"]
    assert not any(a["id"].startswith("acct_clearing_") for a in listed)
    after = {k: await balance(api, a["id"]) for k, a in own.items()}
    assert after == before


async def test_the_posting_code_refuses_a_clearing_id_from_request_fields(
    api: httpx.AsyncClient, cluster: ShardCluster, books: None
) -> None:
    """Under the API too: a posting whose request fields name a clearing account finds no
    such account, whatever the movement; only the position the movement gives the clearing
    account sees it."""
    await _touch_every_clearing_account(api)
    tenant = await tenant_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    for shard in range(SHARD_COUNT):
        mine = await account_on(api, shard)
        clearing = clearing_account_id(shard, "USD")
        requests = [
            PostingRequest(
                operation_key=f"attack:{ULID()}",
                transfer_id=new_transfer_id(slot_of(mine["id"])),
                tenant_id=tenant,
                movement=movement,
                debit_account_id=debit,
                credit_account_id=credit,
                amount=1_000_000,
                currency="USD",
                source_shard=shard,
                destination_shard=(shard + 1) % SHARD_COUNT,
            )
            for movement, debit, credit in (
                (Movement.TRANSFER, clearing, mine["id"]),
                (Movement.TRANSFER, mine["id"], clearing),
                (Movement.RESERVE_FUNDS, clearing, mine["id"]),
                (Movement.CREDIT_FUNDS, mine["id"], clearing),
            )
        ]
        async with cluster.shards[shard].pool.acquire() as conn:
            results = await post_batch(conn, shard=shard, requests=requests)
        assert [r.error.code if r.error else None for r in results] == [
            ErrorCode.ACCOUNT_NOT_FOUND
        ] * len(requests)
        assert (await balance(api, mine["id"]))["posted"] == 0


async def test_reserved_tenant_names_get_no_key(
    cluster: ShardCluster, shard_dsns: list[str]
) -> None:
    """No API key is issued for the system tenant or any name reserved like it, from the
    command line or underneath it."""
    for name in ("__system__", "__anything"):
        code, _, err = await run_ledgerflow(shard_dsns, "keys", "create", "--tenant", name)
        assert code != 0
        assert "reserved" in err
        async with cluster.shards[0].pool.acquire() as conn:
            with pytest.raises(LedgerError) as refused:
                await create_api_key(conn, tenant_id=name)
            stored = await conn.fetchval("select count(*) from api_keys where tenant_id = $1", name)
        assert refused.value.code is ErrorCode.INVALID_REQUEST
        assert stored == 0


async def test_no_tenant_can_fill_a_clearing_account(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster, books: None
) -> None:
    """A tenant with self-granted overdrafts moves 2^63 - 1 across shards three times over
    (two of them at once, so a saga may carry more than the Int64 search attribute holds).
    The clearing accounts of both shards then hold far more than a bigint, and another
    tenant's transfers into and out of those shards still settle."""
    source, destination = 0, 1
    whales = [
        (
            await account_on(api, source, allow_overdraft=True),
            await account_on(api, destination),
        )
        for _ in range(3)
    ]
    answers = await asyncio.gather(
        *(transfer(api, debit["id"], credit["id"], BIGINT_MAX) for debit, credit in whales)
    )
    assert all(a.status_code in (201, 202) for a in answers), [a.text for a in answers]
    await settled(api)
    for _, credit in whales:
        assert (await balance(api, credit["id"]))["posted"] == BIGINT_MAX
    async with cluster.shards[source].pool.acquire() as conn:
        through = await conn.fetchval(
            "select credits_posted from accounts where id = $1",
            clearing_account_id(source, "USD"),
        )
    assert through >= 3 * BIGINT_MAX

    async with other_tenant(api_url, cluster) as other:
        funding = await account_on(other, source, allow_overdraft=True)
        payer = await account_on(other, source)
        payee = await account_on(other, destination)
        assert (await transfer(other, funding["id"], payer["id"], 1_000)).status_code == 201
        sent = await transfer(other, payer["id"], payee["id"], 400)
        returned = await transfer(other, payee["id"], payer["id"], 150)
        assert sent.status_code in (201, 202), sent.text
        assert returned.status_code in (201, 202), returned.text
        await settled(other)
        assert (await balance(other, payer["id"]))["posted"] == 750
        assert (await balance(other, payee["id"]))["posted"] == 250
