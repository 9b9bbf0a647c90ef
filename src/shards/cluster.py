"""The set of shards one process talks to: one asyncpg pool per shard and the shard map;
and the ids of new transfers, which name the slot (so the shard) that holds them."""

import asyncio
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolAcquireContext

from ledger import ids, limits
from ledger.errors import ErrorCode, LedgerError
from ledger.ids import ShardMap, even_shard_map, transfer_slot
from shards.db import Connection

SHARD_MAP_KEY = "shard_map"
SHARD_INDEX_KEY = "shard_index"


async def _init_connection(conn: Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    # Account totals are numeric (migration 0002) and always whole: Python ints, not Decimal.
    await conn.set_type_codec(
        "numeric", encoder=str, decoder=int, schema="pg_catalog", format="text"
    )


async def _keep_session(_: Connection) -> None:
    """Skip asyncpg's reset query on release.

    Ledgerflow never changes session state (no SET, LISTEN, cursors or session advisory
    locks), so the default `RESET ALL; UNLISTEN *; ...` would only add a round trip to every
    request. asyncpg still rolls back any transaction left open before calling this.
    """


SHARD_FAILURES: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.TransactionRollbackError,
    # A primary that was demoted in a failover refuses writes until clients reconnect to
    # the new one: an outage that passes, not a bug.
    asyncpg.exceptions.ReadOnlySQLTransactionError,
)
"""What a shard that is down, restarting, overloaded or contended raises: transient, so
a caller may retry (`shard_unavailable`). Other database errors are bugs, not outages."""


class ShardMapError(RuntimeError):
    """The configured shards do not match the shard map stored with the data (a DSN list
    out of order, a shard missing or added, or a slot move left half done). Nothing is
    routed until it is fixed: a wrong route would put accounts where no one finds them."""


@dataclass(slots=True)
class Shard:
    """One PostgreSQL instance and its pool."""

    index: int
    dsn: str
    pool: asyncpg.Pool

    def connection(self) -> PoolAcquireContext:
        """A connection from the pool, waited for at most `POOL_ACQUIRE_TIMEOUT_S`.

        Every caller takes connections this way, so a shard that hangs (a partition: it
        accepts nothing and answers nothing) costs a caller a bounded wait and then a
        `TimeoutError`, one of `SHARD_FAILURES`, instead of a request that never ends.
        """
        return self.pool.acquire(timeout=limits.POOL_ACQUIRE_TIMEOUT_S)

    async def answers(self, *, timeout_s: float) -> bool:
        """Whether the shard answers a trivial query within `timeout_s` (for health)."""
        try:
            async with asyncio.timeout(timeout_s), self.connection() as conn:
                await conn.fetchval("select 1")
        except SHARD_FAILURES:
            return False
        return True


