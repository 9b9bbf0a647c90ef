"""The design batching replaced, on the same Temporal server: one workflow per transfer with
three activities (reserve, credit, post) that do no I/O. It shows Temporal's own cost per
workflow, an upper bound for that design; the `temporal-per-transfer` row of the table."""

from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from ulid import ULID

from ledgerflow.bench.load import LoadShape, Progress, drive
from ledgerflow.bench.measure import Outcome, ScenarioResult

BASELINE = "temporal-per-transfer"
BASELINE_CONCURRENCY_MAX = 64
"""More concurrent starts only queue in the dev server's SQLite; 64 keeps it busy."""
ACTIVITY_TIMEOUT = timedelta(seconds=30)


@dataclass(frozen=True)
class BaselineTransfer:
    """The one input of the baseline workflow and of each of its activities."""

    transfer_id: str
    amount: int


@activity.defn(name="baseline_reserve")
async def baseline_reserve(transfer: BaselineTransfer) -> None:
    """Stands for the reserve; does no I/O."""


@activity.defn(name="baseline_credit")
async def baseline_credit(transfer: BaselineTransfer) -> None:
    """Stands for the credit; does no I/O."""


@activity.defn(name="baseline_post")
async def baseline_post(transfer: BaselineTransfer) -> None:
    """Stands for the post; does no I/O."""


@workflow.defn
class BaselineTransferSaga:
    """One workflow per transfer, three activities: the shape batching replaces."""

    @workflow.run
    async def run(self, transfer: BaselineTransfer) -> None:
        """Reserve, credit, post, one after the other."""
        for step in (baseline_reserve, baseline_credit, baseline_post):
            await workflow.execute_activity(step, transfer, start_to_close_timeout=ACTIVITY_TIMEOUT)


async def run_baseline(
    address: str, shape: LoadShape, *, shards: int | None, progress: Progress | None = None
) -> ScenarioResult:
    """Run baseline workflows for `shape.duration_s`, at most BASELINE_CONCURRENCY_MAX at a
    time, each to completion; every completed workflow is one transfer."""
    client = await Client.connect(address)
    queue = f"bench-baseline-{ULID()}"
    result = ScenarioResult(scenario=BASELINE, shards=shards)
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[BaselineTransferSaga],
        activities=[baseline_reserve, baseline_credit, baseline_post],
        # Unsandboxed is the fastest way to run a workflow: the baseline's best case.
        workflow_runner=UnsandboxedWorkflowRunner(),
    )

    async def one_workflow(_rng: object) -> Outcome:
        transfer = BaselineTransfer(transfer_id=f"tr_{ULID()}", amount=1)
        await client.execute_workflow(
            BaselineTransferSaga.run,
            transfer,
            id=f"baseline-{transfer.transfer_id}",
            task_queue=queue,
        )
        return Outcome(transfers=1, statuses=Counter({200: 1}), errors=Counter())

    concurrency = min(shape.concurrency, BASELINE_CONCURRENCY_MAX)
    async with worker:
        await drive(
            result,
            one_workflow,
            LoadShape(duration_s=shape.duration_s, concurrency=concurrency),
            progress=progress,
            errors=(WorkflowFailureError, RPCError),
        )
    result.note = f"{concurrency} workflows at a time, activities without I/O"
    return result
