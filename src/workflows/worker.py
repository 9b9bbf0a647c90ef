"""The worker: every workflow and activity, run outside the SDK's sandbox.

`ledgerflow worker` (and the worker inside `ledgerflow dev`) is

    client = await Client.connect(address, namespace=namespace)
    cluster = await ShardCluster.connect(shard_dsns)
    await run_worker(client=client, cluster=cluster, task_queue=task_queue, stop_event=stop)

which makes sure the sweeper workflow runs (`workflows.sweep.start.ensure_sweeper`) and each
shard's funds timers (`workflows.funds_timers.start.ensure_funds_timers`), then polls
`task_queue` until `stop_event` is set. Tests and benchmarks that manage the worker
themselves use `build_worker` and those two directly.
"""

import asyncio
from datetime import timedelta
from typing import Final

from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner

from ledger import limits
from shards.cluster import ShardCluster
from workflows.atomic.activities import AtomicActivities
from workflows.atomic.workflow import SettleAtomicBatch
from workflows.funds_timers.activities import FundsTimersActivities
from workflows.funds_timers.start import ensure_funds_timers
from workflows.funds_timers.workflow import SettleDueFunds
from workflows.payloads import with_settlement_payloads
from workflows.review.activities import ReviewActivities
from workflows.review.workflow import ReviewTransfer
from workflows.settlement.activities import SettlementActivities
from workflows.settlement.workflow import SettleCrossShardBatch
from workflows.sweep.activities import SweepActivities
from workflows.sweep.start import ensure_sweeper
from workflows.sweep.workflow import SweepSagaOutbox, SweepSagaOutboxForever

WORKFLOWS: Final = (
    SettleCrossShardBatch,
    SettleAtomicBatch,
    SweepSagaOutbox,
    SweepSagaOutboxForever,
    SettleDueFunds,
    ReviewTransfer,
)
"""Every workflow a worker runs and a replay test replays."""

WORKFLOW_RUNNER: Final[WorkflowRunner] = UnsandboxedWorkflowRunner()
"""Every workflow runs outside the SDK's sandbox: the one sandbox policy of Ledgerflow.

The sandbox loads a workflow's module anew for every workflow run and proxies what it
touches; at one saga per batch that was a fifth to a quarter of the worker's CPU. What the
sandbox would refuse at run time (a clock, I/O, module state) is refused before: the
workflow modules call nothing but `workflow.*` and their activities and keep no module
state, import-linter keeps I/O libraries out of them (pyproject.toml, "Workflow definitions
import no I/O library"), and tests/replay replays recorded histories with this runner, so a
change that takes other steps for them fails CI."""


def build_worker(
    *,
    client: Client,
    cluster: ShardCluster,
    task_queue: str,
    activities: SettlementActivities | None = None,
    max_concurrent_activities: int | None = None,
    graceful_shutdown_s: float = limits.WORKER_GRACEFUL_SHUTDOWN_S,
) -> Worker:
    """A worker for `task_queue` running `WORKFLOWS` and their activities against
    `cluster`; run it with `async with worker:` or `worker.run()`.

    `activities` replaces the settlement's activity implementation (tests inject faults
    this way). Payloads are converted with `workflows.payloads.DATA_CONVERTER`, whatever
    `client` uses. On shutdown, running activities get `graceful_shutdown_s` to finish
    before they are cancelled (deploy/k8s gives the pod `WORKER_TERMINATION_GRACE_PERIOD_S`
    in all).
    """
    settlement = activities or SettlementActivities(cluster)
    sweep = SweepActivities(cluster)
    atomic = AtomicActivities(cluster)
    return Worker(
        with_settlement_payloads(client),
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        activities=[
            settlement.credit_funds,
            settlement.post_holds,
            settlement.release_holds,
            settlement.open_holds,
            sweep.sweep_outbox,
            atomic.try_atomic_step,
            atomic.finish_atomic_step,
            FundsTimersActivities(cluster).settle_due_funds,
            ReviewActivities(cluster).decide_review,
        ],
        workflow_runner=WORKFLOW_RUNNER,
        # A worker that died must not keep its workflows (the funds timers' wake-ups among
        # them) waiting long for it.
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=limits.WORKER_STICKY_TIMEOUT_S),
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=graceful_shutdown_s),
    )


async def run_worker(
    *,
    client: Client,
    cluster: ShardCluster,
    task_queue: str,
    stop_event: asyncio.Event | None = None,
) -> None:
    """Ensure the sweeper runs, then run the worker until `stop_event` is set (or forever).

    Raises:
        temporalio.service.RPCError: Temporal refused the sweeper.
        RuntimeError: the worker failed fatally (for example, lost its client).
    """
    await ensure_sweeper(client, task_queue)
    await ensure_funds_timers(client, task_queue, shards=len(cluster.shards))
    worker = build_worker(client=client, cluster=cluster, task_queue=task_queue)
    if stop_event is None:
        await worker.run()
        return
    async with worker:
        await stop_event.wait()
