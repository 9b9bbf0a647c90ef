"""API keys, stored hashed. A key belongs to one tenant.

Shard 0 holds the catalog of record, and every other shard a copy of it, so that
authentication survives shard 0 being down: a key is written to shard 0 first, then copied
to the others (`ApiKeyCatalog`); a lookup asks shard 0 and, only when it fails, the others.
`ledgerflow migrate` copies keys made before the copies existed.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from ulid import ULID

from ledger.tenants import check_tenant_name
from shards.cluster import SHARD_FAILURES, ShardCluster
from shards.db import Connection, Record

CATALOG_SHARD = 0
"""The shard whose `api_keys` table is the record; the others hold copies."""


def hash_api_key(secret: str) -> str:
    """SHA-256 of the secret; keys are high-entropy, so a fast hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(
    conn: Connection, *, tenant_id: str, secret: str | None = None
) -> tuple[str, str]:
    """Store a new key for `tenant_id`; returns (key id, secret). The secret is not kept.

    Given a `secret` (a bootstrap key from the environment), stores that one if absent.

    Raises:
        LedgerError(invalid_request): the tenant name is malformed or reserved for the system.
    """
    check_tenant_name(tenant_id)
    key_id = f"key_{ULID()}"
    secret = secret or f"lf_sk_{secrets.token_urlsafe(32)}"
    row = await conn.fetchrow(
        "insert into api_keys (id, tenant_id, key_hash) values ($1, $2, $3)"
        " on conflict (key_hash) do update set tenant_id = api_keys.tenant_id"
        " returning id",
        key_id,
        tenant_id,
        hash_api_key(secret),
    )
    assert row is not None
    return row["id"], secret


async def find_api_key(conn: Connection, secret: str) -> tuple[str, str] | None:
    """(key id, tenant) for a live key, or None."""
    row = await conn.fetchrow(
        "select id, tenant_id from api_keys where key_hash = $1 and revoked_at is null",
        hash_api_key(secret),
    )
    return None if row is None else (row["id"], row["tenant_id"])


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """A stored key, without its secret (which is never kept)."""

    id: str
    tenant_id: str
    created_at: datetime
    revoked_at: datetime | None


async def list_api_keys(conn: Connection, *, tenant_id: str) -> list[ApiKeyRecord]:
    """The tenant's keys, newest first, revoked ones included."""
    rows = await conn.fetch(
        "select id, tenant_id, created_at, revoked_at from api_keys where tenant_id = $1"
        " order by created_at desc, id desc",
        tenant_id,
    )
    return [ApiKeyRecord(**dict(r)) for r in rows]


async def revoke_api_key(conn: Connection, key_id: str) -> ApiKeyRecord | None:
    """Revoke a key (idempotent: a revoked key keeps its first revocation time); None
    when there is no such key. API processes stop accepting it within their cache TTL."""
    row = await conn.fetchrow(
        "update api_keys set revoked_at = coalesce(revoked_at, now()) where id = $1"
        " returning id, tenant_id, created_at, revoked_at",
        key_id,
    )
    return None if row is None else ApiKeyRecord(**dict(row))


_COPY_KEYS = """
insert into api_keys (id, tenant_id, key_hash, created_at, revoked_at)
select * from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
on conflict (id) do update set revoked_at = coalesce(api_keys.revoked_at, excluded.revoked_at)
"""


async def fetch_key_rows(conn: Connection, key_ids: list[str] | None = None) -> list[Record]:
    """Every stored key (or those of `key_ids`), secrets' hashes and revocations included."""
    return await conn.fetch(
        "select id, tenant_id, key_hash, created_at, revoked_at from api_keys"
        " where $1::text[] is null or id = any($1::text[]) order by id",
        key_ids,
    )


async def store_key_copies(conn: Connection, rows: list[Record]) -> None:
    """Write copies of the catalog's `rows` on another shard; a revocation is never undone."""
    await conn.execute(
        _COPY_KEYS,
        *([r[c] for r in rows] for c in ("id", "tenant_id", "key_hash", "created_at")),
        [r["revoked_at"] for r in rows],
    )


class ApiKeyCatalog:
    """The API keys of a cluster: written to the catalog shard, then to every other."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster

    async def create(self, *, tenant_id: str, secret: str | None = None) -> tuple[str, str]:
        """Store a new key (or the bootstrap `secret`) on every shard; returns (id, secret).

        Raises:
            LedgerError(invalid_request): the tenant name is malformed or reserved.
            asyncpg.PostgresError, OSError, TimeoutError: a shard failed; the key may be
                stored on some shards, and its secret is not returned, so it is never used.
        """
        async with self._cluster.shards[CATALOG_SHARD].connection() as conn:
            key_id, secret = await create_api_key(conn, tenant_id=tenant_id, secret=secret)
        await self.copy(key_ids=[key_id])
        return key_id, secret

    async def revoke(self, key_id: str) -> ApiKeyRecord | None:
        """Revoke a key on every shard; None when there is no such key.

        Raises:
            asyncpg.PostgresError, OSError, TimeoutError: a shard failed before every copy
                was revoked; running the revocation again finishes it.
        """
        async with self._cluster.shards[CATALOG_SHARD].connection() as conn:
            revoked = await revoke_api_key(conn, key_id)
        if revoked is not None:
            await self.copy(key_ids=[key_id])
        return revoked

    async def copy(self, *, key_ids: list[str] | None = None) -> int:
        """Copy keys (all of them, or `key_ids`) from the catalog shard to every other
        shard, revocations included; returns how many keys were copied."""
        async with self._cluster.shards[CATALOG_SHARD].connection() as conn:
            rows = await fetch_key_rows(conn, key_ids)
        for shard in self._cluster.shards[CATALOG_SHARD + 1 :]:
            async with shard.connection() as conn:
                await store_key_copies(conn, rows)
        return len(rows)

    async def list(self, *, tenant_id: str) -> list[ApiKeyRecord]:
        """The tenant's keys, newest first, revoked ones included (from the catalog)."""
        async with self._cluster.shards[CATALOG_SHARD].connection() as conn:
            return await list_api_keys(conn, tenant_id=tenant_id)

    async def find(self, secret: str) -> tuple[str, str] | None:
        """(key id, tenant) for a live key, or None; asks the other shards only when the
        catalog shard fails.

        Raises:
            asyncpg.PostgresError, OSError, TimeoutError: every shard failed.
        """
        failure: BaseException | None = None
        for shard in self._cluster.shards:
            try:
                async with shard.connection() as conn:
                    return await find_api_key(conn, secret)
            except SHARD_FAILURES as error:
                failure = error
        assert failure is not None
        raise failure
