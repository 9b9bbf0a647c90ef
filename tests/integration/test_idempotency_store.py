"""The idempotency store under the API: claims, leases, expiry and purging."""

from ulid import ULID

from shards import idempotency as records
from shards.cluster import ShardCluster


async def test_claim_replay_reuse_and_expiry(cluster: ShardCluster) -> None:
    """A key is claimed once, replays once done, refuses another body, and is free again
    (and purged) once older than its 24 hours."""
    key_owner, key = f"key_{ULID()}", "k1"
    async with cluster.shards[0].pool.acquire() as conn:
        first = await records.claim_key(conn, api_key_id=key_owner, key=key, request_hash="h1")
        assert first.outcome is records.ClaimOutcome.CLAIMED
        await records.complete_key(conn, api_key_id=key_owner, key=key, status=201, body=b"{}")
        again = await records.claim_key(conn, api_key_id=key_owner, key=key, request_hash="h1")
        assert again == records.Claim(records.ClaimOutcome.REPLAY, 201, b"{}")

        await conn.execute(
            "update idempotency_keys set created_at = now() - interval '25 hours'"
            " where api_key_id = $1",
            key_owner,
        )
        reclaimed = await records.claim_key(conn, api_key_id=key_owner, key=key, request_hash="h2")
        assert reclaimed.outcome is records.ClaimOutcome.CLAIMED

        await conn.execute(
            "update idempotency_keys set created_at = now() - interval '25 hours'"
            " where api_key_id = $1",
            key_owner,
        )
        assert await records.purge_expired_keys(conn) >= 1
        left = await conn.fetchval(
            "select count(*) from idempotency_keys where api_key_id = $1", key_owner
        )
        assert left == 0


async def test_abandoned_in_flight_key_is_retried_after_its_lease(cluster: ShardCluster) -> None:
    """A key left in flight by a crashed process can be claimed again by the same request
    once its lease has expired (the operation log keeps the work exactly-once)."""
    key_owner, key = f"key_{ULID()}", "k2"
    async with cluster.shards[1].pool.acquire() as conn:
        await records.claim_key(conn, api_key_id=key_owner, key=key, request_hash="h")
        await conn.execute(
            "update idempotency_keys set locked_at = now() - interval '1 hour'"
            " where api_key_id = $1",
            key_owner,
        )
        retried = await records.claim_key(conn, api_key_id=key_owner, key=key, request_hash="h")
        assert retried.outcome is records.ClaimOutcome.CLAIMED
