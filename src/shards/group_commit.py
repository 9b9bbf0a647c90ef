"""Group commit: many concurrent postings to one shard share one transaction.

Requests queue per shard; while a batch commits, the next one gathers. Under light load a
batch holds one request and adds no latency; under heavy load a batch carries up to
`POSTING_BATCH_SIZE_MAX` requests in about eight round trips and one commit, and a hot
account is locked once per batch instead of once per transfer.
"""

import asyncio
from collections import deque
from collections.abc import Callable

import asyncpg
import structlog

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import POSTING_BATCH_SIZE_MAX
from shards.cluster import ShardCluster
from shards.posting import PostingRequest, PostingResult, post_batch

log = structlog.get_logger("ledgerflow.shards")

BatchObserver = Callable[[int, int, float], None]
"""Called with (shard, batch size, seconds) after every committed batch, for metrics."""

_INFRASTRUCTURE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class GroupCommitter:
    """Queues postings per shard and commits them in batches."""

    def __init__(
        self,
        cluster: ShardCluster,
        *,
        batch_size_max: int = POSTING_BATCH_SIZE_MAX,
        flushers_per_shard: int = 2,
        observer: BatchObserver | None = None,
    ) -> None:
        assert 0 < batch_size_max <= POSTING_BATCH_SIZE_MAX
        assert 1 <= flushers_per_shard <= 8
        self._cluster = cluster
        self._batch_size_max = batch_size_max
        self._flushers_max = flushers_per_shard
        self._observer = observer
        count = len(cluster.shards)
        self._queues: list[deque[tuple[PostingRequest, asyncio.Future[PostingResult]]]] = [
            deque() for _ in range(count)
        ]
        self._flushers = [0] * count
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, shard: int, request: PostingRequest) -> PostingResult:
        """Post one request on `shard` as part of the next batch.

        Raises:
            LedgerError(shard_unavailable): the shard failed; nothing was written.
        """
        future: asyncio.Future[PostingResult] = asyncio.get_running_loop().create_future()
        self._queues[shard].append((request, future))
        if self._flushers[shard] < self._flushers_max:
            self._flushers[shard] += 1
            task = asyncio.create_task(self._drain(shard))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, shard: int) -> None:
        queue = self._queues[shard]
        loop = asyncio.get_running_loop()
        try:
            while queue:
                count = min(len(queue), self._batch_size_max)
                batch = [queue.popleft() for _ in range(count)]
                started = loop.time()
                try:
                    async with self._cluster.shards[shard].pool.acquire() as conn:
                        results = await post_batch(
                            conn, shard=shard, requests=[r for r, _ in batch]
                        )
                except _INFRASTRUCTURE_ERRORS as error:
                    log.warning("posting batch failed", shard=shard, size=count, error=str(error))
                    failure = LedgerError(
                        ErrorCode.SHARD_UNAVAILABLE, f"shard {shard} failed: {error}"
                    )
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(failure)
                    continue
                if self._observer is not None:
                    self._observer(shard, count, loop.time() - started)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._flushers[shard] -= 1

    async def close(self) -> None:
        """Wait for queued batches to finish."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
