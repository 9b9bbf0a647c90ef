"""`SettleDueFunds`: each shard's durable timers for money that moves at a set time, one
long-running workflow per shard: holds that expire, and credits that become available.

No workflow per hold or per delayed credit: Temporal settles a few dozen workflows a second
here, and a card platform places thousands of holds a second. Instead, one workflow per
shard (a fixed id, `funds_timers_workflow_id`) runs passes of the `settle_due_funds`
activity: each pass releases up to `batch_max` due holds and makes up to `batch_max` due
credits available, each kind in one transaction, starts the review workflow of any held
transfer whose start the API did not record, and reports the next deadline.
A full pass runs the next at once; otherwise the workflow sleeps on a durable timer until
that deadline, but never longer than `poll_s`, since a hold placed or a credit deferred
meanwhile may fall due sooner. It continues as new every `passes_max` passes.

The timer is Temporal's: a worker or Temporal restarted mid-sleep resumes the workflow, and
the pass that follows settles whatever fell due meanwhile. A hold is refused from its
`expires_at` instant by the API itself (`shards.holds`), whatever this workflow is doing;
this workflow gives the money back.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ledger import limits

FUNDS_TIMERS_WORKFLOW_PREFIX = "funds-timers"


@dataclass(frozen=True, slots=True)
class FundsTimersInput:
    """One shard's funds timers."""

    shard: int
    poll_s: float = limits.FUNDS_TIMERS_POLL_S
    batch_max: int = limits.FUNDS_TIMERS_BATCH_MAX
    passes_max: int = limits.FUNDS_TIMERS_PASSES_PER_RUN
    review_timeout_s: float = limits.REVIEW_TIMEOUT_S_DEFAULT


@dataclass(frozen=True, slots=True)
class DuePassInput:
    """One pass on one shard."""

    shard: int
    batch_max: int
    review_timeout_s: float = limits.REVIEW_TIMEOUT_S_DEFAULT


@dataclass(frozen=True, slots=True)
class DuePassOutcome:
    """What a pass did: holds expired, credits made available, whether more were due, and
    the next deadline of either."""

    expired: int
    made_available: int
    more_due: bool
    next_deadline: datetime | None


def funds_timers_workflow_id(task_queue: str, shard: int) -> str:
    """One funds timers workflow per shard and task queue."""
    return f"{FUNDS_TIMERS_WORKFLOW_PREFIX}-{task_queue}-shard-{shard}"


PASS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=limits.ACTIVITY_RETRY_INITIAL_S),
    backoff_coefficient=limits.ACTIVITY_RETRY_BACKOFF,
    maximum_interval=timedelta(seconds=limits.FUNDS_TIMERS_POLL_S),
    maximum_attempts=3,
)
"""Bounded: a failed pass is followed by the next one after the poll interval anyway."""


@workflow.defn
class SettleDueFunds:
    """Settles one shard's due holds and credits as they fall due, for ever, in runs of
    bounded length."""

    @workflow.run
    async def run(self, expiry: FundsTimersInput) -> None:
        """Pass, sleep until the next deadline (at most `poll_s`), repeat; continue as new
        after `passes_max` passes."""
        assert expiry.passes_max > 0
        for _ in range(expiry.passes_max):
            wait = timedelta(seconds=expiry.poll_s)
            try:
                outcome: DuePassOutcome = await workflow.execute_activity(
                    "settle_due_funds",
                    DuePassInput(
                        shard=expiry.shard,
                        batch_max=expiry.batch_max,
                        review_timeout_s=expiry.review_timeout_s,
                    ),
                    result_type=DuePassOutcome,
                    start_to_close_timeout=timedelta(seconds=limits.FUNDS_TIMERS_PASS_TIMEOUT_S),
                    retry_policy=PASS_RETRY,
                )
            except ActivityError as error:
                # A shard that is down fails the pass; the next pass comes after the pause.
                workflow.logger.warning("due funds pass failed: %s", error.cause)
            else:
                if outcome.more_due:
                    continue
                if outcome.next_deadline is not None:
                    until = outcome.next_deadline - workflow.now()
                    wait = max(timedelta(0), min(wait, until))
            if wait > timedelta(0):
                await workflow.sleep(wait)
            if workflow.info().is_continue_as_new_suggested():
                break
        workflow.continue_as_new(expiry)
