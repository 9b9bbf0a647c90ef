"""Cursor pages merged across shards.

Ids are ULIDs, so they sort by creation time; every shard returns its closest `limit + 1`
rows past the cursor and the merge keeps the closest `limit + 1` overall.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from ledger.errors import ErrorCode, LedgerError

T = TypeVar("T")


def check_cursors(starting_after: str | None, ending_before: str | None) -> None:
    """Only one direction at a time.

    Raises:
        LedgerError(invalid_request): both cursors were given.
    """
    if starting_after is not None and ending_before is not None:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST,
            "give starting_after or ending_before, not both",
            "ending_before",
        )


async def merged_page(
    fetchers: Sequence[Callable[[], Awaitable[list[T]]]],
    *,
    key: Callable[[T], str],
    backwards: bool,
    limit: int,
) -> tuple[list[T], bool]:
    """Merge per-shard pages: (the page newest first, whether more rows exist)."""
    pages = await asyncio.gather(*(fetch() for fetch in fetchers))
    rows = [row for page in pages for row in page]
    rows.sort(key=key, reverse=not backwards)
    has_more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    return rows, has_more
