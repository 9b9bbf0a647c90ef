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
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import orjson
from fastapi.responses import Response

from api.auth import Principal
from api.batch_models import BatchCreate, BatchItem, BatchItemOut, BatchOut, item_error
from api.idempotency import Attempt, Fingerprint, run_idempotent
from api.models import ErrorDetail, SagaOut, TransferCreate, TransferOut
from api.presenters import transfer_out
from api.transfer_service import TransferService
from ledger import limits
from ledger.errors import ErrorCode, LedgerError
from ledger.ids import is_account_id
from ledger.metadata import check_metadata
from ledger.money import currency_exponent
from ledger.slots import slot_of
from ledger.transfers import TransferStatus
from shards import transfers as transfer_rows
from shards.cluster import ShardCluster
from shards.idempotency import IdempotencyStore
from shards.ids import new_transfer_id, transfer_id_for
from shards.transfers import TransferRecord
from workflows.atomic_models import AtomicBatch, AtomicLeg, AtomicOutcome, atomic_workflow_id

SINGLE_TRANSFER = "POST /v1/transfers"
"""An item's fingerprint is a single request's, so their keys are interchangeable."""


@runtime_checkable
class AtomicSettlement(Protocol):
    """Settles atomic batches (implemented by `workflows.dispatch.SettlementDispatcher`)."""

    async def settle_atomic(self, batch: AtomicBatch, *, wait_s: float) -> AtomicOutcome | None:
        """Start the batch's workflow; its outcome if it ends within `wait_s`, else None."""
        ...


ItemWork = Callable[[Attempt | None], Awaitable[tuple[int, TransferOut]]]


def check_batch(body: BatchCreate, *, request_key: str | None) -> None:
    """Refuse bad input before anything moves, naming the item: `transfers[17].amount`.

    Raises:
        LedgerError: same_account, currency_unknown, metadata_invalid, invalid_request.
    """
    keys: dict[str, int] = {}
    for index, item in enumerate(body.transfers):
        try:
            if item.debit_account_id == item.credit_account_id:
                raise LedgerError(
                    ErrorCode.SAME_ACCOUNT,
                    "debit and credit accounts must differ",
                    "credit_account_id",
                )
            currency_exponent(item.currency)
            check_metadata(item.metadata)
        except LedgerError as error:
            raise LedgerError(
                error.code,
                f"transfers[{index}]: {error.message}",
                f"transfers[{index}].{error.param}",
            ) from error
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
    if len(body.transfers) > limits.ATOMIC_BATCH_LEGS_MAX:
        raise LedgerError(
            ErrorCode.INVALID_REQUEST,
            f"an atomic batch holds at most {limits.ATOMIC_BATCH_LEGS_MAX} transfers",
            "transfers",
        )
    # The legs travel as one workflow input; ids, keys and shards add a few hundred bytes
    # to each item as sent.
    size = len(orjson.dumps(body.model_dump(mode="json"))) + 400 * len(body.transfers)
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


def _from_response(response: Response) -> BatchItemOut:
    """An item's outcome from the answer a single request would have got."""
    body = orjson.loads(bytes(response.body))
    if "error" in body:
        return BatchItemOut(status=response.status_code, error=ErrorDetail(**body["error"]))
    return BatchItemOut(status=response.status_code, transfer=TransferOut(**body))


