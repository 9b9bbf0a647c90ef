"""Batches of transfers: each item on its own, or all of them or none (`atomic`).

Items on their own go down the single-transfer path side by side, so the group committer
gathers a shard's items into its batches (one transaction for up to
`POSTING_BATCH_SIZE_MAX` of them) and the dispatcher hands the cross-shard ones to the
batched sagas. An atomic batch is one `SettleAtomicBatch` workflow (`workflows.atomic`).

Idempotency: an item's `idempotency_key` is claimed, completed and replayed exactly as a
single request's key would be (same fingerprint), so a later single request with it and the
same body replays the item. An item without a key moves money under an operation key
derived from the request's (`<request operation key>:<index>`), so a retried request moves
it at most once.
"""

import asyncio

import orjson

from api.atomic_batch import AtomicBatches, AtomicSettlement
from api.auth import Principal
from api.batch_items import answer_under_key, from_error
from api.batch_models import BatchCreate, BatchItem, BatchItemOut, BatchOut
from api.idempotency import Attempt, created_status
from api.models import TransferOut
from api.transfer_service import TransferService
from ledger import limits
from ledger.errors import ErrorCode, LedgerError
from shards.cluster import ShardCluster
from shards.idempotency import IdempotencyStore


def check_batch(body: BatchCreate, *, request_key: str | None) -> None:
    """Refuse bad input before anything moves, naming the item: `transfers[17].amount`.
    (What one item alone may be, its currency and metadata included, the model checked.)

    Raises:
        LedgerError: same_account, invalid_request.
    """
    keys: dict[str, int] = {}
    for index, item in enumerate(body.transfers):
        if item.debit_account_id == item.credit_account_id:
            raise LedgerError(
                ErrorCode.SAME_ACCOUNT,
                f"transfers[{index}]: debit and credit accounts must differ",
                f"transfers[{index}].credit_account_id",
            )
        if item.idempotency_key is not None:
            if item.idempotency_key in keys:
                first = keys[item.idempotency_key]
                raise LedgerError(
                    ErrorCode.INVALID_REQUEST,
                    f"transfers[{index}]: idempotency_key repeats transfers[{first}]'s",
                    f"transfers[{index}].idempotency_key",
                )
            keys[item.idempotency_key] = index
    if not body.atomic:
        return
    for index, item in enumerate(body.transfers):
        for later, param in ((item.pending, "pending"), (item.available_on, "available_on")):
            if later:
                # An atomic batch posts every leg, now, or none; a hold waits for a capture
                # and a delayed credit for its date instead.
                raise LedgerError(
                    ErrorCode.INVALID_REQUEST,
                    f"transfers[{index}]: an atomic batch cannot use {param}",
                    f"transfers[{index}].{param}",
                )
    if len(body.transfers) > limits.ATOMIC_BATCH_LEGS_MAX:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST,
            f"an atomic batch holds at most {limits.ATOMIC_BATCH_LEGS_MAX} transfers",
            "transfers",
        )
    # The legs travel as one workflow input; ids, keys and shards add a few hundred bytes
    # to each item as sent (the body limit keeps this far below the payload limit).
    size = len(orjson.dumps(body.model_dump(mode="json"))) + (
        limits.ATOMIC_LEG_OVERHEAD_BYTES * len(body.transfers)
    )
    if size > limits.TEMPORAL_PAYLOAD_BYTES_MAX:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST,
            "the atomic batch's transfers carry too much metadata to settle as one",
            "transfers",
        )
    if request_key is None and 0 < len(keys) < len(body.transfers):
        # A retry must find the same workflow: its id derives from every leg's key.
        first = next(i for i, item in enumerate(body.transfers) if item.idempotency_key is None)
        raise LedgerError(
            ErrorCode.INVALID_REQUEST,
            "in an atomic batch without an Idempotency-Key, give every item an "
            "idempotency_key or none",
            f"transfers[{first}].idempotency_key",
        )


class BatchService:
    """Creates batches of transfers."""

    def __init__(
        self,
        cluster: ShardCluster,
        transfers: TransferService,
        store: IdempotencyStore,
        *,
        settlement: AtomicSettlement | None,
        sync_wait_s: float,
    ) -> None:
        self._cluster = cluster
        self._transfers = transfers
        self._store = store
        self._atomic = AtomicBatches(cluster, store, settlement, sync_wait_s=sync_wait_s)

    async def create(
        self, *, principal: Principal, body: BatchCreate, attempt: Attempt | None
    ) -> tuple[int, BatchOut]:
        """Make every item; returns (200, one outcome per item, in order).

        Raises:
            LedgerError: settlement_unavailable (transient) for an atomic batch when
                Temporal does not take it; nothing moved.
        """
        if body.atomic:
            data = await self._atomic.create(principal=principal, body=body, attempt=attempt)
        else:
            data = await asyncio.gather(
                *(
                    self._one(principal, index, item, attempt)
                    for index, item in enumerate(body.transfers)
                )
            )
        return 200, BatchOut(atomic=body.atomic, data=list(data))

    async def _one(
        self, principal: Principal, index: int, item: BatchItem, attempt: Attempt | None
    ) -> BatchItemOut:
        """One item on its own, exactly as a single request."""
        transfer = item.transfer()

        async def work(item_attempt: Attempt | None) -> tuple[int, TransferOut]:
            created = await self._transfers.create(
                principal=principal, body=transfer, attempt=item_attempt
            )
            return created_status(created.status), created

        if item.idempotency_key is not None:
            return await answer_under_key(self._store, principal, item, work)
        derived = None
        if attempt is not None:
            derived = Attempt(f"{attempt.operation_key}:{index}", attempt.first_seen_at)
        try:
            status, out = await work(derived)
        except LedgerError as error:
            return from_error(error)
        return BatchItemOut(status=status, transfer=out)
