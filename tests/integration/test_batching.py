"""The per-shard batcher under the group committer and the idempotency store."""

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest

from ledger.errors import ErrorCode, LedgerError
from shards.batching import ShardBatcher
from shards.cluster import ShardCluster


async def test_a_batch_that_raises_fails_its_callers_and_the_queue_drains_on(
    cluster: ShardCluster,
) -> None:
    """A runner bug, or a statement that is a bug, fails the callers of that batch with its
    error (never leaves them waiting); a shard outage is a transient shard_unavailable; a per-item
    LedgerError reaches that caller alone, and later items still run, concurrent ones in
    one batch."""
    seen: list[list[str]] = []

    async def run(conn: asyncpg.Connection, _: int, items: Sequence[str]) -> list[object]:
        seen.append(list(items))
        if "bug" in items:
            raise ValueError("a bug in the runner")
        if "outage" in items:
            raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
        if "database bug" in items:
            await conn.execute("select 1/0")
        return [
            LedgerError(ErrorCode.INVALID_REQUEST, "no") if item == "no" else item.upper()
            for item in items
        ]

    batcher: ShardBatcher[str, object] = ShardBatcher(
        cluster, run, what="test", batch_size_max=8, flushers_per_shard=1
    )
    with pytest.raises(ValueError, match="a bug"):
        await batcher.submit(0, "bug")
    with pytest.raises(LedgerError) as refused:
        await batcher.submit(0, "outage")
    assert refused.value.code is ErrorCode.SHARD_UNAVAILABLE
    assert refused.value.transient
    with pytest.raises(asyncpg.exceptions.DivisionByZeroError):
        await batcher.submit(0, "database bug")

    results = await asyncio.gather(
        *(batcher.submit(0, item) for item in ["a", "no", "b"]), return_exceptions=True
    )
    assert results[0] == "A"
    assert isinstance(results[1], LedgerError)
    assert results[1].code is ErrorCode.INVALID_REQUEST
    assert results[2] == "B"
    assert seen[-1] == ["a", "no", "b"], "concurrent submits share one batch"
    await batcher.close()


async def test_an_item_that_breaks_its_batch_fails_alone(cluster: ShardCluster) -> None:
    """When a batch raises (not a shard failure), its items run again one by one: the item
    that raises again fails its caller, and the others in that batch get their results."""
    seen: list[list[str]] = []

    async def run(_: asyncpg.Connection, __: int, items: Sequence[str]) -> list[object]:
        seen.append(list(items))
        if "poison" in items:
            raise ValueError("a bug in the runner")
        return [item.upper() for item in items]

    batcher: ShardBatcher[str, object] = ShardBatcher(
        cluster, run, what="test", batch_size_max=8, flushers_per_shard=1
    )
    results = await asyncio.gather(
        *(batcher.submit(1, item) for item in ["a", "poison", "b"]), return_exceptions=True
    )
    assert results[0] == "A"
    assert isinstance(results[1], ValueError)
    assert results[2] == "B"
    assert seen == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]
    await batcher.close()
