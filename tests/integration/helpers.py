"""Small helpers for driving the API and the `ledgerflow` command in tests."""

import asyncio
import json
import os
import sys

import httpx
from ulid import ULID


async def create_account(
    api: httpx.AsyncClient,
    *,
    currency: str = "USD",
    allow_overdraft: bool = False,
    normal_balance: str = "credit",
) -> dict:
    """Open an account and return it."""
    response = await api.post(
        "/v1/accounts",
        json={
            "currency": currency,
            "allow_overdraft": allow_overdraft,
            "normal_balance": normal_balance,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


async def accounts_by_shard(
    api: httpx.AsyncClient, *, per_shard: int, shards: int = 4, **kwargs: object
) -> dict[int, list[dict]]:
    """Open accounts until every shard holds at least `per_shard` of them."""
    found: dict[int, list[dict]] = {s: [] for s in range(shards)}
    for _ in range(per_shard * shards * 20):
        if all(len(v) >= per_shard for v in found.values()):
            break
        account = await create_account(api, **kwargs)  # type: ignore[arg-type]
        found[account["shard"]].append(account)
    assert all(len(v) >= per_shard for v in found.values())
    return found


async def transfer(
    api: httpx.AsyncClient,
    debit: str,
    credit: str,
    amount: int,
    *,
    currency: str = "USD",
    key: str | None = None,
) -> httpx.Response:
    """POST a transfer with an idempotency key (a fresh one unless given)."""
    return await api.post(
        "/v1/transfers",
        json={
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount": amount,
            "currency": currency,
        },
        headers={"Idempotency-Key": key or f"test-{ULID()}"},
    )


def transfer_body(debit: dict, credit: dict, amount: int, **extra: object) -> dict:
    """The body of `POST /v1/transfers` between two accounts, in USD, with `extra` fields."""
    return {
        "debit_account_id": debit["id"],
        "credit_account_id": credit["id"],
        "amount": amount,
        "currency": "USD",
        **extra,
    }


async def post_keyed(
    api: httpx.AsyncClient, path: str, body: dict | None = None, key: str | None = None
) -> httpx.Response:
    """POST `body` to `path` under an Idempotency-Key (a fresh one unless given)."""
    return await api.post(path, json=body, headers={"Idempotency-Key": key or f"test-{ULID()}"})


async def balance(api: httpx.AsyncClient, account_id: str) -> dict:
    """The account's current balance."""
    response = await api.get(f"/v1/accounts/{account_id}")
    assert response.status_code == 200, response.text
    return response.json()["balance"]


async def all_entries(api: httpx.AsyncClient, account_id: str) -> list[dict]:
    """Every entry of an account, oldest first, page by page."""
    entries: list[dict] = []
    params: dict[str, object] = {"limit": 100}
    while True:
        response = await api.get(f"/v1/accounts/{account_id}/entries", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        entries.extend(page["data"])
        if not page["has_more"]:
            return entries[::-1]
        params["starting_after"] = page["data"][-1]["id"]


async def run_ledgerflow(shard_dsns: list[str], *args: str) -> tuple[int, str, str]:
    """Run `python -m ledgerflow ARGS` against these shards; returns (exit code, stdout,
    stderr)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ledgerflow",
        *args,
        env={**os.environ, "LEDGERFLOW_SHARD_DSNS": json.dumps(shard_dsns), "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
