"""Cursor pages merged across shards.

Ids are ULIDs, so they sort by creation time; every shard returns its closest `limit + 1`
rows past the cursor and the merge keeps the closest `limit + 1` overall.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from ledger.errors import ErrorCode, LedgerError
from shards.cluster import ShardCluster
from shards.db import Connection


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=_HasId)


@dataclass(frozen=True, slots=True)
class Cursor:
    """One page request: at most `limit` rows after or before an id."""

    limit: int
    starting_after: str | None
    ending_before: str | None

    def __post_init__(self) -> None:
        if self.starting_after is not None and self.ending_before is not None:
            raise LedgerError(
                ErrorCode.INVALID_REQUEST,
                "give starting_after or ending_before, not both",
                "ending_before",
            )

    @property
    def backwards(self) -> bool:
        """Whether the page walks towards newer rows."""
        return self.ending_before is not None


ShardPage = Callable[[Connection, int, Cursor], Awaitable[list[T]]]
"""Fetch `cursor.limit + 1` rows past the cursor on one shard (connection, shard index)."""


def check_cursors(starting_after: str | None, ending_before: str | None) -> None:
    """Only one direction at a time.

    Raises:
        LedgerError(invalid_request): both cursors were given.
    """
    Cursor(1, starting_after, ending_before)


async def merged_page(
    cluster: ShardCluster, cursor: Cursor, fetch: ShardPage[T]
) -> tuple[list[T], bool]:
    """Ask every shard at once and merge: (the page newest first, whether more rows exist)."""

    async def on_shard(index: int) -> list[T]:
        async with cluster.shards[index].connection() as conn:
            return await fetch(conn, index, cursor)

    pages = await asyncio.gather(*(on_shard(s.index) for s in cluster.shards))
    rows = [row for page in pages for row in page]
    rows.sort(key=lambda row: row.id, reverse=not cursor.backwards)
    has_more = len(rows) > cursor.limit
    rows = rows[: cursor.limit]
    if cursor.backwards:
        rows.reverse()
    return rows, has_more
