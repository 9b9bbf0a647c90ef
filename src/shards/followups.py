"""Follow-ups: what a change on a transfer's source shard owes its destination shard.

A hold across shards keeps its money held on the source shard and shows it pending on the
destination. A capture, a void or the expiry changes the source in one transaction, and in
that same transaction records, as rows of `remote_postings`, the movements the destination
owes: `POST_CREDIT` for what was captured, `VOID_CREDIT` for what was released. A delayed
credit across shards, once due, records its `POST_CREDIT` the same way. None of these is
ever refused on the destination: each only finishes money the destination already shows
pending, so the source decided, and the destination only follows. (An increment owes
nothing: the destination reserved its raise before the source held more, `shards.raises`.)

`apply_followups` posts the open rows on their destinations through the posting path under
each row's operation key, so a row applied twice (the API and the funds timers racing, a
crash before the row was marked) moves money once, then marks them applied. A row the
destination refuses all the same (a bug, or a race the source's checks could not see)
stays open with its refusal, logged and counted by `verify`, and goes to the back of the
line, so it never holds up the follow-ups of other transfers. The API applies
a change's rows as soon as it committed; each shard's funds timers apply whatever is left
(`workflows.funds_timers`), so a crash in between delays a follow-up, never loses it.
"""

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import structlog

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import POSTING_BATCH_SIZE_MAX, STUCK_TRANSFERS_LIMIT_MAX
from ledger.posting import Movement
from shards.cluster import SHARD_FAILURES, Shard, ShardCluster, oldest_first
from shards.db import Connection, Record
from shards.events import mark_available
from shards.posting import post_batch_on
from shards.posting_types import PostingRequest, PostingResult, movement_of

log = structlog.get_logger("ledgerflow.shards")

FOLLOWING_MOVEMENTS = frozenset({Movement.POST_CREDIT, Movement.VOID_CREDIT})
"""What a destination shard is told to do; each is never refused there."""

AVAILABLE_KEY_PREFIX = "available:"
"""The operation keys of delayed credits' follow-ups (`available:<transfer id>`)."""

_COLUMNS = (
    "operation_key, transfer_id, tenant_id, movement, debit_account_id, credit_account_id,"
    " amount, currency, source_shard, destination_shard"
)


def followup(
    transfer: Record, movement: Movement, *, operation_key: str, amount: int
) -> PostingRequest:
    """The movement `movement` the destination of `transfer` (a row of its source shard)
    owes, keyed `operation_key:movement`."""
    assert movement in FOLLOWING_MOVEMENTS
    return movement_of(
        transfer, movement, operation_key=f"{operation_key}:{movement}", amount=amount
    )


async def record_followups(conn: Connection, requests: Sequence[PostingRequest]) -> None:
    """Record follow-ups in the caller's transaction on the source shard; a follow-up
    recorded before (the same operation key) is left as it was."""
    assert conn.is_in_transaction()
    if not requests:
        return
    assert all(r.movement in FOLLOWING_MOVEMENTS for r in requests)
    await conn.execute(
        f"insert into remote_postings ({_COLUMNS})"
        " select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],"
        " $6::text[], $7::bigint[], $8::text[], $9::int[], $10::int[])"
        " on conflict (operation_key) do nothing",
        [r.operation_key for r in requests],
        [r.transfer_id for r in requests],
        [r.tenant_id for r in requests],
        [str(r.movement) for r in requests],
        [r.debit_account_id for r in requests],
        [r.credit_account_id for r in requests],
        [r.amount for r in requests],
        [r.currency for r in requests],
        [r.source_shard for r in requests],
        [r.destination_shard for r in requests],
    )


def _request(row: Record) -> PostingRequest:
    return PostingRequest(
        operation_key=row["operation_key"],
        transfer_id=row["transfer_id"],
        tenant_id=row["tenant_id"],
        movement=Movement(row["movement"]),
        debit_account_id=row["debit_account_id"],
        credit_account_id=row["credit_account_id"],
        amount=row["amount"],
        currency=row["currency"].strip(),
        source_shard=row["source_shard"],
        destination_shard=row["destination_shard"],
    )


@dataclass(frozen=True, slots=True)
class FollowupPass:
    """What one pass applied, and whether open follow-ups were left for the next."""

    applied: int
    more_open: bool


