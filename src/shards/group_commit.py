"""Group commit: many concurrent postings to one shard share one transaction.

Requests queue per shard (`shards.batching`); while a batch commits, the next one gathers.
Under light load a batch holds one request and adds no latency; under heavy load a batch
carries up to `POSTING_BATCH_SIZE_MAX` requests in a few round trips and one commit, and a
hot account is locked once per batch instead of once per transfer.
"""

from ledger.limits import POSTING_BATCH_SIZE_MAX
from shards.batching import BatchObserver, ShardBatcher
from shards.cluster import ShardCluster
from shards.posting import post_batch, recover_batch
from shards.posting_types import PostingItem, PostingResult


class GroupCommitter(ShardBatcher[PostingItem, PostingResult]):
    """Queues postings per shard and commits them in batches.

    `submit(shard, request)` (a movement, or a change of a hold) returns the request's
    `PostingResult` (a business refusal is its `error`), or raises
    LedgerError(shard_unavailable) when nothing was written.
    """

    def __init__(
        self,
        cluster: ShardCluster,
        *,
        batch_size_max: int = POSTING_BATCH_SIZE_MAX,
        flushers_per_shard: int = 2,
        observer: BatchObserver | None = None,
    ) -> None:
        assert 0 < batch_size_max <= POSTING_BATCH_SIZE_MAX
        super().__init__(
            cluster,
            post_batch,
            recover=recover_batch,
            what="posting",
            batch_size_max=batch_size_max,
            flushers_per_shard=flushers_per_shard,
            observer=observer,
        )
