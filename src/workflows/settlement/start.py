"""Starting a settlement workflow: the one place that knows its id policy and attributes.

The dispatcher (in the API, `workflows.handover`) and the sweep (in the worker,
`workflows.sweep`) both start batches here, by the workflow's class. The id
derives from the claimed transfers, duplicates are rejected whether the first run is open or
closed, and a start that finds its id taken is not an error: someone with the same claim
started it first, and that run settles exactly these transfers.
"""

import re
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
from shards.outbox import OutboxRow
from workflows import search_attributes as attrs
from workflows.settlement.inputs import SettlementBatch, SettlementOutcome, SettlementTransfer
from workflows.settlement.workflow import SettleCrossShardBatch

log = structlog.get_logger("ledgerflow.workflows")

WORKFLOW_ID_PREFIX = "settle"
_RECLAIM_SUFFIX = re.compile(r"-r(\d+)$")


def settlement_workflow_id_prefix(source: int) -> str:
    """What the workflow id of a batch out of `source` starts with.

    The id is this prefix and the batch's first claimed transfer id (`shards.outbox.claim`). A
    transfer is claimed once, so no two batches share a first transfer: the id is unique,
    and anyone who knows the claim (the dispatcher, the sweeper) finds the same one.
    """
    return f"{WORKFLOW_ID_PREFIX}-{source}-"


def reclaimed_workflow_id(workflow_id: str) -> str:
    """The id under which rows are settled again after their workflow closed early.

    `settle-0-tr_X` becomes `settle-0-tr_X-r1`, then `-r2`: deterministic, so two
    sweepers agree, and the conditional re-claim lets only one of them win.
    """
    match = _RECLAIM_SUFFIX.search(workflow_id)
    if match is None:
        return f"{workflow_id}-r1"
    return f"{workflow_id[: match.start()]}-r{int(match.group(1)) + 1}"


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
        transfers=[
            SettlementTransfer(
                id=r.transfer_id,
                tenant_id=r.tenant_id,
                debit_account_id=r.debit_account_id,
                credit_account_id=r.credit_account_id,
                amount=r.amount,
                destination_shard=r.destination_shard,
                kind=r.kind,
            )
            for r in rows
        ],
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


async def start_settlement(
    client: Client, *, task_queue: str, batch: SettlementBatch
) -> WorkflowHandle[SettleCrossShardBatch, SettlementOutcome]:
    """Start the saga of `batch`, or find the run that already settles it.

    Raises:
        temporalio.service.RPCError, RuntimeError: Temporal is unreachable; the rows stay
            claimed and the sweeper starts the same id later.
    """
    try:
        return await client.start_workflow(
            SettleCrossShardBatch.run,
            batch,
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
        return client.get_workflow_handle_for(SettleCrossShardBatch.run, batch.batch_id)