class ShardCluster:
    """Pools for every shard plus the shard map that routes ids to them."""

    def __init__(
        self,
        shards: Sequence[Shard],
        shard_map: ShardMap,
        *,
        unreachable: frozenset[int] = frozenset(),
    ) -> None:
        assert len(shards) == shard_map.shard_count, "the shard map and the DSN list disagree"
        assert [s.index for s in shards] == list(range(len(shards)))
        assert len(unreachable) < len(shards)
        self.shards = list(shards)
        self.shard_map = shard_map
        self.unreachable = unreachable
        """Shards that did not answer when an operator's tool connected
        (`connect(reachable_only=True)`); their reports skip them and say so."""

    @property
    def reachable(self) -> list[Shard]:
        """The shards that answered (every shard but `unreachable`)."""
        return [s for s in self.shards if s.index not in self.unreachable]

    @classmethod
    async def connect(
        cls,
        dsns: Sequence[str],
        *,
        pool_size_max: int = limits.POOL_SIZE_DEFAULT,
        pool_size_min: int = 1,
        statement_timeout_ms: int = limits.STATEMENT_TIMEOUT_MS,
        reachable_only: bool = False,
    ) -> "ShardCluster":
        """Open one pool per shard and load the shard map stored with the data.

        Each statement has `statement_timeout_ms` on the shard and a second more on the
        client, which is what ends a wait on a shard that answers nothing at all.

        With `reachable_only` (an operator's report on the bad day) a shard that does not
        answer is left out and named in `unreachable`; the shard map comes from the others.

        Raises:
            LedgerError(shard_unavailable): a shard could not be reached (with
                `reachable_only`: none could).
            ShardMapError: the DSNs do not match the stored shard map (a misconfiguration).
        """
        assert 1 <= len(dsns) <= limits.SHARD_COUNT_MAX
        assert 1 <= pool_size_max <= limits.POOL_SIZE_MAX
        assert limits.LOCK_TIMEOUT_MS < statement_timeout_ms <= limits.REPORT_STATEMENT_TIMEOUT_MS
        if reachable_only:
            return await cls._connect_reachable(
                dsns, pool_size_max=pool_size_max, statement_timeout_ms=statement_timeout_ms
            )
        shards: list[Shard] = []
        try:
            for index, dsn in enumerate(dsns):
                pool = await _pool(
                    dsn,
                    size_min=min(pool_size_min, pool_size_max),
                    size_max=pool_size_max,
                    timeout_ms=statement_timeout_ms,
                )
                shards.append(Shard(index=index, dsn=dsn, pool=pool))
        except (OSError, asyncpg.PostgresError) as error:
            for shard in shards:
                await shard.pool.close()
            raise LedgerError(
                ErrorCode.SHARD_UNAVAILABLE, f"shard {len(shards)} is unreachable: {error}"
            ) from error
        try:
            shard_map = await load_shard_map(shards)
            if shard_map.shard_count != len(shards):
                raise ShardMapError(
                    f"the shard map names {shard_map.shard_count} shards but "
                    f"{len(shards)} DSNs are configured; adding or removing a shard needs a "
                    "slot move, which Ledgerflow does not do yet"
                )
        except BaseException:
            for shard in shards:
                await shard.pool.close()
            raise
        return cls(shards, shard_map)

    @classmethod
    async def _connect_reachable(
        cls, dsns: Sequence[str], *, pool_size_max: int, statement_timeout_ms: int
    ) -> "ShardCluster":
        """`connect` leaving out the shards that do not answer (pools open lazily)."""
        shards = [
            Shard(
                index=index,
                dsn=dsn,
                pool=await _pool(
                    dsn, size_min=0, size_max=pool_size_max, timeout_ms=statement_timeout_ms
                ),
            )
            for index, dsn in enumerate(dsns)
        ]
        answered = await asyncio.gather(
            *(s.answers(timeout_s=limits.CONNECT_TIMEOUT_S) for s in shards)
        )
        unreachable = frozenset(s.index for s, up in zip(shards, answered, strict=True) if not up)
        try:
            if len(unreachable) == len(shards):
                raise LedgerError(ErrorCode.SHARD_UNAVAILABLE, "no shard could be reached")
            shard_map = await load_shard_map([s for s in shards if s.index not in unreachable])
            if shard_map.shard_count != len(shards):
                raise ShardMapError(
                    f"the shard map names {shard_map.shard_count} shards but "
                    f"{len(shards)} DSNs are configured"
                )
        except BaseException:
            for shard in shards:
                await shard.pool.close()
            raise
        return cls(shards, shard_map, unreachable=unreachable)

    async def close(self) -> None:
        """Close every pool."""
        for shard in self.shards:
            await shard.pool.close()

    def shard_of(self, entity_id: str) -> Shard:
        """The shard that stores an account (and the transfers it debits)."""
        return self.shards[self.shard_map.shard_for(entity_id)]

    def shard_of_transfer(self, transfer_id: str) -> Shard:
        """The shard that stores a transfer: the one serving the slot its id names."""
        return self.shards[self.shard_map.shard_for_slot(transfer_slot(transfer_id))]

    def pool_usage(self) -> list[tuple[int, int, int]]:
        """(shard, connections in use, pool size) for every shard, for metrics."""
        return [
            (s.index, s.pool.get_size() - s.pool.get_idle_size(), s.pool.get_size())
            for s in self.shards
        ]


