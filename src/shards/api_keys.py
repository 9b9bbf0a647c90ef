"""API keys, stored hashed on shard 0 (the catalog). A key belongs to one tenant."""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from shards.db import Connection
from shards.ids import new_api_key


def hash_api_key(secret: str) -> str:
    """SHA-256 of the secret; keys are high-entropy, so a fast hash is enough."""
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_api_key(
    conn: Connection, *, tenant_id: str, secret: str | None = None
) -> tuple[str, str]:
    """Store a new key for `tenant_id`; returns (key id, secret). The secret is not kept.

    Given a `secret` (a bootstrap key from the environment), stores that one if absent.
    """
    key_id, generated = new_api_key()
    secret = secret or generated
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
