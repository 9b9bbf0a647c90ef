"""The outbox sweep's activity: no reserved transfer is left without a saga, whatever crashed.

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

Nothing starves the sweep. Unclaimed and claimed rows are read apart, each up to
`rows_max`, and a claimed row whose workflow was checked goes to the back of the line
(`shards.outbox.mark_checked`), so rows of long-running sagas cannot hide the others. A shard that
fails (down, unreachable, no connection within `POOL_ACQUIRE_TIMEOUT_S`) is logged and
skipped; the others are swept, and the sweep then fails so that it is seen and retried.
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta

import structlog
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import TEMPORAL_RPC_TIMEOUT_S
from shards import outbox
from shards.cluster import SHARD_FAILURES, ShardCluster
from shards.outbox import OutboxRow
from workflows.atomic.inputs import is_atomic_workflow_id
from workflows.atomic.recovery import restart_atomic
from workflows.settlement.start import (
    batch_from_rows,
    is_unavailable,
    reclaimed_workflow_id,
    settlement_workflow_id_prefix,
    start_settlement,
)
from workflows.sweep.inputs import SweepInput, SweepOutcome

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

        A shard that fails is logged and skipped, and a start Temporal refuses is logged and
        the sweep goes on with the other rows, so neither one shard nor one bad batch holds up
        the rest; the sweep then fails, to be seen and retried.

        Raises:
            temporalio.service.RPCError: Temporal is unavailable; the next sweep tries again.
            ApplicationError: some shards could not be swept (type `shard_unavailable`), or
                Temporal refused to start some batches (`settlement_start_refused`; they stay
                claimed).
        """
        tally = _Tally()
        failed: dict[int, str] = {}
        for shard in self._cluster.shards:
            try:
                await self._sweep_shard(shard.index, sweep, tally)
            except SHARD_FAILURES as error:
                failed[shard.index] = repr(error)
            except LedgerError as error:
                if error.code is not ErrorCode.SHARD_UNAVAILABLE:
                    raise
                failed[shard.index] = str(error)
            if shard.index in failed:
                log.error(
                    "outbox sweep skipped a shard that failed",
                    shard=shard.index,
                    error=failed[shard.index],
                )
            heartbeat(shard.index)
        if tally.started or tally.restarted or tally.reclaimed:
            log.warning("outbox sweep settled abandoned transfers", **asdict(tally))
        if failed:
            raise ApplicationError(
                f"the outbox of shards {sorted(failed)} could not be swept; the others were",
                {"failed_shards": failed, **asdict(tally)},
                type=str(ErrorCode.SHARD_UNAVAILABLE),
            )
        if tally.refused:
            raise ApplicationError(
                f"Temporal refused to start the sagas of {tally.refused} transfers",
                asdict(tally),
                type="settlement_start_refused",
            )
        return tally.outcome()

    async def _sweep_shard(self, shard: int, sweep: SweepInput, tally: _Tally) -> None:
        """Sweep one shard's outbox.

        Raises:
            asyncpg.PostgresError, OSError, TimeoutError: the shard failed.
            temporalio.service.RPCError: Temporal is unavailable.
        """
        stale = await outbox.stale_rows(
            self._cluster.shards[shard], older_than_s=sweep.stale_after_s, limit=sweep.rows_max
        )
        await self._start_unclaimed(shard, stale.unclaimed, sweep, tally)
        await self._check_claimed(shard, stale.claimed, tally)

    async def _start_unclaimed(
        self, shard: int, rows: Sequence[OutboxRow], sweep: SweepInput, tally: _Tally
    ) -> None:
        groups: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            groups[row.currency].append(row.transfer_id)
        for ids in groups.values():
            ids.sort()
            for at in range(0, len(ids), sweep.batch_size_max):
                workflow_id, claimed = await outbox.claim(
                    self._cluster.shards[shard],
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
            recorded = await outbox.rows_of_workflow(self._cluster.shards[shard], workflow_id)
            if not recorded:
                continue  # finished since the scan
            if is_atomic_workflow_id(workflow_id):
                # Its legs are settled together or not at all: never as a settlement batch.
                restarted = await restart_atomic(
                    self._cluster,
                    self._client,
                    task_queue=self._task_queue,
                    workflow_id=workflow_id,
                    status=status,
                )
                if restarted:
                    tally.reclaimed += counts[workflow_id]
                else:
                    tally.refused += counts[workflow_id]
                continue
            if status is None:
                if await self._start(workflow_id, recorded, tally):
                    tally.restarted += len(recorded)
            else:
                await self._reclaim(shard, workflow_id, recorded, status, tally)
        if counts:
            # Whatever was found (running, restarted, re-claimed, refused), these rows wait
            # behind the others until every claimed row of the shard has had its turn.
            await outbox.mark_checked(self._cluster.shards[shard], sorted(counts))

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
        claimed_id, claimed = await outbox.claim(
            self._cluster.shards[shard],
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


class SweepActivities:
    """The activity of the sweep workflows; it holds the shard pools."""

    def __init__(self, cluster: ShardCluster) -> None:
        self._cluster = cluster

    @activity.defn(name="sweep_outbox")
    async def sweep_outbox(self, sweep: SweepInput) -> SweepOutcome:
        """Settle outbox rows a crash left behind (see `OutboxSweeper`).

        Heartbeats after each shard, so a worker lost mid-sweep is noticed quickly.

        Raises:
            ApplicationError, temporalio.service.RPCError: as `OutboxSweeper.sweep`.
        """
        sweeper = OutboxSweeper(
            self._cluster, activity.client(), task_queue=activity.info().task_queue
        )
        return await sweeper.sweep(sweep, heartbeat=activity.heartbeat)
