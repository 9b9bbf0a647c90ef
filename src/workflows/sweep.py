"""`SweepSagaOutbox`: the scheduled workflow that settles what a crash left behind.

A Temporal Schedule (`workflows.worker.ensure_sweep_schedule`) runs it every
`OUTBOX_SWEEP_INTERVAL_S`, skipping a tick while the previous run is still going. The
schedule is as durable as the workflows it protects: it survives worker and API restarts,
and a tick missed while Temporal was down runs when Temporal is back.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from ledger import limits
    from workflows.activities import SettlementActivities
    from workflows.models import SweepInput, SweepOutcome

SWEEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=limits.ACTIVITY_RETRY_INITIAL_S),
    backoff_coefficient=limits.ACTIVITY_RETRY_BACKOFF,
    maximum_interval=timedelta(seconds=limits.OUTBOX_SWEEP_INTERVAL_S),
    maximum_attempts=limits.SWEEP_ATTEMPTS_MAX,
)
"""Bounded: the next scheduled run sweeps again anyway."""


@workflow.defn
class SweepSagaOutbox:
    """One sweep of every shard's saga outbox."""

    @workflow.run
    async def run(self, sweep: SweepInput) -> SweepOutcome:
        """Sweep once; returns what was started, restarted, re-claimed or left running."""
        outcome: SweepOutcome = await workflow.execute_activity_method(
            SettlementActivities.sweep_outbox,
            sweep,
            start_to_close_timeout=timedelta(seconds=limits.SWEEP_START_TO_CLOSE_S),
            heartbeat_timeout=timedelta(seconds=limits.SWEEP_HEARTBEAT_TIMEOUT_S),
            retry_policy=SWEEP_RETRY,
        )
        if outcome.started or outcome.restarted or outcome.reclaimed:
            workflow.logger.warning("outbox sweep settled abandoned transfers: %s", outcome)
        return outcome