def _from_error(error: LedgerError) -> BatchItemOut:
    return item_error(error.code, error.message, error.param)


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
        self._settlement = settlement
        self._sync_wait_s = sync_wait_s

    async def create(
        self, *, principal: Principal, body: BatchCreate, attempt: Attempt | None
    ) -> tuple[int, BatchOut]:
        """Make every item; returns (200, one outcome per item, in order).

        Raises:
            LedgerError: settlement_unavailable (transient) for an atomic batch when
                Temporal does not take it; nothing moved.
        """
        if body.atomic:
            data = await self._atomic(principal, body, attempt)
        else:
            data = await asyncio.gather(
                *(
                    self._one(principal, index, item, attempt)
                    for index, item in enumerate(body.transfers)
                )
            )
        return 200, BatchOut(atomic=body.atomic, data=list(data))

    async def _keyed(
        self, principal: Principal, item: BatchItem, transfer: TransferCreate, work: ItemWork
    ) -> BatchItemOut:
        """Run `work` under the item's own key, as a single request would."""
        assert item.idempotency_key is not None
        canonical = orjson.dumps(transfer.model_dump(mode="json"))
        try:
            response = await run_idempotent(
                self._store,
                principal=principal,
                key=item.idempotency_key,
                fingerprint=Fingerprint.of(SINGLE_TRANSFER, transfer, canonical),
                work=work,
            )
        except LedgerError as error:
            return _from_error(error)
        return _from_response(response)

    async def _one(
        self, principal: Principal, index: int, item: BatchItem, attempt: Attempt | None
    ) -> BatchItemOut:
        """One item on its own, exactly as a single request."""
        transfer = item.transfer()

        async def work(item_attempt: Attempt | None) -> tuple[int, TransferOut]:
            return await self._transfers.create(
                principal=principal, body=transfer, attempt=item_attempt
            )

        if item.idempotency_key is not None:
            return await self._keyed(principal, item, transfer, work)
        derived = None
        if attempt is not None:
            derived = Attempt(f"{attempt.operation_key}:{index}", attempt.first_seen_at)
        try:
            status, out = await work(derived)
        except LedgerError as error:
            return _from_error(error)
        return BatchItemOut(status=status, transfer=out)

    async def _atomic(
        self, principal: Principal, body: BatchCreate, attempt: Attempt | None
    ) -> list[BatchItemOut]:
        """All items or none: claim the items' keys, start the batch's workflow, answer.

        Raises:
            LedgerError: settlement_unavailable (nothing moved); idempotency_key_reused or
                idempotency_key_in_flight naming the item whose key is taken.
        """
        if self._settlement is None:
            raise LedgerError(
                ErrorCode.SETTLEMENT_UNAVAILABLE,
                "cross-shard settlement is not configured on this server",
            )
        items = body.transfers
        unknown = _unknown_accounts(items)
        if unknown:
            # Refused before anything was claimed or moved, as the reserve would refuse it.
            first = min(unknown)
            return [
                unknown[i] if i in unknown else _leg_refused(None, first) for i in range(len(items))
            ]
        decided: asyncio.Future[list[BatchItemOut]] = asyncio.get_running_loop().create_future()
        entered = {
            i: asyncio.get_running_loop().create_future()
            for i, it in enumerate(items)
            if it.idempotency_key
        }
        keyed = {
            i: asyncio.create_task(
                self._keyed(
                    principal, items[i], items[i].transfer(), _waiting(i, entered[i], decided)
                )
            )
            for i in entered
        }
        await asyncio.gather(
            *(
                asyncio.wait({entered[i], keyed[i]}, return_when=asyncio.FIRST_COMPLETED)
                for i in keyed
            )
        )
        taken = [i for i in keyed if not entered[i].done()]
        if taken and len(taken) == len(items):
            # Every item's key answered already: the batch was made before; replay it.
            return [keyed[i].result() for i in range(len(items))]
        try:
            if taken:
                raise _key_taken(taken[0], keyed[taken[0]].result())
            batch = self._legs(principal, items, attempt, entered)
            outcome = await self._settlement.settle_atomic(batch, wait_s=self._sync_wait_s)
            answers = await self._answers(principal, batch, outcome)
        except BaseException as error:
            # The items' claims are let go (nothing moved under them), then the batch fails.
            if keyed:
                decided.set_exception(
                    LedgerError(ErrorCode.SETTLEMENT_UNAVAILABLE, "the atomic batch was not made")
                )
                await asyncio.gather(*keyed.values(), return_exceptions=True)
            raise error
        decided.set_result(answers)
        done = {i: await task for i, task in keyed.items()}
        return [done.get(i, answer) for i, answer in enumerate(answers)]

    def _legs(
        self,
        principal: Principal,
        items: list[BatchItem],
        attempt: Attempt | None,
        entered: dict[int, "asyncio.Future[Attempt | None]"],
    ) -> AtomicBatch:
        """The workflow's input: a leg per item, with ids and keys every attempt shares."""
        legs: list[AtomicLeg] = []
        for index, item in enumerate(items):
            leg_attempt = entered[index].result() if index in entered else None
            if leg_attempt is None and attempt is not None:
                leg_attempt = Attempt(f"{attempt.operation_key}:{index}", attempt.first_seen_at)
            slot = slot_of(item.debit_account_id)
            if leg_attempt is not None and leg_attempt.first_seen_at is not None:
                transfer_id = transfer_id_for(
                    leg_attempt.operation_key, leg_attempt.first_seen_at, slot
                )
            else:
                transfer_id = new_transfer_id(slot)
            legs.append(
                AtomicLeg(
                    id=transfer_id,
                    tenant_id=principal.tenant_id,
                    operation_key=(
                        leg_attempt.operation_key if leg_attempt else f"transfer:{transfer_id}"
                    ),
                    debit_account_id=item.debit_account_id,
                    credit_account_id=item.credit_account_id,
                    amount=item.amount,
                    currency=item.currency,
                    source_shard=self._cluster.shard_of(item.debit_account_id).index,
                    destination_shard=self._cluster.shard_of(item.credit_account_id).index,
                    metadata=item.metadata,
                )
            )
        return AtomicBatch(atomic_workflow_id([leg.operation_key for leg in legs]), legs)

    async def _answers(
        self, principal: Principal, batch: AtomicBatch, outcome: AtomicOutcome | None
    ) -> list[BatchItemOut]:
        """Each leg's answer, from its transfer row (which the saga finished, or not yet)."""
        leg_ids = outcome.leg_ids if outcome is not None else [leg.id for leg in batch.legs]
        records = await self._read(principal, leg_ids)
        refusals = outcome.refusals if outcome is not None else {}
        refused_first = next((i for i, t in enumerate(leg_ids) if t in refusals), None)
        answers: list[BatchItemOut] = []
        for index, transfer_id in enumerate(leg_ids):
            record = records.get(transfer_id)
            refusal = refusals.get(transfer_id)
            if refusal is not None and (record is None or record.status is TransferStatus.FAILED):
                answers.append(item_error(ErrorCode(refusal.code), refusal.message, refusal.param))
            elif record is None:
                answers.append(_processing(batch.legs[index], batch.batch_id))
            elif record.status is TransferStatus.FAILED:
                answers.append(_failed(record, refused_first))
            else:
                status = 202 if record.status is TransferStatus.PROCESSING else 201
                answers.append(BatchItemOut(status=status, transfer=transfer_out(record)))
        return answers

    async def _read(
        self, principal: Principal, transfer_ids: list[str]
    ) -> dict[str, TransferRecord]:
        """The tenant's transfers among `transfer_ids`, read on the shards their ids name."""
        by_shard: dict[int, list[str]] = {}
        for transfer_id in transfer_ids:
            shard = self._cluster.shard_of_transfer(transfer_id).index
            by_shard.setdefault(shard, []).append(transfer_id)

        async def read(shard: int, ids: list[str]) -> list[TransferRecord]:
            async with self._cluster.shards[shard].connection() as conn:
                return await transfer_rows.fetch_transfers(conn, ids)

        found = await asyncio.gather(*(read(s, ids) for s, ids in by_shard.items()))
        return {r.id: r for rows in found for r in rows if r.tenant_id == principal.tenant_id}


