"""The idempotency store under the API: claims, leases, expiry, purging and batches."""

import asyncio
import random

import asyncpg
import pytest
from ulid import ULID

from ledger.errors import ErrorCode, LedgerError
from shards import idempotency as records
from shards.cluster import ShardCluster
from shards.idempotency import Claim, ClaimOutcome, KeyClaim, KeyCompletion, KeyRelease


def _claimed(result: object) -> bool:
    """Whether a claim got the key (it then also carries its operation key and time)."""
    return (
        isinstance(result, Claim)
        and result.outcome is ClaimOutcome.CLAIMED
        and result.first_claimed_at is not None
    )


async def _one(conn: asyncpg.Connection, op: records.KeyOperation) -> records.KeyResult:
    (result,) = await records.run_key_operations(conn, [op])
    return result


async def test_claim_replay_reuse_and_expiry(cluster: ShardCluster) -> None:
    """A key is claimed once, replays once done, refuses another body, and is free again
    (and purged) once older than its 24 hours."""
    owner, key = f"key_{ULID()}", "k1"
    async with cluster.shards[0].pool.acquire() as conn:
        assert _claimed(await _one(conn, KeyClaim(owner, key, "h1")))
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
        assert _claimed(await _one(conn, KeyClaim(owner, key, "h2")))

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
        assert _claimed(await _one(conn, KeyClaim(owner, key, "h")))
        in_flight = await _one(conn, KeyClaim(owner, key, "h"))
        assert isinstance(in_flight, LedgerError)
        assert in_flight.code is ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT
        await conn.execute(
            "update idempotency_keys set locked_at = now() - interval '1 hour'"
            " where api_key_id = $1",
            owner,
        )
        assert _claimed(await _one(conn, KeyClaim(owner, key, "h")))


async def test_one_batch_judges_repeated_keys_as_if_one_after_another(
    cluster: ShardCluster,
) -> None:
    """In one batch, the first claim of a key wins; a repeat with the same body finds it
    in flight and one with another body is refused as reuse. Completions and releases in
    the same batch apply to their own keys only; a released key stays bound to its body."""
    owner = f"key_{ULID()}"
    async with cluster.shards[2].pool.acquire() as conn:
        assert _claimed(await _one(conn, KeyClaim(owner, "done", "h")))
        assert _claimed(await _one(conn, KeyClaim(owner, "dropped", "h")))
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
        assert _claimed(results[0])
        assert isinstance(results[1], LedgerError)
        assert results[1].code is ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT
        assert isinstance(results[2], LedgerError)
        assert results[2].code is ErrorCode.IDEMPOTENCY_KEY_REUSED
        assert results[3:5] == [None, None]
        assert _claimed(results[5])
        rows = await conn.fetch(
            "select key, state, response_status from idempotency_keys"
            " where api_key_id = $1 order by key",
            owner,
        )
        assert [tuple(r) for r in rows] == [
            ("done", "done", 200),
            ("dropped", "in_flight", None),
            ("fresh", "in_flight", None),
            ("new", "in_flight", None),
        ]
        reused = await _one(conn, KeyClaim(owner, "dropped", "other"))
        assert isinstance(reused, LedgerError)
        assert reused.code is ErrorCode.IDEMPOTENCY_KEY_REUSED
        assert _claimed(await _one(conn, KeyClaim(owner, "dropped", "h")))


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
    won = [o for o in outcomes if _claimed(o)]
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
    assert _claimed(await store.claim(shard, KeyClaim(owner, "k", "h")))
    await store.close()
    await live.close()


def _model_batch(
    state: dict[str, tuple[str, str, int | None]], batch: list[records.KeyOperation]
) -> list[object]:
    """What one batch should answer, on a model: key -> (hash, state, status). A batch's
    requests are concurrent, so the store may order them; it runs completions and releases
    first, then the claims in order, and the model does the same. Only the first claim of a
    key in a batch can take it, so a later one that finds it released is told to retry."""
    for op in batch:
        if isinstance(op, KeyCompletion) and op.key in state:
            state[op.key] = (state[op.key][0], "done", op.status)
    for op in batch:
        if isinstance(op, KeyRelease) and op.key in state and state[op.key][1] == "in_flight":
            state[op.key] = (state[op.key][0], "released", None)
    answers: list[object] = []
    tried: set[str] = set()
    for op in batch:
        if not isinstance(op, KeyClaim):
            answers.append(None)
            continue
        first_try = op.key not in tried
        tried.add(op.key)
        found = state.get(op.key)
        if found is None:
            state[op.key] = (op.request_hash, "in_flight", None)
            answers.append(ClaimOutcome.CLAIMED)
        elif found[0] != op.request_hash:
            answers.append(ErrorCode.IDEMPOTENCY_KEY_REUSED)
        elif found[1] == "released" and first_try:
            state[op.key] = (op.request_hash, "in_flight", None)
            answers.append(ClaimOutcome.CLAIMED)
        elif found[1] == "released":
            # Only a key's first claim in a batch can take it; the others retry.
            answers.append(ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT)
        elif found[1] == "in_flight":
            answers.append(ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT)
        else:
            answers.append((ClaimOutcome.REPLAY, found[2]))
    return answers


def _answer(result: records.KeyResult) -> object:
    if isinstance(result, LedgerError):
        return result.code
    if isinstance(result, Claim):
        return (
            result.outcome
            if result.outcome is ClaimOutcome.CLAIMED
            else (
                result.outcome,
                result.status,
            )
        )
    return None


async def test_random_batches_answer_like_the_sequential_model(cluster: ShardCluster) -> None:
    """200 random scenarios of claims, completions and releases over 3 keys and 2 request
    bodies, cut into random batches: every answer and the final records match the model."""
    rng = random.Random(20_261_125)
    async with cluster.shards[3].pool.acquire() as conn:
        for _ in range(200):
            owner = f"key_{ULID()}"
            state: dict[str, tuple[str, str, int | None]] = {}
            for _ in range(rng.randint(1, 5)):
                batch: list[records.KeyOperation] = []
                for _ in range(rng.randint(1, 6)):
                    key, body = rng.choice("abc"), rng.choice(["h1", "h2"])
                    kind = rng.random()
                    if kind < 0.6:
                        batch.append(KeyClaim(owner, key, body))
                    elif kind < 0.85:
                        # One completion per key and batch: only the claim's winner completes.
                        if all(not (isinstance(o, KeyCompletion) and o.key == key) for o in batch):
                            batch.append(KeyCompletion(owner, key, rng.choice([200, 201]), b"{}"))
                    else:
                        batch.append(KeyRelease(owner, key))
                expected = _model_batch(state, batch)
                got = [_answer(r) for r in await records.run_key_operations(conn, batch)]
                assert got == expected, batch
            rows = await conn.fetch(
                "select key, request_hash, state, response_status from idempotency_keys"
                " where api_key_id = $1",
                owner,
            )
            # A released record is in flight with its lease over.
            assert {
                r["key"]: (r["request_hash"], r["state"], r["response_status"]) for r in rows
            } == {
                k: (h, "in_flight" if st == "released" else st, c)
                for k, (h, st, c) in state.items()
            }
