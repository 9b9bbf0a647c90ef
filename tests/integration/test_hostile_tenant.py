"""What one tenant can do to the service everyone shares: every wait is bounded, bad tokens
cost little, authentication outlives shard 0, and the worst inputs move nothing but their
own money while another tenant's transfers keep settling."""

import asyncio
import random
import socket
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from ulid import ULID

from api.auth import Authenticator
from ledger.errors import ErrorCode, LedgerError
from ledger.ids import clearing_account_id
from ledger.limits import BIGINT_MAX, POOL_ACQUIRE_TIMEOUT_S, REQUEST_BODY_BYTES_MAX
from ledgerflow.devstack import EmbeddedPostgres
from shards.api_keys import ApiKeyCatalog
from shards.batching import ShardBatcher
from shards.cluster import SHARD_FAILURES, Shard, ShardCluster
from tests.conftest import SHARD_COUNT, new_tenant_key
from tests.integration.cross_shard import account_on, settled, tenant_of
from tests.integration.helpers import balance, transfer

pytestmark = pytest.mark.usefixtures("books")


async def test_a_chunked_body_over_the_limit_is_413(api: httpx.AsyncClient) -> None:
    """A body sent in chunks, without a Content-Length to refuse it by, is 413 too."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"currency": "USD", "metadata": {"k": "'
        for _ in range(REQUEST_BODY_BYTES_MAX // 65536 + 1):
            yield b"x" * 65536
        yield b'"}}'

    response = await api.post("/v1/accounts", content=chunks())
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "body_too_large"


async def test_bad_tokens_cost_the_catalog_no_query(shard_dsns: list[str]) -> None:
    """A malformed token is refused without a lookup, and an unknown well-formed one is
    looked up once and then refused from memory: with the pools closed afterwards (any
    query would fail), both still get 401 `api_key_invalid`."""
    own = await ShardCluster.connect(shard_dsns, pool_size_max=1)
    authenticator = Authenticator(own)
    unknown = f"lf_sk_{ULID()}{ULID()}"
    try:
        with pytest.raises(LedgerError) as first:
            await authenticator.authenticate(f"Bearer {unknown}")
        assert first.value.code is ErrorCode.API_KEY_INVALID
    finally:
        await own.close()
    for token in ("nope", "x" * 5000, "lf_sk_short", "a b", unknown):
        with pytest.raises(LedgerError) as refused:
            await authenticator.authenticate(f"Bearer {token}")
        assert refused.value.code is ErrorCode.API_KEY_INVALID


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections and never answers, as a partitioned shard."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


async def test_a_shard_that_hangs_costs_a_bounded_wait(black_hole: int) -> None:
    """Taking a connection to a shard that accepts and never answers fails with one of the
    shard failures within the acquire deadline, instead of hanging the request."""
    pool = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{black_hole}/ledgerflow", min_size=0, max_size=1
    )
    shard = Shard(index=0, dsn="hung", pool=pool)
    started = time.monotonic()
    try:
        with pytest.raises(SHARD_FAILURES):
            async with shard.connection():
                pass
    finally:
        pool.terminate()
    assert time.monotonic() - started < POOL_ACQUIRE_TIMEOUT_S + 2


async def test_a_full_batch_queue_is_503_not_memory(cluster: ShardCluster) -> None:
    """While a shard's batcher is busy, at most `queue_size_max` items wait; the next caller
    is refused at once with `shard_unavailable` (a 503 with Retry-After)."""
    release = asyncio.Event()
    running_batch = asyncio.Event()

    async def slow(_conn: asyncpg.Connection, _shard: int, items: list[int]) -> list[int]:
        running_batch.set()
        await release.wait()
        return items

    batcher = ShardBatcher(
        cluster, slow, what="test", batch_size_max=1, flushers_per_shard=1, queue_size_max=3
    )
    running = asyncio.create_task(batcher.submit(0, 0))
    # The one flusher takes item 0 and waits in the runner (no sleep guessing how long).
    await asyncio.wait_for(running_batch.wait(), timeout=10)
    queued = [asyncio.create_task(batcher.submit(0, n)) for n in range(1, 4)]
    for _ in range(3):
        await asyncio.sleep(0)  # each queued task runs up to its wait: the queue is full
    try:
        with pytest.raises(LedgerError) as refused:
            await asyncio.wait_for(batcher.submit(0, 99), timeout=5)
        assert refused.value.code is ErrorCode.SHARD_UNAVAILABLE
        assert refused.value.transient
    finally:
        release.set()
    assert await asyncio.wait_for(asyncio.gather(running, *queued), timeout=10) == [0, 1, 2, 3]


async def test_authentication_outlives_shard_0(
    api: httpx.AsyncClient,
    api_url: str,
    cluster: ShardCluster,
    shard_servers: list[EmbeddedPostgres],
) -> None:
    """With shard 0 stopped, a key the API never saw before still authenticates (from the
    copies on the other shards) and reads an account on shard 1; a request for shard 0 is
    503 in the error shape, without the database's own words."""
    on_one = await account_on(api, 1)
    on_zero = await account_on(api, 0)
    tenant = await tenant_of(cluster, api.headers["Authorization"].removeprefix("Bearer "))
    _, fresh_key = await ApiKeyCatalog(cluster).create(tenant_id=tenant)
    await asyncio.to_thread(shard_servers[0].stop)
    try:
        async with httpx.AsyncClient(
            base_url=api_url, headers={"Authorization": f"Bearer {fresh_key}"}, timeout=30
        ) as fresh:
            found = await fresh.get(f"/v1/accounts/{on_one['id']}")
            assert found.status_code == 200, found.text
            down = await fresh.get(f"/v1/accounts/{on_zero['id']}")
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "shard_unavailable"
            assert down.headers["Retry-After"] == "1"
            message = down.json()["error"]["message"].lower()
            assert not any(word in message for word in ("errno", "connect", "127.0.0.1"))
    finally:
        await asyncio.to_thread(shard_servers[0].start)
    # And it recovers: once shard 0 is back, the same key reads the account there.
    for _ in range(150):
        if (await api.get(f"/v1/accounts/{on_zero['id']}")).status_code == 200:
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("shard 0's account is still unreadable 30 s after its restart")
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {fresh_key}"}, timeout=30
    ) as fresh:
        assert (await fresh.get(f"/v1/accounts/{on_zero['id']}")).status_code == 200


