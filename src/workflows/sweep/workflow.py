"""The outbox sweep: the workflows that settle what a crash left behind.

`SweepSagaOutboxForever` is the sweeper: one long-running workflow per task queue (a fixed
id, `workflows.sweep.start.sweeper_workflow_id`) that sweeps, sleeps `OUTBOX_SWEEP_INTERVAL_S`
on a durable timer, sweeps again, and continues as new every `OUTBOX_SWEEPS_PER_RUN_MAX`
sweeps. It is as durable as the sagas it protects: it survives worker and API restarts,
and a pause that ends while Temporal or every worker is down ends when they are back.
Every worker starts it at start-up (`workflows.sweep.start.ensure_sweeper`); the start is
idempotent. One workflow instead of one per sweep keeps the Temporal UI's list for the
sagas: a sweep every 10 seconds used to add 8,640 closed workflows a day.

`SweepSagaOutbox` sweeps once and returns what it did, for an operator or a test that wants
a sweep now (`temporal workflow execute --type SweepSagaOutbox ...`).

Both run outside the SDK's sandbox, as every workflow here does (the policy and why:
`workflows.worker.WORKFLOW_RUNNER`).
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from ledger import limits
from workflows.sweep.activities import SweepActivities
from workflows.sweep.inputs import SweeperInput, SweepInput, SweepOutcome

SWEEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=limits.ACTIVITY_RETRY_INITIAL_S),
    backoff_coefficient=limits.ACTIVITY_RETRY_BACKOFF,
    maximum_interval=timedelta(seconds=limits.OUTBOX_SWEEP_INTERVAL_S),
    maximum_attempts=limits.SWEEP_ATTEMPTS_MAX,
)
"""Bounded: the sweeper sweeps again after its next pause anyway."""


@workflow.defn
class SweepSagaOutbox:
    """One sweep of every shard's saga outbox."""

    @workflow.run
    async def run(self, sweep: SweepInput) -> SweepOutcome:
        """Sweep once; returns what was started, restarted, re-claimed or left running."""
        return await _sweep(sweep)


@workflow.defn
class SweepSagaOutboxForever:
    """The outbox sweeper: sweeps every `interval_s`, for ever, in runs of bounded length."""

    @workflow.run
    async def run(self, sweeper: SweeperInput) -> None:
        """Sweep, pause, repeat; after `sweeps_per_run_max` sweeps (or earlier, when
        Temporal suggests it) continue as new with the same input."""
        assert sweeper.sweeps_per_run_max > 0
        for _ in range(sweeper.sweeps_per_run_max):
            try:
                await _sweep(sweeper.sweep)
            except ActivityError as error:
                # A shard or Temporal that is down fails the sweep after a few attempts;
                # the sweeper must outlive it, so it sweeps again after the pause.
                workflow.logger.warning("outbox sweep failed, sweeping again: %s", error.cause)
            await workflow.sleep(timedelta(seconds=sweeper.interval_s))
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(sweeper)


async def _sweep(sweep: SweepInput) -> SweepOutcome:
    outcome: SweepOutcome = await workflow.execute_activity_method(
        SweepActivities.sweep_outbox,
        sweep,
        start_to_close_timeout=timedelta(seconds=limits.SWEEP_START_TO_CLOSE_S),
        heartbeat_timeout=timedelta(seconds=limits.SWEEP_HEARTBEAT_TIMEOUT_S),
        retry_policy=SWEEP_RETRY,
    )
    if outcome.started or outcome.restarted or outcome.reclaimed:
        workflow.logger.warning("outbox sweep settled abandoned transfers: %s", outcome)
    return outcome
