"""How many of the project's files a transfer walks through, from its route to the SQL.

A reader follows a transfer the way the code runs it: this test runs single-shard and
cross-shard transfers through the HTTP API with a profiler on, records every file under
`src/` whose code ran from the moment the route function was entered until the answer was
ready, and prints the files every one of them ran through. It fails when the walk grows
past what the layering needs, so a new indirection on the hot path is a decision, not an
accident. Run it with `-s` to see the files:

    python -m pytest tests/integration/test_transfer_walk.py -s
"""

import asyncio
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import httpx
import pytest

import ledger
from tests.integration.helpers import create_account, transfer

pytestmark = pytest.mark.usefixtures("books")

SRC = Path(ledger.__file__).resolve().parents[1]

SINGLE_SHARD_FILES_MAX = 14
"""The route, the idempotency record (API and SQL) and the service; the routing (the
cluster, the ids and their slots); the group commit with its spans, and its metrics; the
posting SQL, its types and its writes; the domain rules (posting, accounts) and the
lifecycle with its events. (The request's fields, its currency and metadata included, were
checked by its model before the route was entered.) Before the layering was reworked it was
18 files."""

CROSS_SHARD_FILES_MAX = 21
"""The single-shard walk, plus the hand-over, the saga's start, inputs and activities, the
outbox, the payload converter, and money (the amount in the saga's summary). It was 24."""


@contextmanager
def walk() -> Iterator[list[str]]:
    """Record the files under `src/` whose functions are called while inside the block,
    counting from the first call of the transfers route on (the request's way in, its
    middleware and authentication, are the same for every route)."""
    seen: dict[str, None] = {}
    entered = False

    def profile(frame: FrameType, event: str, _: object) -> None:
        nonlocal entered
        if event != "call":
            return
        code = frame.f_code
        path = code.co_filename
        if not path.startswith(str(SRC)):
            return
        if not entered:
            entered = code.co_name == "create_transfer" and path.endswith("routes/transfers.py")
        if entered:
            seen.setdefault(str(Path(path).relative_to(SRC)), None)

    files: list[str] = []
    sys.setprofile(profile)
    try:
        yield files
    finally:
        sys.setprofile(None)
        files.extend(seen)


async def _walk(api: httpx.AsyncClient, debit: dict, credit: dict) -> list[str]:
    """The files three transfers all ran through: a background task of the same process
    (the funds timers' pass, the outbox sweep) that runs during one of them is left out."""
    walks = []
    for _ in range(3):
        with walk() as files:
            response = await transfer(api, debit["id"], credit["id"], 10)
        assert response.status_code in (201, 202), response.text
        walks.append(files)
    common = [f for f in walks[0] if all(f in other for other in walks[1:])]
    print(f"\n{len(common)} files: {' '.join(common)}")
    return common


async def _account_on(api: httpx.AsyncClient, shard: int, **kwargs: object) -> dict:
    while (account := await create_account(api, **kwargs))["shard"] != shard:  # type: ignore[arg-type]
        pass
    return account


async def test_a_transfers_walk_stays_short(api: httpx.AsyncClient) -> None:
    """A single-shard transfer walks through at most `SINGLE_SHARD_FILES_MAX` files, a
    cross-shard one at most `CROSS_SHARD_FILES_MAX`; both reach the posting SQL."""
    funding = await create_account(api, allow_overdraft=True)
    near = await _account_on(api, funding["shard"])
    far = await _account_on(api, (funding["shard"] + 1) % 4)
    # Warm every path once, so imports and first-use set-up are not counted.
    assert (await transfer(api, funding["id"], near["id"], 1)).status_code == 201
    assert (await transfer(api, funding["id"], far["id"], 1)).status_code in (201, 202)
    await asyncio.sleep(0.5)

    single = await _walk(api, funding, near)
    assert "shards/posting.py" in single
    assert len(single) <= SINGLE_SHARD_FILES_MAX, single
    cross = await _walk(api, funding, far)
    assert "shards/posting.py" in cross
    assert len(cross) <= CROSS_SHARD_FILES_MAX, cross
