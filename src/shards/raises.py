"""Increments of holds across shards: the raise is reserved on the payee's shard first.

An increment of a hold across shards takes more from the payer's shard and shows more
pending on the payee's. What the payee's shard accepts is decided before the payer's
commits, and cannot change afterwards:
1. the destination reserves the raise (`Movement.RAISE_CREDIT`, more pending credit,
   checked like any credit under the payee's lock, in its group commit) under
   `shards.posting_types.raise_key(K)`, and records it in `raise_reservations` in the same
   transaction;
2. the source applies the increment under K (`INCREASE_ACROSS`), carrying the
   destination's refusal if there was one, so it answers in `REFUSAL_ORDER`;
3. the reservation is settled: kept when the source held the increment, voided
   (`VOID_CREDIT`, keyed `void_key(K)`) when it refused it.

Each step is keyed, so a retry of the request replays each one and settles the same way.
A crash between the steps leaves the reservation open; the destination's funds timers
settle it once it is older than any request lives (`settle_open_raises`): they decide the
source's key K, claiming it refused when the source never took it (a late request under K
is then refused, and voids its own raise), and settle from that decision.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from ledger.errors import ErrorCode, LedgerError
from ledger.posting import Movement
from shards.cluster import Shard, ShardCluster
from shards.db import Record
from shards.posting import post_batch_on
from shards.posting_types import PostingRequest, movement_of, replayed_result, result_json

log = structlog.get_logger("ledgerflow.shards")

ABANDONED = LedgerError(
    ErrorCode.SETTLEMENT_FAILED,
    "the increment was interrupted before the payer's shard took it, and was abandoned;"
    " nothing moved: send a new increment",
)
"""What the source's key of an increment left open by a crash is claimed with."""


def void_key(operation_key: str) -> str:
    """The key of the void of a raise whose increment (keyed `operation_key`) the source
    refused."""
    return f"{operation_key}:raise:{Movement.VOID_CREDIT}"


def _void(reservation: Record) -> PostingRequest:
    """The void of the raise `reservation` (a row of `raise_reservations`, its transfer id
    also as `id`)."""
    return movement_of(
        reservation,
        Movement.VOID_CREDIT,
        operation_key=void_key(reservation["operation_key"]),
        amount=reservation["amount"],
    )


async def settle_raise(destination: Shard, operation_key: str, *, kept: bool) -> None:
    """Settle the raise reserved for the increment keyed `operation_key` once its source
    decided: keep it, or void it. Settling twice (a retry, the timers racing the API)
    changes nothing more.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: the destination failed; the
            reservation stays open for the funds timers.
    """
    async with destination.connection() as conn:
        row = await conn.fetchrow(
            "select *, transfer_id as id from raise_reservations where operation_key = $1",
            operation_key,
        )
    if row is None or row["settled_at"] is not None:
        return
    if not kept:
        (result,) = await post_batch_on(destination, [_void(row)])
        assert result.error is None, f"voiding a reserved raise was refused: {result.error}"
    async with destination.connection() as conn:
        await conn.execute(
            "update raise_reservations set settled_at = clock_timestamp(), kept = $2"
            " where operation_key = $1 and settled_at is null",
            operation_key,
            kept,
        )


_OPEN = """select operation_key, transfer_id, source_shard from raise_reservations
where settled_at is null and created_at < $1 order by created_at limit $2"""


@dataclass(frozen=True, slots=True)
class RaisePass:
    """What one pass settled: raises kept, and raises voided."""

    kept: int
    voided: int


async def settle_open_raises(
    cluster: ShardCluster, destination: int, *, older_than_s: float, limit: int
) -> RaisePass:
    """Settle up to `limit` raises reserved on `destination` more than `older_than_s` ago
    and still open (their request crashed, or the destination failed as they settled): the
    source's key of each is decided (claimed refused with `ABANDONED` if the source never
    took it), then each is kept or voided from that decision.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: a shard failed; what was
            settled stays settled, the rest stays open.
    """
    assert older_than_s >= 0
    shard = cluster.shards[destination]
    async with shard.connection() as conn:
        # The bound as a parameter, read from the shard's clock first: an index range.
        before = await conn.fetchval(
            "select clock_timestamp() - make_interval(secs => $1)", older_than_s
        )
        rows: Sequence[Record] = await conn.fetch(_OPEN, before, limit)
    by_source: dict[int, list[Record]] = defaultdict(list)
    for row in rows:
        by_source[row["source_shard"]].append(row)
    kept = voided = 0
    for source, open_rows in sorted(by_source.items()):
        decided = await _decide(cluster.shards[source], open_rows)
        for key, took in sorted(decided.items()):
            await settle_raise(shard, key, kept=took)
            kept, voided = kept + took, voided + (not took)
            if not took:
                log.warning("reserved raise voided", operation_key=key, shard=destination)
    return RaisePass(kept=kept, voided=voided)


async def _decide(source: Shard, rows: Sequence[Record]) -> dict[str, bool]:
    """Whether the source took each increment: its key is claimed `ABANDONED` first when it
    holds none (waiting out a transaction that holds it), then read."""
    keys = [r["operation_key"] for r in rows]
    async with source.connection() as conn, conn.transaction():
        await conn.execute(
            "insert into operations (key, transfer_id, result)"
            " select k, t, $3::text::jsonb from unnest($1::text[], $2::text[]) as u(k, t)"
            " order by k on conflict do nothing",
            keys,
            [r["transfer_id"] for r in rows],
            result_json(ABANDONED),
        )
        stored = await conn.fetch(
            "select key, transfer_id, result from operations where key = any($1::text[])", keys
        )
    return {
        r["key"]: replayed_result(r["key"], r["transfer_id"], r["result"]).error is None
        for r in stored
    }
