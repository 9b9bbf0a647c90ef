"""`ExpireHolds`: each shard's durable timer for holds, one long-running workflow per shard.

No workflow per hold: Temporal settles a few dozen workflows a second here, and a card
platform places thousands of holds a second. Instead, one workflow per shard (a fixed id,
`hold_expiry_workflow_id`) runs passes of the `expire_holds` activity: each pass releases up
to `batch_max` due holds in one transaction and reports when the next open hold expires.
A full pass runs the next at once; otherwise the workflow sleeps on a durable timer until
that deadline, but never longer than `poll_s`, since a hold placed meanwhile may expire
sooner. It continues as new every `passes_max` passes.

The timer is Temporal's: a worker or Temporal restarted mid-sleep resumes the workflow, and
the pass that follows releases whatever fell due meanwhile. A hold is refused from its
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

HOLD_EXPIRY_WORKFLOW_PREFIX = "hold-expiry"


@dataclass(frozen=True, slots=True)
class ExpiryInput:
    """One shard's expiry workflow."""

    shard: int
    poll_s: float = limits.HOLD_EXPIRY_POLL_S
    batch_max: int = limits.HOLD_EXPIRY_BATCH_MAX
    passes_max: int = limits.HOLD_EXPIRY_PASSES_PER_RUN


@dataclass(frozen=True, slots=True)
class ExpiryPassInput:
    """One pass on one shard."""

    shard: int
    batch_max: int


@dataclass(frozen=True, slots=True)
class ExpiryPassOutcome:
    """What a pass did: holds expired, whether more were due, the next open deadline."""

    expired: int
    more_due: bool
    next_deadline: datetime | None


def hold_expiry_workflow_id(task_queue: str, shard: int) -> str:
    """One expiry workflow per shard and task queue."""
    return f"{HOLD_EXPIRY_WORKFLOW_PREFIX}-{task_queue}-shard-{shard}"


PASS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=limits.ACTIVITY_RETRY_INITIAL_S),
    backoff_coefficient=limits.ACTIVITY_RETRY_BACKOFF,
    maximum_interval=timedelta(seconds=limits.HOLD_EXPIRY_POLL_S),
    maximum_attempts=3,
)
"""Bounded: a failed pass is followed by the next one after the poll interval anyway."""


@workflow.defn
class ExpireHolds:
    """Releases one shard's holds as they expire, for ever, in runs of bounded length."""

    @workflow.run
    async def run(self, expiry: ExpiryInput) -> None:
        """Pass, sleep until the next deadline (at most `poll_s`), repeat; continue as new
        after `passes_max` passes."""
        assert expiry.passes_max > 0
        for _ in range(expiry.passes_max):
            wait = timedelta(seconds=expiry.poll_s)
            try:
                outcome: ExpiryPassOutcome = await workflow.execute_activity(
                    "expire_holds",
                    ExpiryPassInput(shard=expiry.shard, batch_max=expiry.batch_max),
                    result_type=ExpiryPassOutcome,
                    start_to_close_timeout=timedelta(seconds=limits.SWEEP_START_TO_CLOSE_S),
                    retry_policy=PASS_RETRY,
                )
            except ActivityError as error:
                # A shard that is down fails the pass; the next pass comes after the pause.
                workflow.logger.warning("hold expiry pass failed: %s", error.cause)
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
