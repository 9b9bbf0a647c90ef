"""Helpers for the cross-shard tests: accounts on two shards, waiting for sagas, counting them."""

import asyncio
from dataclasses import dataclass

import httpx
from temporalio.client import Client

from ledger.shardmap import even_shard_map
from tests.integration.helpers import accounts_by_shard, create_account, transfer

SHARD_COUNT = 4
_SHARD_MAP = even_shard_map(SHARD_COUNT)


def shard_of(account_id: str) -> int:
    """The shard an account id maps to (the session's shards use the even map)."""
    return _SHARD_MAP.shard_for(account_id)


@dataclass(frozen=True)
class CrossPair:
    """A funding account and a customer account on one shard, a target on another."""

    funding: dict
    source: dict
    target: dict


async def account_on(api: httpx.AsyncClient, shard: int, **kwargs: object) -> dict:
    """Open accounts until one lands on `shard`; return it."""
    for _ in range(200):
        account = await create_account(api, **kwargs)  # type: ignore[arg-type]
        if account["shard"] == shard:
            return account
    raise AssertionError(f"no account landed on shard {shard}")


async def open_cross_pair(
    api: httpx.AsyncClient, *, source_shard: int | None = None, target_shard: int | None = None
) -> CrossPair:
    """Accounts for a cross-shard transfer (on the given shards, or any two)."""
    if source_shard is None or target_shard is None:
        by_shard = await accounts_by_shard(api, per_shard=1)
        source, target = by_shard[0][0], by_shard[1][0]
    else:
        source = await account_on(api, source_shard)
        target = await account_on(api, target_shard)
    funding = await account_on(api, source["shard"], allow_overdraft=True)
    return CrossPair(funding=funding, source=source, target=target)


async def fund(api: httpx.AsyncClient, pair: CrossPair, amount: int) -> None:
    """Give the source account `amount` from its shard's funding account (single-shard)."""
    response = await transfer(api, pair.funding["id"], pair.source["id"], amount)
    assert response.status_code == 201, response.text
    assert response.json()["cross_shard"] is False


async def settled(
    api: httpx.AsyncClient, account_id: str | None = None, *, timeout_s: float = 60
) -> list[dict]:
    """Wait until none of the tenant's transfers is still processing; return them, newest
    first (only those debiting `account_id`, when given)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        transfers = await all_transfers(api)
        if all(t["status"] != "processing" for t in transfers):
            break
        assert asyncio.get_running_loop().time() < deadline, "sagas did not finish in time"
        await asyncio.sleep(0.1)
    return [t for t in transfers if account_id is None or t["debit_account_id"] == account_id]


async def all_transfers(api: httpx.AsyncClient) -> list[dict]:
    """Every transfer of the tenant, newest first."""
    found: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 100, **({"starting_after": cursor} if cursor else {})}
        page = (await api.get("/v1/transfers", params=params)).json()
        found.extend(page["data"])
        if not page["has_more"]:
            return found
        cursor = page["data"][-1]["id"]


async def saga_count(client: Client, transfer_id: str, *, timeout_s: float = 10) -> int:
    """How many settlement workflows carry `transfer_id` (visibility is eventually
    consistent, so wait until at least one shows)."""
    query = f"LedgerflowTransferIds = '{transfer_id}'"
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        count = (await client.count_workflows(query)).count
        if count or asyncio.get_running_loop().time() > deadline:
            return count
        await asyncio.sleep(0.1)
