"""Numbered migrations are recorded once each, whatever numbers are skipped."""

import asyncpg

from shards.migrate import migrate_all, migration_files


async def test_every_bundled_migration_is_applied_once_in_order(shard_dsns: list[str]) -> None:
    """Each shard records every bundled migration number (numbers may skip: migrations
    written side by side reserve theirs), and a second run applies nothing. The outbox
    sweep's column is there."""
    numbers = [number for number, _, _ in migration_files()]
    assert numbers == sorted(set(numbers))
    assert numbers[0] == 1
    assert await migrate_all(shard_dsns) == {index: [] for index in range(len(shard_dsns))}
    for dsn in shard_dsns:
        conn = await asyncpg.connect(dsn)
        try:
            applied = await conn.fetch("select version from schema_migrations order by version")
            swept_at = await conn.fetchval(
                "select data_type from information_schema.columns"
                " where table_name = 'saga_outbox' and column_name = 'swept_at'"
            )
        finally:
            await conn.close()
        assert [r["version"] for r in applied] == numbers
        assert swept_at == "timestamp with time zone"
