"""A DSN list that does not match the shard map stored with the data routes nothing."""

import asyncpg
import pytest
from ulid import ULID

from shards.cluster import ShardCluster, ShardMapError
from shards.migrate import migrate_all
from tests.integration.helpers import run_ledgerflow


async def test_dsns_out_of_order_or_missing_are_refused(shard_dsns: list[str]) -> None:
    """Swapped DSNs, or one left out, are refused at connect with what is wrong."""
    swapped = [shard_dsns[1], shard_dsns[0], *shard_dsns[2:]]
    with pytest.raises(ShardMapError, match="says it is shard 1"):
        await ShardCluster.connect(swapped, pool_size_max=1)
    with pytest.raises(ShardMapError, match=f"names {len(shard_dsns)} shards but"):
        await ShardCluster.connect(shard_dsns[:-1], pool_size_max=1)


async def test_migrate_refuses_to_add_a_shard_without_a_slot_move(shard_dsns: list[str]) -> None:
    """Migrating with one DSN more than the stored map names changes nothing anywhere: the
    new database is left untouched and the cluster still connects as before."""
    name = f"extra_{str(ULID()).lower()}"
    admin = await asyncpg.connect(shard_dsns[0])
    try:
        await admin.execute(f"create database {name}")
        extra = shard_dsns[0].rsplit("/", 1)[0] + f"/{name}"
        with pytest.raises(ShardMapError, match="needs a slot move"):
            await migrate_all([*shard_dsns, extra])
        fresh = await asyncpg.connect(extra)
        try:
            assert await fresh.fetchval("select to_regclass('shard_meta')") is None
        finally:
            await fresh.close()
        cluster = await ShardCluster.connect(shard_dsns, pool_size_max=1)
        await cluster.close()
    finally:
        await admin.execute(f"drop database if exists {name} with (force)")
        await admin.close()


async def test_the_cli_names_the_misconfiguration_in_one_line(shard_dsns: list[str]) -> None:
    """`ledgerflow verify` with swapped DSNs exits 2 with one line, not a traceback."""
    swapped = [shard_dsns[1], shard_dsns[0], *shard_dsns[2:]]
    code, out, err = await run_ledgerflow(swapped, "verify")
    output = out + err
    assert code == 2, output
    assert "says it is shard 1" in output
    assert "Traceback" not in output
