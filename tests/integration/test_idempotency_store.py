"""The idempotency store under the API: claims, leases, expiry, purging and batches."""

import asyncio

import asyncpg
import pytest
from ulid import ULID

from ledger.errors import ErrorCode, LedgerError
from shards import idempotency as records
from shards.cluster import ShardCluster
from shards.idempotency import Claim, ClaimOutcome, KeyClaim, KeyCompletion, KeyRelease


async def _one(conn: asyncpg.Connection, op: records.KeyOperation) -> records.KeyResult:
    (result,) = await records.run_key_operations(conn, [op])
    return result


async def test_claim_replay_reuse_and_expiry(cluster: ShardCluster) -> None:
    """A key is claimed once, replays once done, refuses another body, and is free again
    (and purged) once older than its 24 hours."""
    owner, key = f"key_{ULID()}", "k1"
    async with cluster.shards[0].pool.acquire() as conn:
        assert await _one(conn, KeyClaim(owner, key, "h1")) == Claim(ClaimOutcome.CLAIMED)
        assert await _one(conn, KeyCompletion(owner, key, 201, b"{}")) is None
        assert await _one(conn, KeyClaim(owner, key, "h1")) == Claim(
            ClaimOutcome.REPLAY, 201, b"{}"
        )
        reused = await _one(conn, KeyClaim(owner, key, "h2"))
        assert isinstance(reused, LedgerError)
        assert reused.code is ErrorCode.IDEMPOTENCY_KEY_REUSED

        await conn.execute(
            "update idempotency_keys set created_at = now() - interval '25 hours'"
            " where api_key_id = $1",
            owner,
        )
        assert await _one(conn, KeyClaim(owner, key, "h2")) == Claim(ClaimOutcome.CLAIMED)

        await conn.execute(
            "update idempotency_keys set created_at = now() - interval '25 hours'"
            " where api_key_id = $1",
            owner,
        )
        assert await records.purge_expired_keys(conn) >= 1
        left = await conn.fetchval(
            "select count(*) from idempotency_keys where api_key_id = $1", owner
        )
        assert left == 0


async def test_abandoned_in_flight_key_is_retried_after_its_lease(cluster: ShardCluster) -> None:
    """A key left in flight by a crashed process can be claimed again by the same request
    once its lease has expired (the operation log keeps the work exactly-once)."""
    owner, key = f"key_{ULID()}", "k2"
    async with cluster.shards[1].pool.acquire() as conn:
        assert await _one(conn, KeyClaim(owner, key, "h")) == Claim(ClaimOutcome.CLAIMED)
        in_flight = await _one(conn, KeyClaim(owner, key, "h"))
        assert isinstance(in_flight, LedgerError)
        assert in_flight.code is ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT
        await conn.execute(
            "update idempotency_keys set locked_at = now() - interval '1 hour'"
            " where api_key_id = $1",
            owner,
        )
        assert await _one(conn, KeyClaim(owner, key, "h")) == Claim(ClaimOutcome.CLAIMED)


async def test_one_batch_judges_repeated_keys_as_if_one_after_another(
    cluster: ShardCluster,
) -> None:
    """In one batch, the first claim of a key wins; a repeat with the same body finds it
    in flight and one with another body is refused as reuse. Completions and releases in
    the same batch apply to their own keys only."""
    owner = f"key_{ULID()}"
    async with cluster.shards[2].pool.acquire() as conn:
        assert await _one(conn, KeyClaim(owner, "done", "h")) == Claim(ClaimOutcome.CLAIMED)
        assert await _one(conn, KeyClaim(owner, "dropped", "h")) == Claim(ClaimOutcome.CLAIMED)
        results = await records.run_key_operations(
            conn,
            [
                KeyClaim(owner, "new", "h"),
                KeyClaim(owner, "new", "h"),
                KeyClaim(owner, "new", "other"),
                KeyCompletion(owner, "done", 200, b"[]"),
                KeyRelease(owner, "dropped"),
                KeyClaim(owner, "fresh", "h"),
            ],
        )
        assert results[0] == Claim(ClaimOutcome.CLAIMED)
        assert isinstance(results[1], LedgerError)
        assert results[1].code is ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT
        assert isinstance(results[2], LedgerError)
        assert results[2].code is ErrorCode.IDEMPOTENCY_KEY_REUSED
        assert results[3:5] == [None, None]
        assert results[5] == Claim(ClaimOutcome.CLAIMED)
        rows = await conn.fetch(
            "select key, state, response_status from idempotency_keys"
            " where api_key_id = $1 order by key",
            owner,
        )
        assert [tuple(r) for r in rows] == [
            ("done", "done", 200),
            ("fresh", "in_flight", None),
            ("new", "in_flight", None),
        ]


async def test_store_batches_concurrent_claims_and_refuses_all_but_one(
    cluster: ShardCluster,
) -> None:
    """Through the store, 50 concurrent claims of one key give exactly one winner; the rest
    are told the request is in flight, and once completed, every claim replays."""
    store = records.IdempotencyStore(cluster)
    owner, key = f"key_{ULID()}", "hot"
    shard = store.shard_of(owner, key)
    outcomes = await asyncio.gather(
        *(store.claim(shard, KeyClaim(owner, key, "h")) for _ in range(50)),
        return_exceptions=True,
    )
    won = [o for o in outcomes if o == Claim(ClaimOutcome.CLAIMED)]
    refused = [o for o in outcomes if isinstance(o, LedgerError)]
    assert len(won) == 1
    assert len(refused) == 49
    assert {e.code for e in refused} == {ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT}

    await store.complete(shard, KeyCompletion(owner, key, 201, b"{}"))
    replays = await asyncio.gather(
        *(store.claim(shard, KeyClaim(owner, key, "h")) for _ in range(10))
    )
    assert set(replays) == {Claim(ClaimOutcome.REPLAY, 201, b"{}")}
    await store.close()


async def test_store_reports_a_shard_failure_as_transient(shard_dsns: list[str]) -> None:
    """A shard the store cannot use fails the callers of that batch with a transient
    shard_unavailable; a database error that is a bug is raised as itself, not as an outage."""
    gone = await ShardCluster.connect(shard_dsns, pool_size_max=1)
    await gone.close()  # every acquire now fails, as against a shard that went away
    store = records.IdempotencyStore(gone)
    owner = f"key_{ULID()}"
    with pytest.raises(LedgerError) as refused:
        await store.claim(store.shard_of(owner, "k"), KeyClaim(owner, "k", "h"))
    assert refused.value.code is ErrorCode.SHARD_UNAVAILABLE
    assert refused.value.transient
    await store.close()

    live = await ShardCluster.connect(shard_dsns, pool_size_max=1)
    store = records.IdempotencyStore(live)
    # A NUL byte is valid in Python and refused by PostgreSQL (the API never sends one).
    with pytest.raises(asyncpg.PostgresError):
        await store.claim(store.shard_of(owner, "k\x00"), KeyClaim(owner, "k\x00", "h"))
    shard = store.shard_of(owner, "k")
    assert await store.claim(shard, KeyClaim(owner, "k", "h")) == Claim(ClaimOutcome.CLAIMED)
    await store.close()
    await live.close()
