"""Starting an atomic batch's workflow and waiting for its outcome (in the API process)."""

import asyncio
from datetime import timedelta
from typing import Any

import structlog
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import BIGINT_MAX, SEARCH_ATTRIBUTE_VALUE_BYTES_MAX, TEMPORAL_RPC_TIMEOUT_S
from workflows import search_attributes as attrs
from workflows.atomic.inputs import AtomicBatch, AtomicOutcome
from workflows.atomic.workflow import SettleAtomicBatch

log = structlog.get_logger("ledgerflow.workflows")


def atomic_search_attributes(batch: AtomicBatch) -> TypedSearchAttributes:
    """What an operator filters on: the settlement saga's attributes, except the source
    shard, which an atomic batch has several of (`LedgerflowAmount` saturates; with legs in
    several currencies `LedgerflowCurrency` is left out)."""
    currencies = {leg.currency for leg in batch.legs}
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(attrs.STATUS, "running"),
        SearchAttributePair(attrs.STEP, "reserve"),
        SearchAttributePair(attrs.DESTINATION_SHARDS, [str(s) for s in batch.destination_shards]),
        SearchAttributePair(attrs.AMOUNT, min(sum(leg.amount for leg in batch.legs), BIGINT_MAX)),
        SearchAttributePair(attrs.TRANSFER_COUNT, len(batch.legs)),
        SearchAttributePair(attrs.TRANSFER_IDS, searchable_ids([leg.id for leg in batch.legs])),
    ]
    if len(currencies) == 1:
        pairs.append(SearchAttributePair(attrs.CURRENCY, next(iter(currencies))))
    return TypedSearchAttributes(pairs)


def searchable_ids(ids: list[str]) -> list[str]:
    """As many of a batch's leg ids, from the first, as fit one search attribute value
    (about 60): a larger batch is found by one of its first legs, or by its workflow id,
    which every leg's transfer records."""
    kept: list[str] = []
    size = 2  # the JSON list's brackets
    for transfer_id in ids:
        size += len(transfer_id) + 3  # two quotes and a comma
        if size > SEARCH_ATTRIBUTE_VALUE_BYTES_MAX:
            break
        kept.append(transfer_id)
    return kept


async def start_atomic(
    client: Client, *, task_queue: str, batch: AtomicBatch
) -> WorkflowHandle[SettleAtomicBatch, AtomicOutcome]:
    """Start the workflow of `batch`, or find the run a previous attempt started.

    Raises:
        temporalio.service.RPCError, RuntimeError, TimeoutError: Temporal is unreachable;
            nothing moved (the workflow moves the money), and a retry starts the same id.
    """
    try:
        return await client.start_workflow(
            SettleAtomicBatch.run,
            batch,
            id=batch.batch_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=atomic_search_attributes(batch),
            static_summary=f"atomic batch of {len(batch.legs)} transfers",
            rpc_timeout=timedelta(seconds=TEMPORAL_RPC_TIMEOUT_S),
        )
    except WorkflowAlreadyStartedError:
        log.info("atomic batch already started", workflow_id=batch.batch_id)
        return client.get_workflow_handle_for(SettleAtomicBatch.run, batch.batch_id)


async def settle_atomic(
    client: Client, *, task_queue: str, batch: AtomicBatch, wait_s: float
) -> AtomicOutcome | None:
    """Start (or find) the batch's workflow and wait up to `wait_s` for its outcome.

    Returns None while it still settles (or when its result could not be read): the
    transfer rows tell.

    Raises:
        LedgerError(settlement_unavailable): Temporal did not take the start; nothing moved.
    """
    try:
        handle = await start_atomic(client, task_queue=task_queue, batch=batch)
    except (RPCError, RuntimeError, TimeoutError) as error:
        log.warning("atomic batch start failed", workflow_id=batch.batch_id, error=str(error))
        raise LedgerError(
            ErrorCode.SETTLEMENT_UNAVAILABLE, "cross-shard settlement is unavailable; retry"
        ) from error
    try:
        return await asyncio.wait_for(handle.result(), wait_s)
    except TimeoutError:
        return None
    except (RPCError, RuntimeError, WorkflowFailureError) as error:
        log.info("stopped waiting for atomic batch", workflow_id=batch.batch_id, error=str(error))
        return None
