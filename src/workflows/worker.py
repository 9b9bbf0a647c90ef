"""The settlement worker: both workflows, the activities, and the sweep schedule.

`ledgerflow worker` (and the worker inside `ledgerflow dev`) is

    client = await Client.connect(address, namespace=namespace)
    cluster = await ShardCluster.connect(shard_dsns)
    await run_worker(client=client, cluster=cluster, task_queue=task_queue, stop_event=stop)

which makes sure the sweep schedule exists, then polls `task_queue` until `stop_event` is
set. Tests and benchmarks that manage the worker themselves use `build_worker` and
`ensure_sweep_schedule` directly.
"""

import asyncio
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.worker import Worker

from ledger import limits
from shards.cluster import ShardCluster
from workflows.activities import SettlementActivities
from workflows.models import SweepInput
from workflows.payloads import with_settlement_payloads
from workflows.settlement import SettleCrossShardBatch
from workflows.sweep import SweepSagaOutbox

SWEEP_SCHEDULE_PREFIX = "ledgerflow-sweep-saga-outbox"
# A sweep missed while Temporal was down runs once it is back, but a backlog of missed
# ticks is pointless: one sweep covers them all.
_SWEEP_CATCHUP_WINDOW = timedelta(minutes=1)


def build_worker(
    *,
    client: Client,
    cluster: ShardCluster,
    task_queue: str,
    activities: SettlementActivities | None = None,
    max_concurrent_activities: int | None = None,
) -> Worker:
    """A worker for `task_queue` running `SettleCrossShardBatch`, `SweepSagaOutbox` and
    their activities against `cluster`; run it with `async with worker:` or `worker.run()`.

    `activities` replaces the activity implementation (tests inject faults this way).
    Payloads are converted with `workflows.payloads.DATA_CONVERTER`, whatever `client` uses.
    """
    implementation = activities or SettlementActivities(cluster)
    return Worker(
        with_settlement_payloads(client),
        task_queue=task_queue,
        workflows=[SettleCrossShardBatch, SweepSagaOutbox],
        activities=[
            implementation.credit_funds,
            implementation.post_holds,
            implementation.release_holds,
            implementation.sweep_outbox,
        ],
        max_concurrent_activities=max_concurrent_activities,
    )


def sweep_schedule_id(task_queue: str) -> str:
    """One sweep schedule per task queue (the queue its sagas are started on)."""
    return f"{SWEEP_SCHEDULE_PREFIX}-{task_queue}"


def sweep_schedule(
    task_queue: str,
    *,
    interval_s: float = limits.OUTBOX_SWEEP_INTERVAL_S,
    stale_after_s: float = limits.OUTBOX_STALE_AFTER_S,
) -> Schedule:
    """Run `SweepSagaOutbox` every `interval_s`, skipping a tick while one still runs."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SweepSagaOutbox.run,
            SweepInput(
                stale_after_s=stale_after_s,
                rows_max=limits.OUTBOX_SWEEP_ROWS_MAX,
                batch_size_max=limits.SAGA_BATCH_SIZE_MAX,
            ),
            id=f"sweep-saga-outbox-{task_queue}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=limits.SWEEP_START_TO_CLOSE_S * 2),
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=interval_s))]),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP, catchup_window=_SWEEP_CATCHUP_WINDOW
        ),
    )


async def ensure_sweep_schedule(
    client: Client,
    task_queue: str,
    *,
    interval_s: float = limits.OUTBOX_SWEEP_INTERVAL_S,
    stale_after_s: float = limits.OUTBOX_STALE_AFTER_S,
) -> ScheduleHandle:
    """Create the sweep schedule of `task_queue`, or bring an existing one up to date.

    Idempotent: every worker calls it at start-up, and any number may run.

    Raises:
        temporalio.service.RPCError: Temporal refused or is unreachable.
    """
    wanted = sweep_schedule(task_queue, interval_s=interval_s, stale_after_s=stale_after_s)
    schedule_id = sweep_schedule_id(task_queue)
    try:
        return await client.create_schedule(schedule_id, wanted)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)

        def update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=wanted)

        await handle.update(update)
        return handle


async def run_worker(
    *,
    client: Client,
    cluster: ShardCluster,
    task_queue: str,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Ensure the sweep schedule, then run the worker until `stop_event` is set (or forever).

    Raises:
        temporalio.service.RPCError: Temporal refused the schedule.
        RuntimeError: the worker failed fatally (for example, lost its client).
    """
    await ensure_sweep_schedule(client, task_queue)
    worker = build_worker(client=client, cluster=cluster, task_queue=task_queue)
    if stop_event is None:
        await worker.run()
        return
    async with worker:
        await stop_event.wait()
