"""Session-wide services for the tests: real PostgreSQL shards and a real HTTP server.

Servers start once per session; every test gets a fresh tenant (its own API key), so tests
never see each other's accounts.
"""

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from ulid import ULID

from api.app import ApiConfig, create_app
from ledgerflow.devstack import EmbeddedPostgres, free_port
from shards.api_keys import create_api_key
from shards.cluster import ShardCluster
from shards.migrate import migrate_all
from shards.reconcile import Report, reconcile

SHARD_COUNT = 4


@pytest.fixture(scope="session")
def shard_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[EmbeddedPostgres]]:
    """Four embedded PostgreSQL shards, fsync off (tests only)."""
    base: Path = tmp_path_factory.mktemp("shards")
    servers = [
        EmbeddedPostgres(base / f"shard-{i}", port=free_port(), durable=False)
        for i in range(SHARD_COUNT)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
async def shard_dsns(shard_servers: list[EmbeddedPostgres]) -> list[str]:
    """The shards' DSNs, migrated."""
    dsns = [s.dsn for s in shard_servers]
    await migrate_all(dsns)
    return dsns


@pytest.fixture(scope="session")
async def cluster(shard_dsns: list[str]) -> AsyncIterator[ShardCluster]:
    """A pool per shard for tests that look under the API."""
    connected = await ShardCluster.connect(shard_dsns, pool_size_max=4)
    yield connected
    await connected.close()


async def serve(app: object) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    """Run an ASGI app on a free loopback port in this event loop."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")  # type: ignore[arg-type]
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    assert server.started, "the API did not start"
    return server, task, f"http://127.0.0.1:{port}"


async def stop(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Stop a server started by `serve`."""
    server.should_exit = True
    await asyncio.wait_for(task, timeout=30)


@pytest.fixture(scope="session")
def api_config(shard_dsns: list[str]) -> ApiConfig:
    """The configuration of the session's API server."""
    return ApiConfig(shard_dsns=shard_dsns, pool_size_max=8, saga_sync_wait_s=2.0)


@pytest.fixture(scope="session")
async def api_url(api_config: ApiConfig) -> AsyncIterator[str]:
    """The session's API server, over real HTTP on loopback."""
    server, task, url = await serve(create_app(api_config))
    yield url
    await stop(server, task)


@pytest.fixture
async def tenant_key(cluster: ShardCluster) -> str:
    """A fresh tenant with its own API key."""
    async with cluster.shards[0].pool.acquire() as conn:
        _, secret = await create_api_key(conn, tenant_id=f"tenant_{ULID()}")
    return secret


@pytest.fixture
async def api(api_url: str, tenant_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client authenticated as a fresh tenant."""
    async with httpx.AsyncClient(
        base_url=api_url,
        headers={"Authorization": f"Bearer {tenant_key}"},
        timeout=httpx.Timeout(30.0),
        limits=httpx.Limits(max_connections=200),
    ) as client:
        yield client


@pytest.fixture
async def books(cluster: ShardCluster) -> AsyncIterator[None]:
    """Checks after the test that every shard's books balance."""
    yield
    report = await reconcile_settled(cluster)
    assert report.ok, report.problems


async def reconcile_settled(cluster: ShardCluster, *, timeout_s: float = 30) -> Report:
    """Reconcile once no saga is in flight (or report what is still off at the deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        report = await reconcile(cluster)
        idle = not any(report.in_flight.values())
        if (report.ok and idle) or asyncio.get_running_loop().time() > deadline:
            return report
        await asyncio.sleep(0.2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Integration tests are marked by their folder."""
    for item in items:
        if f"{os.sep}integration{os.sep}" in str(item.path):
            item.add_marker(pytest.mark.integration)
