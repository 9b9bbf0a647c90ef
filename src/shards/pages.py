"""Keyset pages: the one cursor query behind every list endpoint."""

import asyncpg

from shards.db import Connection


async def fetch_page(
    conn: Connection,
    *,
    select: str,
    key: str,
    owner: object,
    after: object | None,
    before: object | None,
    limit: int,
) -> list[asyncpg.Record]:
    """Up to `limit` rows of `select` past a cursor on the `key` column.

    `select` is static SQL ending in a filter on `$1` (the owner: a tenant or an account).
    Rows come newest first; with `before` they come oldest first, the ones closest to the
    cursor, so the caller can take and reverse them.
    """
    assert after is None or before is None
    if before is not None:
        return await conn.fetch(
            f"{select} and {key} > $2 order by {key} asc limit $3", owner, before, limit
        )
    if after is not None:
        return await conn.fetch(
            f"{select} and {key} < $2 order by {key} desc limit $3", owner, after, limit
        )
    return await conn.fetch(f"{select} order by {key} desc limit $2", owner, limit)