def _waiting(
    index: int,
    entered: "asyncio.Future[Attempt | None]",
    decided: "asyncio.Future[list[BatchItemOut]]",
) -> ItemWork:
    """An atomic item's work under its own key: report the claim, then wait for the batch
    and answer this item's part of it (a refusal is raised, to be stored like one)."""

    async def work(attempt: Attempt | None) -> tuple[int, TransferOut]:
        entered.set_result(attempt)
        answer = (await decided)[index]
        if answer.error is not None:
            raise LedgerError(answer.error.code, answer.error.message, answer.error.param)
        assert answer.transfer is not None
        return answer.status, answer.transfer

    return work


def _unknown_accounts(items: list[BatchItem]) -> dict[int, BatchItemOut]:
    """Items naming an id no customer account has (a system account's, say)."""
    unknown: dict[int, BatchItemOut] = {}
    for index, item in enumerate(items):
        for account_id, param in (
            (item.debit_account_id, "debit_account_id"),
            (item.credit_account_id, "credit_account_id"),
        ):
            if index not in unknown and not is_account_id(account_id):
                unknown[index] = item_error(
                    ErrorCode.ACCOUNT_NOT_FOUND, f"no such {param.split('_')[0]} account", param
                )
    return unknown


def _leg_refused(transfer_id: str | None, refused_index: int | None) -> BatchItemOut:
    which = "another transfer" if refused_index is None else f"transfers[{refused_index}]"
    what = "this transfer was not made" if transfer_id is None else f"transfer {transfer_id} failed"
    return item_error(
        ErrorCode.BATCH_LEG_REFUSED,
        f"{what}: {which} of the atomic batch was refused, so no transfer of it moved money",
        None,
    )


def _failed(record: TransferRecord, refused_index: int | None) -> BatchItemOut:
    """A leg the batch's workflow released, as its row tells (its own refusal, when the
    workflow's outcome was not read in time, is its `failure_code`)."""
    code = ErrorCode(record.failure_code or ErrorCode.BATCH_LEG_REFUSED)
    if code is ErrorCode.BATCH_LEG_REFUSED:
        return _leg_refused(record.id, refused_index)
    return item_error(code, f"transfer {record.id} failed ({code}); its hold was released", None)


def _key_taken(index: int, answer: BatchItemOut) -> LedgerError:
    """The error of an atomic batch one of whose items' keys is already taken."""
    param = f"transfers[{index}].idempotency_key"
    if answer.error is not None:
        return LedgerError(answer.error.code, f"transfers[{index}]: {answer.error.message}", param)
    return LedgerError(
        ErrorCode.IDEMPOTENCY_KEY_REUSED,
        f"transfers[{index}]: this idempotency_key was used by an earlier request, whose "
        "transfer an atomic batch cannot take in",
        param,
    )


def _processing(leg: AtomicLeg, workflow_id: str) -> BatchItemOut:
    """A leg whose reserve has not run yet: its transfer, as it will read once it has."""
    transfer = TransferOut(
        id=leg.id,
        status=TransferStatus.PROCESSING,
        amount=leg.amount,
        currency=leg.currency,
        debit_account_id=leg.debit_account_id,
        credit_account_id=leg.credit_account_id,
        cross_shard=True,
        saga=SagaOut(
            step=None,
            workflow_id=workflow_id,
            source_shard=leg.source_shard,
            destination_shard=leg.destination_shard,
        ),
        metadata=leg.metadata,
        created_at=datetime.now(UTC),
    )
    return BatchItemOut(status=202, transfer=transfer)
