"""A saga step that can never succeed for one transfer does not hold the others.

The shard itself refuses one account's update (a trigger that raises, as a constraint or a
bug in the posting code would): not a business refusal the domain rules know, and not a
shard outage, so retrying cannot help. The other transfers of the batch must settle, and
the poisoned one must end: refused at the credit (hold released, `settlement_failed`), or,
at the post, retried alone until the cause is mended.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment
from ulid import ULID

from api.app import create_app
from shards.cluster import ShardCluster
from tests.conftest import served, settlement_config
from tests.integration.cross_shard import account_on, fund, open_cross_pair, settled
from tests.integration.helpers import balance, transfer
from workflows.worker import build_worker

pytestmark = pytest.mark.usefixtures("books")

_WINDOW_MS = 1000
"""Long enough that transfers sent together all join one batch, hence one saga."""


@asynccontextmanager
async def api_batching_on(
    task_queue: str,
    shard_dsns: list[str],
    temporal_address: str,
    tenant_key: str,
    *,
    sync_wait_s: float,
) -> AsyncIterator[httpx.AsyncClient]:
    """An API process whose sagas run on `task_queue`, gathering each batch for 1 s and
    answering once its saga finished or after `sync_wait_s`."""
    config = settlement_config(
        shard_dsns,
        temporal_address,
        task_queue=task_queue,
        sync_wait_s=sync_wait_s,
        batch_window_ms=_WINDOW_MS,
    )
    async with served(create_app(config), tenant_key, timeout_s=60) as client:
        yield client


@asynccontextmanager
async def poisoned(dsn: str, account_id: str) -> AsyncIterator[None]:
    """While open, every update of `account_id` on this shard raises (SQLSTATE P0001)."""
    name = f"poison_{str(ULID()).lower()}"
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"create function {name}() returns trigger language plpgsql as $$"
            f" begin raise exception 'account % is poisoned', new.id; end $$"
        )
        await conn.execute(
            f"create trigger {name} before update on accounts for each row"
            f" when (new.id = '{account_id}') execute function {name}()"
        )
        yield
    finally:
        await conn.execute(f"drop trigger if exists {name} on accounts")
        await conn.execute(f"drop function if exists {name}()")
        await conn.close()


async def finished(api: httpx.AsyncClient, transfer_id: str, *, timeout_s: float = 60) -> dict:
    """The transfer once it is no longer processing."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        found = (await api.get(f"/v1/transfers/{transfer_id}")).json()
        if found["status"] != "processing":
            return found
        assert asyncio.get_running_loop().time() < deadline, f"{transfer_id} did not finish"
        await asyncio.sleep(0.1)


async def test_a_credit_that_always_raises_fails_alone_and_the_batch_settles(
    api: httpx.AsyncClient,
    shard_dsns: list[str],
    temporal_address: str,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    worker_cluster: ShardCluster,
) -> None:
    """Four transfers out of one account share a saga; the destination shard raises on every
    update of one of their targets. That transfer ends `failed` with `settlement_failed`
    (502, hold released, nothing credited) and the other three are posted."""
    queue = f"test-poisoned-credit-{ULID()}"
    pair = await open_cross_pair(api, source_shard=0, target_shard=1)
    await fund(api, pair, 10_000)
    healthy = [pair.target, *[await account_on(api, 1) for _ in range(2)]]
    victim = await account_on(api, 1)
    amounts = {healthy[0]["id"]: 1_000, healthy[1]["id"]: 1_500, healthy[2]["id"]: 2_000}
    async with (
        poisoned(shard_dsns[1], victim["id"]),
        build_worker(client=temporal_env.client, cluster=worker_cluster, task_queue=queue),
        api_batching_on(queue, shard_dsns, temporal_address, tenant_key, sync_wait_s=20) as api_q,
    ):
        responses = await asyncio.gather(
            transfer(api_q, pair.source["id"], victim["id"], 700),
            *(transfer(api_q, pair.source["id"], t, amount) for t, amount in amounts.items()),
        )
        done = await settled(api, pair.source["id"])

    refused, *accepted = responses
    assert refused.status_code == 502, refused.text
    assert refused.json()["error"]["code"] == "settlement_failed"
    assert refused.json()["error"]["type"] == "api_error"
    assert "Retry-After" not in refused.headers
    assert [r.status_code for r in accepted] == [201] * 3, [r.text for r in accepted]

    by_target = {t["credit_account_id"]: t for t in done}
    assert len({t["saga"]["workflow_id"] for t in done}) == 1, "the four shared one saga"
    assert (by_target[victim["id"]]["status"], by_target[victim["id"]]["failure_code"]) == (
        "failed",
        "settlement_failed",
    )
    assert [by_target[t]["status"] for t in amounts] == ["posted"] * 3
    for target, amount in amounts.items():
        assert (await balance(api, target))["posted"] == amount
    assert await balance(api, victim["id"]) == {
        "posted": 0,
        "pending": 0,
        "held": 0,
        "available": 0,
    }
    assert await balance(api, pair.source["id"]) == {
        "posted": 10_000 - 4_500,
        "pending": 0,
        "held": 0,
        "available": 10_000 - 4_500,
    }


async def test_a_post_that_always_raises_is_retried_alone(
    api: httpx.AsyncClient,
    shard_dsns: list[str],
    temporal_address: str,
    tenant_key: str,
    temporal_env: WorkflowEnvironment,
    worker_cluster: ShardCluster,
) -> None:
    """Two transfers out of two accounts share a saga; after both are reserved, the source
    shard raises on every update of one source account. Both are credited; the other one
    is posted at once, the poisoned one waits at `credited` (a post is never compensated)
    and is posted once the cause is mended."""
    queue = f"test-poisoned-post-{ULID()}"
    pair = await open_cross_pair(api, source_shard=0, target_shard=1)
    other = await open_cross_pair(api, source_shard=0, target_shard=1)
    await fund(api, pair, 3_000)
    await fund(api, other, 3_000)
    async with api_batching_on(
        queue, shard_dsns, temporal_address, tenant_key, sync_wait_s=0.3
    ) as api_q:
        responses = await asyncio.gather(
            transfer(api_q, pair.source["id"], pair.target["id"], 1_000),
            transfer(api_q, other.source["id"], other.target["id"], 1_200),
        )
    assert [r.status_code for r in responses] == [202, 202], [r.text for r in responses]
    stuck_id, healthy_id = (r.json()["id"] for r in responses)
    assert responses[0].json()["saga"]["workflow_id"] == responses[1].json()["saga"]["workflow_id"]

    async with build_worker(client=temporal_env.client, cluster=worker_cluster, task_queue=queue):
        async with poisoned(shard_dsns[0], pair.source["id"]):
            assert (await finished(api, healthy_id))["status"] == "posted"
            waiting = (await api.get(f"/v1/transfers/{stuck_id}")).json()
            assert (waiting["status"], waiting["saga"]["step"]) == ("processing", "credited")
            assert (await balance(api, pair.source["id"]))["held"] == 1_000
        assert (await finished(api, stuck_id))["status"] == "posted"
    assert (await balance(api, pair.target["id"]))["posted"] == 1_000
    assert (await balance(api, other.target["id"]))["posted"] == 1_200
    assert (await balance(api, pair.source["id"]))["available"] == 2_000
    assert (await balance(api, other.source["id"]))["available"] == 1_800
