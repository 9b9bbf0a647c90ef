"""The event feed: every change of a tenant's transfers, newest first, across shards."""

from api.auth import Principal
from api.models import EventData, EventOut
from api.pagination import Cursor, merged_page
from api.presenters import transfer_out
from ledger.errors import ErrorCode, LedgerError
from ledger.transfers import EventType
from shards import events as event_rows
from shards.cluster import ShardCluster
from shards.db import Connection
from shards.events import EventRecord

EVENT_ID_LENGTH = len("evt_") + 14 + 4 + 12
"""`evt_`, then the change's time in microseconds, the shard and a per-shard sequence,
in fixed-width hex (see migration 0005)."""


def event_out(record: EventRecord) -> EventOut:
    """An event as the API shows it."""
    return EventOut(
        id=record.id,
        type=record.type,
        data=EventData(object=transfer_out(record.transfer)),
        created_at=record.created_at,
    )


def _is_event_id(text: str) -> bool:
    hex_part = text.removeprefix("evt_")
    return (
        len(text) == EVENT_ID_LENGTH
        and text.startswith("evt_")
        and all(c in "0123456789abcdef" for c in hex_part)
    )


def _shard_of(event_id: str) -> int:
    return int(event_id[len("evt_") + 14 : len("evt_") + 18], 16)


class EventService:
    """Event reads for one tenant at a time."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster

    async def list_page(
        self,
        *,
        principal: Principal,
        event_type: EventType | None,
        limit: int,
        starting_after: str | None,
        ending_before: str | None,
    ) -> tuple[list[EventOut], bool]:
        """A page of the tenant's events across every shard, newest first.

        Raises:
            LedgerError(invalid_request): a cursor that is not an event id.
        """
        for param, cursor_id in (
            ("starting_after", starting_after),
            ("ending_before", ending_before),
        ):
            if cursor_id is not None and not _is_event_id(cursor_id):
                raise LedgerError(
                    ErrorCode.INVALID_REQUEST, f"{cursor_id!r} is not an event id", param
                )
        cursor = Cursor(limit, starting_after, ending_before)

        async def page(conn: Connection, _: int, c: Cursor) -> list[EventRecord]:
            return await event_rows.list_events(
                conn,
                tenant_id=principal.tenant_id,
                event_type=event_type,
                after_id=c.starting_after,
                before_id=c.ending_before,
                limit=c.limit + 1,
            )

        rows, has_more = await merged_page(self._cluster, cursor, page)
        return [event_out(r) for r in rows], has_more

    async def get(self, *, principal: Principal, event_id: str) -> EventOut:
        """One of the tenant's events.

        Raises:
            LedgerError(resource_not_found): unknown, or another tenant's.
        """
        missing = LedgerError(ErrorCode.RESOURCE_NOT_FOUND, f"no such event: {event_id}", "id")
        if not _is_event_id(event_id) or _shard_of(event_id) >= len(self._cluster.shards):
            raise missing
        shard = self._cluster.shards[_shard_of(event_id)]
        async with shard.connection() as conn:
            record = await event_rows.fetch_event(
                conn, tenant_id=principal.tenant_id, event_id=event_id
            )
        if record is None:
            raise missing
        return event_out(record)
