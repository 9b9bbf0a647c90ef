"""The outbox sweep: no reserved transfer is left without a saga, whatever crashed.

Each open outbox row older than the stale threshold is in one of four states:
- unclaimed: the API died (or lost its shard) between the reserve and the hand-over. The
  sweeper claims such rows in batches and starts their sagas, like the dispatcher would;
- claimed, and its workflow does not exist: the claimer died (or Temporal was down) between
  the claim and the start. The sweeper starts the *same* workflow id with the rows recorded
  under it; if the claimer gets there too, Temporal keeps one run;
- claimed, and its workflow is running: left alone (a saga that retries its post while a
  shard is down is running, not lost);
- claimed, and its workflow closed while the rows stay open: this should not happen (the
  saga retries without limit), but an operator may terminate a run. The rows are re-claimed
  under a new id, conditionally on the old one, and settled again: every step is keyed by
  its operation key, so the steps the old run did replay their first results.
A transfer is thus claimed by one workflow id at a time and started under it only.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta

import structlog
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from ledger.limits import TEMPORAL_RPC_TIMEOUT_S
from shards.cluster import ShardCluster
from workflows import outbox
from workflows.models import (
    SweepInput,
    SweepOutcome,
    reclaimed_workflow_id,
    settlement_workflow_id_prefix,
)
from workflows.outbox import OutboxRow
from workflows.starter import (
    batch_from_rows,
    is_unavailable,
    start_settlement,
)

log = structlog.get_logger("ledgerflow.workflows")


@dataclass(slots=True)
class _Tally:
    started: int = 0
    restarted: int = 0
    reclaimed: int = 0
    running: int = 0
    refused: int = 0

    def outcome(self) -> SweepOutcome:
        return SweepOutcome(
            started=self.started,
            restarted=self.restarted,
            reclaimed=self.reclaimed,
            running=self.running,
        )


class OutboxSweeper:
    """Finds stale outbox rows on every shard and makes sure a saga settles each."""

    def __init__(self, cluster: ShardCluster, client: Client, *, task_queue: str) -> None:
        self._cluster = cluster
        self._client = client
        self._task_queue = task_queue

    async def sweep(
        self, sweep: SweepInput, *, heartbeat: Callable[..., None] = lambda *_: None
    ) -> SweepOutcome:
        """Sweep every shard once; `heartbeat` is called after each.

        A start Temporal refuses is logged and the sweep goes on with the other rows, so one
        bad batch does not hold up the rest; the sweep then fails, to be seen.

        Raises:
            asyncpg.PostgresError, OSError: a shard failed (the next sweep tries again).
            temporalio.service.RPCError: Temporal failed; claimed rows are restarted later.
            ApplicationError: Temporal refused to start some batches (they stay claimed).
        """
        tally = _Tally()
        for shard in self._cluster.shards:
            async with shard.connection() as conn:
                rows = await outbox.stale_rows(
                    conn, older_than_s=sweep.stale_after_s, limit=sweep.rows_max
                )
            await self._start_unclaimed(
                shard.index, [r for r in rows if r.workflow_id is None], sweep, tally
            )
            await self._check_claimed(shard.index, [r for r in rows if r.workflow_id], tally)
            heartbeat(shard.index)
        if tally.started or tally.restarted or tally.reclaimed:
            log.warning("outbox sweep settled abandoned transfers", **asdict(tally))
        if tally.refused:
            raise ApplicationError(
                f"Temporal refused to start the sagas of {tally.refused} transfers",
                asdict(tally),
                type="settlement_start_refused",
            )
        return tally.outcome()

    async def _start_unclaimed(
        self, shard: int, rows: Sequence[OutboxRow], sweep: SweepInput, tally: _Tally
    ) -> None:
        groups: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            groups[row.currency].append(row.transfer_id)
        for ids in groups.values():
            ids.sort()
            for at in range(0, len(ids), sweep.batch_size_max):
                async with self._cluster.shards[shard].connection() as conn:
                    workflow_id, claimed = await outbox.claim(
                        conn,
                        transfer_ids=ids[at : at + sweep.batch_size_max],
                        workflow_id_prefix=settlement_workflow_id_prefix(shard),
                    )
                if workflow_id is not None and await self._start(workflow_id, claimed, tally):
                    tally.started += len(claimed)

    async def _check_claimed(self, shard: int, rows: Sequence[OutboxRow], tally: _Tally) -> None:
        counts: dict[str, int] = defaultdict(int)
        for row in rows:
            assert row.workflow_id is not None
            counts[row.workflow_id] += 1
        for workflow_id in sorted(counts):
            status = await self._status(workflow_id)
            if status is WorkflowExecutionStatus.RUNNING:
                tally.running += counts[workflow_id]
                continue
            async with self._cluster.shards[shard].connection() as conn:
                recorded = await outbox.rows_of_workflow(conn, workflow_id)
            if not recorded:
                continue  # finished since the scan
            if status is None:
                if await self._start(workflow_id, recorded, tally):
                    tally.restarted += len(recorded)
            else:
                await self._reclaim(shard, workflow_id, recorded, status, tally)

    async def _reclaim(
        self,
        shard: int,
        workflow_id: str,
        recorded: Sequence[OutboxRow],
        status: WorkflowExecutionStatus,
        tally: _Tally,
    ) -> None:
        new_id = reclaimed_workflow_id(workflow_id)
        log.error(
            "settlement closed with transfers still open; settling them again",
            workflow_id=workflow_id,
            status=status.name,
            new_workflow_id=new_id,
            transfers=len(recorded),
        )
        async with self._cluster.shards[shard].connection() as conn:
            claimed_id, claimed = await outbox.claim(
                conn,
                transfer_ids=[r.transfer_id for r in recorded],
                workflow_id=new_id,
                recorded_workflow_id=workflow_id,
            )
        if claimed_id is not None and await self._start(claimed_id, claimed, tally):
            tally.reclaimed += len(claimed)

    async def _start(self, workflow_id: str, rows: Sequence[OutboxRow], tally: _Tally) -> bool:
        """Start the batch; False (logged, counted) when Temporal refuses it for good."""
        try:
            await start_settlement(
                self._client,
                task_queue=self._task_queue,
                batch=batch_from_rows(workflow_id, rows),
            )
        except RPCError as error:
            # Temporal being unreachable ends the sweep (the next one retries); any other
            # refusal concerns this batch and is reported once the others are handled.
            if is_unavailable(error):
                raise
            log.error("settlement start refused", workflow_id=workflow_id, error=str(error))
            tally.refused += len(rows)
            return False
        return True

    async def _status(self, workflow_id: str) -> WorkflowExecutionStatus | None:
        """The workflow's status, or None when Temporal has no such workflow."""
        try:
            described = await self._client.get_workflow_handle(workflow_id).describe(
                rpc_timeout=timedelta(seconds=TEMPORAL_RPC_TIMEOUT_S)
            )
        except RPCError as error:
            if error.status is RPCStatusCode.NOT_FOUND:
                return None
            raise
        # An unknown status is treated as running: leaving a row one more sweep is safe,
        # settling it twice at once is what this module exists to prevent.
        return described.status or WorkflowExecutionStatus.RUNNING