async def _pool(dsn: str, *, size_min: int, size_max: int, timeout_ms: int) -> asyncpg.Pool:
    """A shard's pool: `size_min` connections opened now (none: opened on first use)."""
    return await asyncpg.create_pool(
        dsn,
        min_size=size_min,
        max_size=size_max,
        init=_init_connection,
        reset=_keep_session,
        timeout=limits.CONNECT_TIMEOUT_S,
        command_timeout=timeout_ms / 1000 + limits.COMMAND_TIMEOUT_MARGIN_S,
        server_settings={
            "lock_timeout": str(limits.LOCK_TIMEOUT_MS),
            "statement_timeout": str(timeout_ms),
            "application_name": "ledgerflow",
        },
    )


async def load_shard_map(shards: Sequence[Shard]) -> ShardMap:
    """Read the shard map every shard stores, and check they agree with each other."""
    maps: list[ShardMap] = []
    for shard in shards:
        async with shard.connection() as conn:
            rows = await conn.fetch(
                "select key, value from shard_meta where key = any($1::text[])",
                [SHARD_MAP_KEY, SHARD_INDEX_KEY],
            )
        values = {r["key"]: r["value"] for r in rows}
        if values.get(SHARD_INDEX_KEY) != shard.index:
            raise ShardMapError(
                f"the database at shard position {shard.index} says it is shard "
                f"{values.get(SHARD_INDEX_KEY)}; the DSN list is out of order or not migrated"
            )
        maps.append(ShardMap.from_json(values[SHARD_MAP_KEY]))
    if any(m != maps[0] for m in maps):
        raise ShardMapError(
            "the shards disagree about the shard map (a shard was added or a slot move is half "
            "done); Ledgerflow routes nothing until they agree"
        )
    return maps[0]


async def store_shard_map(conn: Connection, *, shard_index: int, shard_count: int) -> None:
    """Write the initial shard map and this shard's index, unless already there."""
    shard_map = even_shard_map(shard_count)
    await conn.execute(
        "insert into shard_meta (key, value) values ($1, $2), ($3, $4) on conflict do nothing",
        SHARD_MAP_KEY,
        shard_map.to_json(),
        SHARD_INDEX_KEY,
        shard_index,
    )
    stored = await conn.fetchval("select value from shard_meta where key = $1", SHARD_INDEX_KEY)
    if stored != shard_index:
        raise ShardMapError(f"database already holds shard {stored}, not shard {shard_index}")


def new_transfer_id(slot: int) -> str:
    """A fresh id, made now, for a transfer that lives in `slot` (its debit account's)."""
    millis = time.time_ns() // 1_000_000
    return ids.transfer_id(slot, millis, secrets.token_bytes(ids.ENTROPY_BYTES))


def transfer_id_for(operation_key: str, first_seen_at: datetime, slot: int) -> str:
    """The id of the transfer an idempotent request makes in `slot`: the same for every
    attempt of the request (drawn from its operation key and when it was first seen), so
    a retry names the transfer the first attempt started."""
    millis = int(first_seen_at.timestamp() * 1000)
    return ids.transfer_id(slot, millis, ids.key_entropy(operation_key))


Row = TypeVar("Row")


async def oldest_first(
    cluster: ShardCluster,
    read: Callable[[Shard], Awaitable[list[Row]]],
    *,
    key: Callable[[Row], Any],
    limit: int,
) -> list[Row]:
    """`read` on every reachable shard at once, merged by `key` (oldest first) and cut to
    `limit`: when each shard answers its own oldest `limit`, these are the cluster's (the
    operators' lists: stuck transfers, open follow-ups, reviews), of the shards that
    answered when the tool connected (`ShardCluster.unreachable` names the others).

    Raises:
        asyncpg.PostgresError, `SHARD_FAILURES`: a shard failed.
    """
    found = await asyncio.gather(*(read(shard) for shard in cluster.reachable))
    return sorted((row for rows in found for row in rows), key=key)[:limit]
