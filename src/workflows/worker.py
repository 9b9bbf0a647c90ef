"""The settlement worker: the workflows, the activities, and the outbox sweeper.

`ledgerflow worker` (and the worker inside `ledgerflow dev`) is

    client = await Client.connect(address, namespace=namespace)
    cluster = await ShardCluster.connect(shard_dsns)
    await run_worker(client=client, cluster=cluster, task_queue=task_queue, stop_event=stop)

which makes sure the sweeper workflow runs, then polls `task_queue` until `stop_event` is
set. Tests and benchmarks that manage the worker themselves use `build_worker` and
`ensure_sweeper` directly.
"""

import asyncio
from datetime import timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from ledger import limits
from shards.cluster import ShardCluster
from workflows.activities import SettlementActivities
from workflows.atomic import SettleAtomicBatch
from workflows.atomic_activities import AtomicActivities
from workflows.funds_timers import FundsTimersInput, SettleDueFunds, funds_timers_workflow_id
from workflows.funds_timers_activities import FundsTimersActivities
from workflows.models import SweeperInput, SweepInput
from workflows.payloads import with_settlement_payloads
from workflows.review import ReviewTransfer
from workflows.review_activities import ReviewActivities
from workflows.settlement import SettleCrossShardBatch
from workflows.sweep import SweepSagaOutbox, SweepSagaOutboxForever

SWEEPER_WORKFLOW_PREFIX = "sweep-saga-outbox"
LEGACY_SWEEP_SCHEDULE_PREFIX = "ledgerflow-sweep-saga-outbox"
"""Releases before the long-running sweeper ran the sweep from a Temporal Schedule of this
name; `ensure_sweeper` deletes it, so a cluster upgraded in place does not sweep twice."""


def build_worker(
    *,
    client: Client,
    cluster: ShardCluster,
    task_queue: str,
    activities: SettlementActivities | None = None,
    max_concurrent_activities: int | None = None,
    graceful_shutdown_s: float = limits.WORKER_GRACEFUL_SHUTDOWN_S,
) -> Worker:
    """A worker for `task_queue` running `SettleCrossShardBatch`, the sweep workflows and
    their activities against `cluster`; run it with `async with worker:` or `worker.run()`.

    `activities` replaces the activity implementation (tests inject faults this way).
    Payloads are converted with `workflows.payloads.DATA_CONVERTER`, whatever `client` uses.
    On shutdown, running activities get `graceful_shutdown_s` to finish before they are
    cancelled (deploy/k8s gives the pod `WORKER_TERMINATION_GRACE_PERIOD_S` in all).
    """
    implementation = activities or SettlementActivities(cluster)
    atomic = AtomicActivities(cluster)
    return Worker(
        with_settlement_payloads(client),
        task_queue=task_queue,
        workflows=[
            SettleCrossShardBatch,
            SettleAtomicBatch,
            SweepSagaOutbox,
            SweepSagaOutboxForever,
            SettleDueFunds,
            ReviewTransfer,
        ],
        activities=[
            implementation.credit_funds,
            implementation.post_holds,
            implementation.release_holds,
            implementation.sweep_outbox,
            FundsTimersActivities(cluster).settle_due_funds,
            ReviewActivities(cluster).decide_review,
            atomic.try_atomic_step,
            atomic.finish_atomic_step,
        ],
        max_concurrent_activities=max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=graceful_shutdown_s),
    )


def sweeper_workflow_id(task_queue: str) -> str:
    """One sweeper per task queue (the queue its sagas are started on)."""
    return f"{SWEEPER_WORKFLOW_PREFIX}-{task_queue}"


def sweeper_input(
    *,
    interval_s: float = limits.OUTBOX_SWEEP_INTERVAL_S,
    stale_after_s: float = limits.OUTBOX_STALE_AFTER_S,
) -> SweeperInput:
    """The sweeper's input: sweep rows older than `stale_after_s` every `interval_s`."""
    return SweeperInput(
        sweep=SweepInput(
            stale_after_s=stale_after_s,
            rows_max=limits.OUTBOX_SWEEP_ROWS_MAX,
            batch_size_max=limits.SAGA_BATCH_SIZE_MAX,
        ),
        interval_s=interval_s,
        sweeps_per_run_max=limits.OUTBOX_SWEEPS_PER_RUN_MAX,
    )


async def ensure_sweeper(
    client: Client,
    task_queue: str,
    *,
    interval_s: float = limits.OUTBOX_SWEEP_INTERVAL_S,
    stale_after_s: float = limits.OUTBOX_STALE_AFTER_S,
) -> WorkflowHandle[SweepSagaOutboxForever, None]:
    """Start the sweeper of `task_queue`, or find the one that runs; delete the sweep
    schedule of earlier releases.

    Idempotent: every worker calls it at start-up, and any number may run. A running
    sweeper keeps its input; to change the interval, terminate it and restart a worker.

    Raises:
        temporalio.service.RPCError: Temporal refused or is unreachable.
    """
    await _delete_legacy_schedule(client, task_queue)
    return await client.start_workflow(
        SweepSagaOutboxForever.run,
        sweeper_input(interval_s=interval_s, stale_after_s=stale_after_s),
        id=sweeper_workflow_id(task_queue),
        task_queue=task_queue,
        # The running sweeper is the one; a closed one (an operator terminated it, say)
        # is replaced by a new run.
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        static_summary=(
            f"outbox sweeper: every {interval_s:g} s, transfers reserved "
            f"{stale_after_s:g} s ago without a saga"
        ),
        rpc_timeout=timedelta(seconds=limits.TEMPORAL_RPC_TIMEOUT_S),
    )


async def ensure_funds_timers(
    client: Client,
    task_queue: str,
    *,
    shards: int,
    poll_s: float = limits.FUNDS_TIMERS_POLL_S,
    review_timeout_s: float = limits.REVIEW_TIMEOUT_S_DEFAULT,
) -> None:
    """Start each shard's funds timers (hold expiry, delayed availability), or find the
    ones that run (idempotent, like `ensure_sweeper`).

    Raises:
        temporalio.service.RPCError: Temporal refused or is unreachable.
    """
    for shard in range(shards):
        await client.start_workflow(
            SettleDueFunds.run,
            FundsTimersInput(shard=shard, poll_s=poll_s, review_timeout_s=review_timeout_s),
            id=funds_timers_workflow_id(task_queue, shard),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            static_summary=f"funds timers: shard {shard}, at least every {poll_s:g} s",
            rpc_timeout=timedelta(seconds=limits.TEMPORAL_RPC_TIMEOUT_S),
        )


async def _delete_legacy_schedule(client: Client, task_queue: str) -> None:
    handle = client.get_schedule_handle(f"{LEGACY_SWEEP_SCHEDULE_PREFIX}-{task_queue}")
    try:
        await handle.delete(rpc_timeout=timedelta(seconds=limits.TEMPORAL_RPC_TIMEOUT_S))
    except RPCError as error:
        if error.status is not RPCStatusCode.NOT_FOUND:
            raise


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
