"""Helpers for the cross-shard tests: accounts on two shards, waiting for sagas, counting them."""

import asyncio
from dataclasses import dataclass
from datetime import datetime

import httpx
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from ulid import ULID

from ledger.ids import even_shard_map, slot_of
from ledger.limits import OUTBOX_SWEEP_ROWS_MAX, SAGA_BATCH_SIZE_MAX
from ledger.posting import Movement
from shards.api_keys import CATALOG_SHARD, find_api_key
from shards.cluster import ShardCluster, new_transfer_id
from shards.posting import post_batch
from shards.posting_types import PostingRequest
from tests.integration.helpers import accounts_by_shard, create_account, transfer
from workflows.sweep.inputs import SweepInput, SweepOutcome
from workflows.sweep.workflow import SweepSagaOutbox

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


async def saga_count(
    client: Client, cluster: ShardCluster, transfer_id: str, *, timeout_s: float = 30
) -> int:
    """How many settlement workflows carry `transfer_id`, judged from the transfer's
    outbox row, not from search alone (it is eventually consistent, so a count taken too
    early sees none, or only the first of two):
    - no outbox row, one no saga claimed, or one whose workflow never started: what search
      counts (0 when nothing else carries it);
    - else its saga must finish the row (so no other can start for it); the count is
      taken once search shows that workflow, and counts every workflow that carries the
      transfer.
    """
    source = cluster.shard_of_transfer(transfer_id)
    async with source.connection() as conn:
        row = await conn.fetchrow(
            "select workflow_id, finished_at from saga_outbox where transfer_id = $1",
            transfer_id,
        )
    query = f"LedgerflowTransferIds = '{transfer_id}'"
    deadline = asyncio.get_running_loop().time() + timeout_s
    if row is None or row["workflow_id"] is None:
        return (await client.count_workflows(query)).count
    workflow_id = row["workflow_id"]
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise
        # Claimed, but its start failed (the sweep starts it later): none carries it.
        return (await client.count_workflows(query)).count
    while True:
        async with source.connection() as conn:
            finished = await conn.fetchval(
                "select finished_at is not null from saga_outbox where transfer_id = $1",
                transfer_id,
            )
        seen = (await client.count_workflows(f"{query} AND WorkflowId = '{workflow_id}'")).count
        if finished and seen:
            return (await client.count_workflows(query)).count
        assert asyncio.get_running_loop().time() < deadline, (
            f"{workflow_id} of {transfer_id}: outbox finished {finished}, in search {seen}"
        )
        await asyncio.sleep(0.1)


async def _key_of(cluster: ShardCluster, secret: str) -> tuple[str, str]:
    """(key id, tenant) of a live API key."""
    async with cluster.shards[CATALOG_SHARD].pool.acquire() as conn:
        found = await find_api_key(conn, secret)
    assert found is not None
    return found


async def tenant_of(cluster: ShardCluster, secret: str) -> str:
    """The tenant an API key acts for."""
    return (await _key_of(cluster, secret))[1]


async def api_key_id_of(cluster: ShardCluster, secret: str) -> str:
    """The id of an API key (keys are stored hashed in the catalog)."""
    return (await _key_of(cluster, secret))[0]


async def reserve_only(
    cluster: ShardCluster,
    pair: CrossPair,
    amount: int,
    *,
    tenant_id: str,
    expires_at: datetime | None = None,
    available_on: datetime | None = None,
) -> PostingRequest:
    """Reserve a cross-shard transfer the way the API does, and stop there: what an API
    process that dies right after the reserve leaves behind (the hold and its outbox row).
    With `expires_at` it is a hold, with `available_on` a delayed credit."""
    source, target = pair.source, pair.target
    transfer_id = new_transfer_id(slot_of(source["id"]))
    request = PostingRequest(
        operation_key=f"transfer:{transfer_id}",
        transfer_id=transfer_id,
        tenant_id=tenant_id,
        movement=Movement.RESERVE_FUNDS,
        debit_account_id=source["id"],
        credit_account_id=target["id"],
        amount=amount,
        currency=source["currency"],
        source_shard=source["shard"],
        destination_shard=target["shard"],
        expires_at=expires_at,
        available_on=available_on,
    )
    async with cluster.shards[source["shard"]].pool.acquire() as conn:
        (result,) = await post_batch(conn, shard=source["shard"], requests=[request])
    assert result.ok, result.error
    return request


async def sweep_now(
    client: Client, task_queue: str, *, workflow_id: str | None = None
) -> SweepOutcome:
    """Run one outbox sweep now, treating every open row as stale."""
    return await client.execute_workflow(
        SweepSagaOutbox.run,
        SweepInput(
            stale_after_s=0, rows_max=OUTBOX_SWEEP_ROWS_MAX, batch_size_max=SAGA_BATCH_SIZE_MAX
        ),
        id=workflow_id or f"test-sweep-{ULID()}",
        task_queue=task_queue,
    )
