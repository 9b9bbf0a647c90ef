"""Numbered SQL migrations, applied in order under an advisory lock, once each."""

from importlib import resources

import asyncpg

from ledger.ids import ShardMap
from shards.api_keys import CATALOG_SHARD, fetch_key_rows, store_key_copies
from shards.cluster import (
    SHARD_MAP_KEY,
    ShardMapError,
    _init_connection,
    store_shard_map,
)

_LOCK_ID = 0x1ED6E7F1  # any constant; serialises concurrent migrators on one shard


def migration_files() -> list[tuple[int, str, str]]:
    """(number, name, sql) of every bundled migration, in order.

    Numbers are unique but may have gaps: migrations written side by side reserve their
    numbers, and a database records each number it applied, so one that is merged later
    with a lower number is still applied, once. A migration may therefore rely only on
    migrations merged before it, not on every lower number.
    """
    folder = resources.files("shards") / "migrations"
    found = []
    for item in folder.iterdir():
        if item.name.endswith(".sql"):
            number = int(item.name.split("_", 1)[0])
            found.append((number, item.name, item.read_text()))
    found.sort()
    numbers = [n for n, _, _ in found]
    assert numbers[:1] == [1], "the first migration is number 1"
    assert len(set(numbers)) == len(numbers), f"two migrations share a number: {numbers}"
    return found


async def migrate_shard(dsn: str, *, shard_index: int, shard_count: int) -> list[str]:
    """Bring one shard's schema up to date and store the shard map; returns what was applied."""
    conn = await asyncpg.connect(dsn)
    try:
        await _init_connection(conn)
        applied: list[str] = []
        async with conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _LOCK_ID)
            await conn.execute(
                "create table if not exists schema_migrations ("
                " version integer primary key, name text not null,"
                " applied_at timestamptz not null default now())"
            )
            done = {r["version"] for r in await conn.fetch("select version from schema_migrations")}
            for number, name, sql in migration_files():
                if number in done:
                    continue
                await conn.execute(sql)
                await conn.execute(
                    "insert into schema_migrations (version, name) values ($1, $2)", number, name
                )
                applied.append(name)
            await store_shard_map(conn, shard_index=shard_index, shard_count=shard_count)
        return applied
    finally:
        await conn.close()


async def _stored_shard_count(dsn: str) -> int | None:
    """How many shards the map stored on this database names (None before the first run)."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("select to_regclass('shard_meta')") is None:
            return None
        await _init_connection(conn)
        stored = await conn.fetchval("select value from shard_meta where key = $1", SHARD_MAP_KEY)
        return None if stored is None else ShardMap.from_json(stored).shard_count
    finally:
        await conn.close()


async def migrate_all(dsns: list[str]) -> dict[int, list[str]]:
    """Migrate every shard; returns the migrations applied per shard.

    Raises:
        ShardMapError: a shard already stores a map for another number of shards (adding
            or removing a shard needs a slot move); nothing was changed.
    """
    for index, dsn in enumerate(dsns):
        count = await _stored_shard_count(dsn)
        if count is not None and count != len(dsns):
            raise ShardMapError(
                f"shard {index} stores a map of {count} shards but {len(dsns)} DSNs are "
                "configured; adding or removing a shard needs a slot move, which Ledgerflow "
                "does not do yet"
            )
    applied = {
        index: await migrate_shard(dsn, shard_index=index, shard_count=len(dsns))
        for index, dsn in enumerate(dsns)
    }
    await _copy_api_keys(dsns)
    return applied


async def _copy_api_keys(dsns: list[str]) -> None:
    """Copy the catalog's API keys to every other shard (`shards.api_keys`), so that keys
    made before the copies existed also authenticate while the catalog shard is down."""
    source = await asyncpg.connect(dsns[CATALOG_SHARD])
    try:
        rows = await fetch_key_rows(source)
    finally:
        await source.close()
    for dsn in dsns[CATALOG_SHARD + 1 :]:
        conn = await asyncpg.connect(dsn)
        try:
            await store_key_copies(conn, rows)
        finally:
            await conn.close()
