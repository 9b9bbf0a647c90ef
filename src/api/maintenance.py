"""Background upkeep of an API process."""

import asyncio

import structlog

from ledger.limits import (
    EVENT_RETENTION_S,
    IDEMPOTENCY_PURGE_INTERVAL_S,
    SHARD_PROBE_INTERVAL_S,
    SHARD_PROBE_TIMEOUT_S,
)
from shards.cluster import SHARD_FAILURES, ShardCluster
from shards.events import purge_old_events, purge_old_outgoing
from shards.idempotency import purge_expired_keys

log = structlog.get_logger("ledgerflow.api")


async def purge_expired(
    cluster: ShardCluster, *, interval_s: float = IDEMPOTENCY_PURGE_INTERVAL_S
) -> None:
    """Delete idempotency records past their 24 hours, events past their 30 days and the
    daily limits' rows past a day, on every shard, forever.

    Expired keys are already reusable (claiming one overwrites it), and an event older than
    its retention is no longer listed; this keeps both tables from growing. Every API
    replica runs it; the deletes are idempotent.
    """
    while True:
        await asyncio.sleep(interval_s)
        for shard in cluster.shards:
            try:
                async with shard.connection() as conn:
                    keys = await purge_expired_keys(conn)
                    events = await purge_old_events(conn, retention_s=EVENT_RETENTION_S)
                    outgoing = await purge_old_outgoing(conn)
            except SHARD_FAILURES as error:
                log.warning("purge failed", shard=shard.index, error=str(error))
                continue
            if keys or events or outgoing:
                log.info(
                    "purged",
                    shard=shard.index,
                    idempotency_keys=keys,
                    events=events,
                    outgoing=outgoing,
                )


class ShardHealth:
    """Whether each shard answered its last probe, for `/readyz` and `ledgerflow_shard_up`.

    Health is reported, never enforced: a request for a shard that is down fails on its own
    deadline with 503 `shard_unavailable`, while the others keep serving. Readiness means
    that this process can serve, so one shard failing over takes no API process out of its
    Service.
    """

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster
        self.up = [True] * len(cluster.shards)
        """The cluster connected to every shard at start, so all begin up."""

    @property
    def down(self) -> list[int]:
        """The shards that did not answer their last probe."""
        return [index for index, up in enumerate(self.up) if not up]

    async def probe_forever(self, *, interval_s: float = SHARD_PROBE_INTERVAL_S) -> None:
        """Probe every shard every `interval_s`, each within `SHARD_PROBE_TIMEOUT_S`."""
        while True:
            await self.probe()
            await asyncio.sleep(interval_s)

    async def probe(self) -> None:
        """Ask every shard at once and record which answered in time."""
        answers = await asyncio.gather(
            *(s.answers(timeout_s=SHARD_PROBE_TIMEOUT_S) for s in self._cluster.shards)
        )
        for index, answered in enumerate(answers):
            if answered != self.up[index]:
                log.warning("shard health changed", shard=index, up=answered)
            self.up[index] = answered
