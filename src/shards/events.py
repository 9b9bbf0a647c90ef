"""The event feed: its reads, and the statement shape that writes an event with a change.

Events are written in the statement that makes the change they report: by the posting
statement (`shards.batch_writes`) for transfers that open or a saga finishes, and by
`reported` for changes of a transfer row made elsewhere (a hold's capture, void or expiry, a
delayed credit made available, a review's decision).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ledger.limits import EVENT_PURGE_BATCH_MAX
from ledger.transfers import EventType
from shards.db import Connection
from shards.pages import fetch_page
from shards.transfers import TransferRecord, transfer_from_json

_COLUMNS = "id, tenant_id, type, transfer_id, data, created_at"


def reported(update: str, *, event_type: str, shard: str) -> str:
    """A statement that runs `update` (an `update transfers ... returning` every column)
    and writes one event of `event_type` per row it changed, with the row as the change
    left it. `event_type` and `shard` are parameters of the statement (`"$3"`); a null
    type reports nothing, and the update runs all the same."""
    return f"""
with changed as ({update})
insert into events (id, tenant_id, type, transfer_id, data, created_at)
select event_id(now.at, {shard}::int), changed.tenant_id, {event_type}::text, changed.id,
       to_jsonb(changed), now.at
from changed, (select clock_timestamp() as at) as now
where {event_type}::text is not null
"""


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One change of a transfer, with the transfer as the change left it."""

    id: str
    type: EventType
    transfer: TransferRecord
    created_at: datetime


def _event(row: asyncpg.Record) -> EventRecord:
    return EventRecord(
        id=row["id"],
        type=EventType(row["type"]),
        transfer=transfer_from_json(row["data"]),
        created_at=row["created_at"],
    )


async def list_events(
    conn: Connection,
    *,
    tenant_id: str,
    event_type: EventType | None,
    after_id: str | None,
    before_id: str | None,
    limit: int,
) -> list[EventRecord]:
    """A page of the tenant's events on one shard, newest first (see `fetch_page`)."""
    select = f"select {_COLUMNS} from events where"
    if event_type is not None:
        # A member of the closed EventType set, spelled into the statement so that the
        # (tenant_id, type, id) index serves it; never text from a request.
        select += f" type = '{EventType(event_type)}' and"
    rows = await fetch_page(
        conn,
        select=f"{select} tenant_id = $1",
        key="id",
        owner=tenant_id,
        after=after_id,
        before=before_id,
        limit=limit,
    )
    return [_event(r) for r in rows]


async def fetch_event(conn: Connection, *, tenant_id: str, event_id: str) -> EventRecord | None:
    """One of the tenant's events stored on this shard, or None."""
    row = await conn.fetchrow(
        f"select {_COLUMNS} from events where id = $1 and tenant_id = $2", event_id, tenant_id
    )
    return None if row is None else _event(row)


async def purge_old_events(
    conn: Connection, *, retention_s: float, batch_max: int = EVENT_PURGE_BATCH_MAX
) -> int:
    """Delete the events older than `retention_s`, `batch_max` per statement (each its own
    short transaction) until none is left; returns how many.

    An event id starts with its time in microseconds, in fixed-width hex (migration 0005),
    so the events older than the cutoff are the ids below the cutoff's own prefix: the
    primary key finds them, and no index on `created_at` is needed.
    """
    assert retention_s >= 0
    assert 0 < batch_max <= EVENT_PURGE_BATCH_MAX
    cutoff = await conn.fetchval(
        "select 'evt_' || lpad(to_hex((extract(epoch from now() - make_interval(secs => $1))"
        " * 1000000)::bigint), 14, '0')",
        float(retention_s),
    )
    purged = 0
    while True:
        result = await conn.execute(
            "delete from events where id in"
            " (select id from events where id < $1 order by id limit $2)",
            cutoff,
            batch_max,
        )
        deleted = int(result.split()[-1])
        purged += deleted
        if deleted < batch_max:
            return purged


async def purge_old_outgoing(conn: Connection, *, batch_max: int = EVENT_PURGE_BATCH_MAX) -> int:
    """Delete the daily limits' rows (migration 0012) older than a day, which no window
    reads any more, `batch_max` per statement until none is left; returns how many."""
    assert 0 < batch_max <= EVENT_PURGE_BATCH_MAX
    purged = 0
    while True:
        result = await conn.execute(
            "delete from outgoing where ctid = any(array(select ctid from outgoing"
            " where created_at < now() - interval '1 day' order by created_at limit $1))",
            batch_max,
        )
        deleted = int(result.split()[-1])
        purged += deleted
        if deleted < batch_max:
            return purged


_MARK_AVAILABLE = reported(
    """update transfers t set available_at = clock_timestamp(), updated_at = clock_timestamp()
    from unnest($1::text[]) as u(id)
    where t.id = u.id and t.available_at is null
    returning t.*""",
    event_type="$2",
    shard="$3",
)


async def mark_available(conn: Connection, transfer_ids: Sequence[str], *, shard: int) -> None:
    """Set `available_at` of delayed credits whose money just became available, each with
    its `funds.available` event, once (one already marked is left as it is)."""
    if transfer_ids:
        await conn.execute(
            _MARK_AVAILABLE, list(transfer_ids), str(EventType.FUNDS_AVAILABLE), shard
        )
