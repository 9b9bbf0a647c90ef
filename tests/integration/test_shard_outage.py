"""A shard that is down answers 503 shard_unavailable in the error shape, never a 500, on
the paths outside the batched postings too; the API recovers when the shard is back."""

import asyncio

import httpx
import pytest

from ledgerflow.devstack import EmbeddedPostgres
from tests.integration.helpers import create_account

pytestmark = pytest.mark.usefixtures("books")


async def test_reads_and_writes_on_a_stopped_shard_are_503_then_recover(
    api: httpx.AsyncClient, shard_servers: list[EmbeddedPostgres]
) -> None:
    """With an account's shard stopped, reading it, listing accounts, freezing it and moving
    money from it are 503 with code shard_unavailable; after the restart they work."""
    account = await create_account(api)
    other = await create_account(api)
    server = shard_servers[account["shard"]]
    await asyncio.to_thread(server.stop)
    try:
        requests = [
            api.get(f"/v1/accounts/{account['id']}"),
            api.get("/v1/accounts"),
            api.post(f"/v1/accounts/{account['id']}/freeze"),
            api.post(
                "/v1/transfers",
                json={
                    "debit_account_id": account["id"],
                    "credit_account_id": other["id"],
                    "amount": 1,
                    "currency": "USD",
                },
            ),
        ]
        for response in await asyncio.gather(*requests):
            assert response.status_code == 503, response.text
            assert response.json()["error"]["code"] == "shard_unavailable"
            assert response.headers["Retry-After"] == "1"
    finally:
        await asyncio.to_thread(server.start)
    for _ in range(50):
        response = await api.get(f"/v1/accounts/{account['id']}")
        if response.status_code == 200:
            break
        await asyncio.sleep(0.2)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