async def test_the_worst_inputs_of_one_tenant_leave_another_unharmed(
    api: httpx.AsyncClient, api_url: str, cluster: ShardCluster
) -> None:
    """For a few seconds one tenant sends system ids, extreme amounts, reused keys and a
    flood of bad tokens, while another tenant moves money within and across shards. The
    attacker gets only 4xx answers (never a 5xx), the victim's balances match a model of its
    transfers exactly, and the books balance afterwards."""
    victim_key = await new_tenant_key(cluster)
    async with httpx.AsyncClient(
        base_url=api_url, headers={"Authorization": f"Bearer {victim_key}"}, timeout=30
    ) as victim:
        funding = await account_on(victim, 0, allow_overdraft=True)
        wallets = [await account_on(victim, s) for s in range(SHARD_COUNT)]
        mine = {s: await account_on(api, s) for s in range(SHARD_COUNT)}
        whale = await account_on(api, 0, allow_overdraft=True)
        deadline = asyncio.get_running_loop().time() + 6
        model = {w["id"]: 0 for w in wallets}
        attacker_statuses: list[int] = []

        async def victim_moves() -> None:
            rng = random.Random(7)
            while asyncio.get_running_loop().time() < deadline:
                target = rng.choice(wallets)
                amount = rng.randint(1, 1000)
                answer = await transfer(victim, funding["id"], target["id"], amount)
                assert answer.status_code in (201, 202), answer.text
                model[target["id"]] += amount

        async def attack(seed: int) -> None:
            rng = random.Random(seed)
            reused = f"reused-{seed}"
            async with httpx.AsyncClient(base_url=api_url, timeout=30) as anonymous:
                while asyncio.get_running_loop().time() < deadline:
                    shard = rng.randrange(SHARD_COUNT)
                    clearing = clearing_account_id(shard, "USD")
                    choice = rng.randrange(6)
                    if choice == 0:
                        answer = await transfer(api, clearing, mine[shard]["id"], 10**6)
                    elif choice == 1:
                        answer = await transfer(api, mine[shard]["id"], clearing, 1)
                    elif choice == 2:
                        answer = await transfer(api, whale["id"], wallets[shard]["id"], BIGINT_MAX)
                    elif choice == 3:
                        answer = await transfer(
                            api, whale["id"], mine[shard]["id"], rng.randint(1, 9), key=reused
                        )
                    elif choice == 4:
                        answer = await anonymous.get(
                            "/v1/accounts",
                            headers={"Authorization": f"Bearer lf_sk_{ULID()}{ULID()}"},
                        )
                    else:
                        answer = await api.get(f"/v1/accounts/{clearing}/entries")
                    attacker_statuses.append(answer.status_code)

        await asyncio.gather(victim_moves(), *(attack(seed) for seed in range(4)))
        await settled(victim)
        for wallet in wallets:
            assert (await balance(victim, wallet["id"]))["posted"] == model[wallet["id"]]
        assert (await balance(victim, funding["id"]))["posted"] == -sum(model.values())
    assert attacker_statuses
    assert all(400 <= s < 500 for s in attacker_statuses if s not in (201, 202)), sorted(
        set(attacker_statuses)
    )
    assert 404 in attacker_statuses
    assert 401 in attacker_statuses