async def apply_followups(
    cluster: ShardCluster,
    source: int,
    *,
    transfer_ids: Sequence[str] | None = None,
    limit: int = POSTING_BATCH_SIZE_MAX,
) -> FollowupPass:
    """Apply up to `limit` open follow-ups of `source` (only those of `transfer_ids` when
    given), oldest first: one posting batch per destination, then mark them applied.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: a shard failed; what was
            applied stays applied, what was not stays open, and either is safe to retry.
    """
    assert 0 < limit <= POSTING_BATCH_SIZE_MAX
    # Behind a refused follow-up its transfer's later ones wait (a capture must not run
    # ahead of the increment it takes from).
    query = f"""select {_COLUMNS} from remote_postings f where applied_at is null
    and not exists (select 1 from remote_postings r
                    where r.transfer_id = f.transfer_id and r.applied_at is null
                      and r.refused_at is not null and r.created_at < f.created_at)"""
    # A transfer's follow-ups apply in the order they were recorded (an increment before the
    # capture that takes it); refused ones wait behind everything else.
    order = "order by coalesce(refused_at, created_at), created_at limit $1"
    async with cluster.shards[source].connection() as conn:
        if transfer_ids is None:
            rows = await conn.fetch(f"{query} {order}", limit)
        else:
            rows = await conn.fetch(
                f"{query} and transfer_id = any($2::text[]) {order}", limit, list(transfer_ids)
            )
    by_destination: dict[int, list[PostingRequest]] = defaultdict(list)
    for row in rows:
        by_destination[row["destination_shard"]].append(_request(row))
    applied: list[str] = []
    refused: list[PostingResult] = []
    for destination, requests in sorted(by_destination.items()):
        results = await _post_isolating(cluster.shards[destination], requests)
        applied.extend(r.operation_key for r in results if r.error is None)
        refused.extend(r for r in results if r.error is not None)
    if applied or refused:
        async with cluster.shards[source].connection() as conn, conn.transaction():
            marked = await conn.fetch(
                "update remote_postings set applied_at = clock_timestamp()"
                " where operation_key = any($1::text[]) and applied_at is null"
                " returning operation_key, transfer_id, movement",
                applied,
            )
            # A delayed credit is available once its destination made it so: its
            # `available_at` and `funds.available` follow the money, in this transaction.
            await mark_available(
                conn,
                [
                    r["transfer_id"]
                    for r in marked
                    if r["movement"] == Movement.POST_CREDIT
                    and r["operation_key"].startswith(AVAILABLE_KEY_PREFIX)
                ],
                shard=source,
            )
            await conn.execute(
                "update remote_postings set refused_at = clock_timestamp(), refusal = u.refusal"
                " from unnest($1::text[], $2::text[]) as u(key, refusal)"
                " where operation_key = u.key and applied_at is null",
                [r.operation_key for r in refused],
                [str(r.error) for r in refused],
            )
    for result in refused:
        log.error(
            "follow-up refused by its destination; it stays open",
            operation_key=result.operation_key,
            transfer_id=result.transfer_id,
            error=str(result.error),
        )
    return FollowupPass(applied=len(applied), more_open=len(rows) == limit and len(applied) > 0)


async def _post_isolating(shard: Shard, requests: list[PostingRequest]) -> list[PostingResult]:
    """Post follow-ups on their destination in one batch; when that raises something other
    than a shard failure (a bug, or a state no rule foresaw), post each on its own, and
    answer each that raises on its own as refused, so it stays open at the back of the line
    and the other follow-ups, of every tenant, still apply (as the saga isolates its posts).

    Raises:
        `shards.cluster.SHARD_FAILURES`: the destination failed; nothing was written there.
    """
    try:
        return await post_batch_on(shard, requests)
    except SHARD_FAILURES:
        raise
    except Exception as error:
        if len(requests) > 1:
            log.warning(
                "follow-up batch raised; applying one by one",
                shard=shard.index,
                size=len(requests),
                error=repr(error),
            )
    results: list[PostingResult] = []
    for request in requests:
        try:
            results.extend(await post_batch_on(shard, [request]))
        except SHARD_FAILURES:
            raise
        except Exception as error:
            log.exception(
                "follow-up raised on its destination; it stays open",
                operation_key=request.operation_key,
                shard=shard.index,
            )
            refusal = LedgerError(
                ErrorCode.SETTLEMENT_FAILED, f"raised on shard {shard.index}: {error!r}"
            )
            results.append(
                PostingResult(request.operation_key, request.transfer_id, refusal, replayed=False)
            )
    return results


@dataclass(frozen=True, slots=True)
class OpenFollowup:
    """A follow-up its destination shard has not applied yet: money that left the source
    (captured, made available) or was released there, not yet shown on the destination."""

    operation_key: str
    transfer_id: str
    movement: Movement
    amount: int
    currency: str
    source_shard: int
    destination_shard: int
    created_at: datetime
    refused_at: datetime | None
    """When the destination last refused it (None: not tried yet, or its shard failed)."""
    refusal: str | None


async def find_open_followups(
    cluster: ShardCluster, *, older_than_s: float, limit: int = STUCK_TRANSFERS_LIMIT_MAX
) -> list[OpenFollowup]:
    """Follow-ups recorded more than `older_than_s` ago and still not applied, on every
    shard, oldest first (`ledgerflow transfers stuck`). The funds timers apply an open one
    within seconds once its destination answers; one that stays open was refused (its
    `refusal` says why) or its destination shard is down.

    Raises:
        asyncpg.PostgresError, `shards.cluster.SHARD_FAILURES`: a shard failed.
    """
    assert older_than_s >= 0
    assert 0 < limit <= STUCK_TRANSFERS_LIMIT_MAX

    async def on_shard(shard: Shard) -> list[OpenFollowup]:
        async with shard.connection() as conn:
            rows = await conn.fetch(
                "select operation_key, transfer_id, movement, amount, currency, source_shard,"
                " destination_shard, created_at, refused_at, refusal from remote_postings"
                " where applied_at is null and created_at < now() - make_interval(secs => $1)"
                " order by created_at limit $2",
                older_than_s,
                limit,
            )
        return [
            OpenFollowup(
                operation_key=r["operation_key"],
                transfer_id=r["transfer_id"],
                movement=Movement(r["movement"]),
                amount=r["amount"],
                currency=r["currency"].strip(),
                source_shard=r["source_shard"],
                destination_shard=r["destination_shard"],
                created_at=r["created_at"],
                refused_at=r["refused_at"],
                refusal=r["refusal"],
            )
            for r in rows
        ]

    return await oldest_first(
        cluster, on_shard, key=lambda f: (f.created_at, f.operation_key), limit=limit
    )
