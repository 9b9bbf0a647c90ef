"""`ReviewTransfer`: one workflow per transfer waiting for review.

Reviews are rare (a transfer above its debit account's `review_above`), so each gets its
own workflow: it is what an operator finds in the Temporal UI, with the filter
`WorkflowType="ReviewTransfer" AND ExecutionStatus="Running"`, and what the API's
`POST /v1/transfers/{id}/approve` and `/reject` talk to, through the `decide` update. The
workflow waits for a decision on a durable timer until `decide_by`; without one it rejects
the transfer. The decision itself is one activity (`shards.review.decide_review`), which
applies it once however often it runs, and the update answers with the transfer's status
after it.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from ledger import limits

REVIEW_WORKFLOW_PREFIX = "review"


@dataclass(frozen=True, slots=True)
class ReviewInput:
    """One transfer to review, on its shard, decided by `decide_by` at the latest."""

    shard: int
    transfer_id: str
    decide_by: datetime


@dataclass(frozen=True, slots=True)
class ReviewDecision:
    """What a person decided."""

    approve: bool
    request_key: str | None = None
    """The operation key of the API request that decided (its Idempotency-Key's), written
    with the decision, so a retry of that request is answered with it."""


@dataclass(frozen=True, slots=True)
class DecideInput:
    """The activity's input: apply `approve` to the transfer on its shard."""

    shard: int
    transfer_id: str
    approve: bool
    request_key: str | None = None
    """See `ReviewDecision.request_key`."""


def review_workflow_id(transfer_id: str) -> str:
    """The review workflow of one transfer."""
    return f"{REVIEW_WORKFLOW_PREFIX}-{transfer_id}"


DECIDE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=limits.ACTIVITY_RETRY_INITIAL_S),
    backoff_coefficient=limits.ACTIVITY_RETRY_BACKOFF,
    maximum_interval=timedelta(seconds=limits.ACTIVITY_RETRY_INTERVAL_MAX_S),
)
"""Without limit: a decision taken must be applied, whenever the shard is back."""


@workflow.defn
class ReviewTransfer:
    """Waits for a person's decision on one transfer, or rejects it at `decide_by`."""

    def __init__(self) -> None:
        self._decision: ReviewDecision | None = None
        self._status: str | None = None

    @workflow.run
    async def run(self, review: ReviewInput) -> str:
        """Wait for `decide` (or the deadline), apply the decision, return the status."""
        wait = max(timedelta(0), review.decide_by - workflow.now())
        try:
            await workflow.wait_condition(lambda: self._decision is not None, timeout=wait)
        except TimeoutError:
            workflow.logger.info("review of %s timed out: rejected", review.transfer_id)
            self._decision = ReviewDecision(approve=False)
        assert self._decision is not None
        self._status = await workflow.execute_activity(
            "decide_review",
            DecideInput(
                review.shard,
                review.transfer_id,
                self._decision.approve,
                self._decision.request_key,
            ),
            result_type=str,
            start_to_close_timeout=timedelta(seconds=limits.ACTIVITY_START_TO_CLOSE_S),
            retry_policy=DECIDE_RETRY,
        )
        return self._status

    @workflow.update
    async def decide(self, decision: ReviewDecision) -> str:
        """Approve or reject; answers the transfer's status once the decision applied."""
        if self._decision is None:
            self._decision = decision
        await workflow.wait_condition(lambda: self._status is not None)
        assert self._status is not None
        return self._status
