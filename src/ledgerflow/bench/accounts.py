"""The accounts a bench run moves money between: customers on every shard, funded from an
overdraft account on their shard, and one fee account for the `hot` scenario.

The client is aiohttp: httpx's connection pool spends most of its CPU scanning connections
at 64+ concurrent requests and measured itself (about 150 requests/s), not the server.
"""

import asyncio
from dataclasses import dataclass

import aiohttp
from ulid import ULID

FUNDING_AMOUNT = 10**12
CURRENCY = "USD"
OPEN_ROUND_SIZE = 32
"""Accounts opened per round; a round that finds no new shard ends the search, and with 32
accounts hashed over 4 shards one shard is missed in fewer than 1 in 20,000 rounds."""
OPEN_ROUNDS_MAX = 64


class BenchSetupError(Exception):
    """The API refused to open or fund the bench's accounts."""


@dataclass(frozen=True, slots=True)
class BenchAccounts:
    """Funded customer accounts per shard and the fee account of the `hot` scenario."""

    customers: dict[int, list[str]]
    fee_account: str
    fee_shard: int
    spread_accounts: list[str]
    """Accounts on the fee shard that, like the fee account, are only ever credited: the
    `hot-spread` row credits them in turn, so it differs from `hot` in nothing else."""

    @property
    def shards(self) -> list[int]:
        """The shards the accounts landed on, in order."""
        return sorted(self.customers)


async def _create_account(client: aiohttp.ClientSession, *, overdraft: bool) -> dict:
    body = {"currency": CURRENCY, "allow_overdraft": overdraft}
    headers = {"Idempotency-Key": f"bench-{ULID()}"}
    async with client.post("/v1/accounts", json=body, headers=headers) as response:
        if response.status != 201:
            raise BenchSetupError(f"POST /v1/accounts: {response.status} {await response.text()}")
        return await response.json()


async def post_transfer(
    client: aiohttp.ClientSession, debit: str, credit: str, amount: int
) -> tuple[int, dict]:
    """POST one transfer with a fresh Idempotency-Key; returns the status and the body."""
    body = {
        "debit_account_id": debit,
        "credit_account_id": credit,
        "amount": amount,
        "currency": CURRENCY,
    }
    headers = {"Idempotency-Key": f"bench-{ULID()}"}
    async with client.post("/v1/transfers", json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def open_accounts(client: aiohttp.ClientSession, *, per_shard: int) -> BenchAccounts:
    """At least `per_shard` funded customers on every shard the API routes to, and a fee
    account on one of them.

    Raises:
        BenchSetupError: an account or a funding transfer was refused.
    """
    customers: dict[int, list[str]] = {}
    for _ in range(OPEN_ROUNDS_MAX):
        shards_before = set(customers)
        opened = await asyncio.gather(
            *(_create_account(client, overdraft=False) for _ in range(OPEN_ROUND_SIZE))
        )
        for account in opened:
            customers.setdefault(account["shard"], []).append(account["id"])
        enough = all(len(ids) >= per_shard for ids in customers.values())
        if enough and set(customers) == shards_before:
            break
    funding: dict[int, str] = {}
    for _ in range(OPEN_ROUNDS_MAX * OPEN_ROUND_SIZE):
        if set(funding) >= set(customers):
            break
        account = await _create_account(client, overdraft=True)
        funding.setdefault(account["shard"], account["id"])
    fee_shard = min(customers)
    credit_only: list[str] = []
    for _ in range(OPEN_ROUNDS_MAX * OPEN_ROUND_SIZE):
        if len(credit_only) > per_shard:
            break
        account = await _create_account(client, overdraft=False)
        if account["shard"] == fee_shard:
            credit_only.append(account["id"])
    if len(credit_only) <= per_shard or set(funding) < set(customers):
        raise BenchSetupError("could not open an account on every shard")
    await asyncio.gather(
        *(
            _fund(client, funding[shard], account_id)
            for shard, ids in customers.items()
            for account_id in ids
        )
    )
    return BenchAccounts(
        customers=customers,
        fee_account=credit_only[0],
        fee_shard=fee_shard,
        spread_accounts=credit_only[1:],
    )


async def _fund(client: aiohttp.ClientSession, funding: str, account_id: str) -> None:
    status, body = await post_transfer(client, funding, account_id, FUNDING_AMOUNT)
    if status not in (201, 202):
        raise BenchSetupError(f"funding {account_id}: {status} {body}")
