"""Starting a settlement workflow: the one place that knows its id policy and attributes.

The dispatcher (in the API) and the sweeper (in the worker) both start batches here. The id
derives from the claimed transfers, duplicates are rejected whether the first run is open or
closed, and a start that finds its id taken is not an error: someone with the same claim
started it first, and that run settles exactly these transfers.
"""

from collections.abc import Sequence
from datetime import timedelta

import structlog
from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from ledger.limits import BIGINT_MAX, TEMPORAL_RPC_TIMEOUT_S
from ledger.money import format_minor
from workflows import search_attributes as attrs
from workflows.models import SettlementBatch, SettlementOutcome
from workflows.outbox import OutboxRow

log = structlog.get_logger("ledgerflow.workflows")


def batch_from_rows(workflow_id: str, rows: Sequence[OutboxRow]) -> SettlementBatch:
    """The saga input for rows claimed together under `workflow_id`."""
    first = rows[0]
    assert all(r.workflow_id == workflow_id for r in rows)
    assert all(
        (r.source_shard, r.currency) == (first.source_shard, first.currency) for r in rows
    ), "a batch settles transfers out of one shard in one currency"
    return SettlementBatch(
        batch_id=workflow_id,
        source_shard=first.source_shard,
        currency=first.currency,
        transfers=[r.settlement_transfer() for r in rows],
    )


def initial_search_attributes(batch: SettlementBatch) -> TypedSearchAttributes:
    """What an operator filters on, set at start so even a never-run saga is findable.

    `LedgerflowAmount` is the batch's total, saturated at 2^63 - 1.
    """
    return TypedSearchAttributes(
        [
            SearchAttributePair(attrs.STATUS, "running"),
            SearchAttributePair(attrs.STEP, "credit"),
            SearchAttributePair(attrs.SOURCE_SHARD, str(batch.source_shard)),
            SearchAttributePair(
                attrs.DESTINATION_SHARDS, [str(s) for s in batch.destination_shards]
            ),
            SearchAttributePair(attrs.CURRENCY, batch.currency),
            # An Int64 attribute: a batch of several bigint-sized transfers would not fit,
            # and a start Temporal refuses would be retried by the sweeper forever.
            SearchAttributePair(attrs.AMOUNT, min(batch.amount, BIGINT_MAX)),
            SearchAttributePair(attrs.TRANSFER_COUNT, len(batch.transfers)),
            SearchAttributePair(attrs.TRANSFER_IDS, [t.id for t in batch.transfers]),
        ]
    )


def settlement_summary(batch: SettlementBatch) -> str:
    """The one line the Temporal UI shows for the saga: `3 transfers, 12.50 USD, shard 0 →
    2, 3` (the workflow's static summary, fixed at start)."""
    count = len(batch.transfers)
    noun = "transfer" if count == 1 else "transfers"
    destinations = ", ".join(str(s) for s in batch.destination_shards)
    total = format_minor(batch.amount, batch.currency)
    return f"{count} {noun}, {total}, shard {batch.source_shard} → {destinations}"


def settlement_details(batch: SettlementBatch) -> str:
    """The saga's static details (Temporal markdown): one line per transfer it settles."""
    lines = [
        f"- `{t.id}`: {format_minor(t.amount, batch.currency)} → shard {t.destination_shard}"
        for t in batch.transfers
    ]
    return "\n".join(lines)


_UNAVAILABLE = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.CANCELLED,
    }
)


def is_unavailable(error: RPCError) -> bool:
    """Whether Temporal failed to answer (try again later) rather than refused the call."""
    return error.status in _UNAVAILABLE


SETTLEMENT_WORKFLOW = "SettleCrossShardBatch"
"""Started by name: the workflow module imports the activities, which start workflows."""


async def start_settlement(
    client: Client, *, task_queue: str, batch: SettlementBatch
) -> WorkflowHandle[object, SettlementOutcome]:
    """Start the saga of `batch`, or find the run that already settles it.

    Raises:
        temporalio.service.RPCError, RuntimeError: Temporal is unreachable; the rows stay
            claimed and the sweeper starts the same id later.
    """
    try:
        return await client.start_workflow(
            SETTLEMENT_WORKFLOW,
            batch,
            result_type=SettlementOutcome,
            id=batch.batch_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=initial_search_attributes(batch),
            static_summary=settlement_summary(batch),
            static_details=settlement_details(batch),
            rpc_timeout=timedelta(seconds=TEMPORAL_RPC_TIMEOUT_S),
        )
    except WorkflowAlreadyStartedError:
        log.info("settlement already started", workflow_id=batch.batch_id)
        return client.get_workflow_handle(batch.batch_id, result_type=SettlementOutcome)
