"""Atomic batches in the API: every item posted, or none, across shards too.

The items' own keys are claimed first (each exactly as a single request's), then one
`SettleAtomicBatch` workflow (`workflows.atomic`) is started with every leg and waited for
up to the short wait; each item is answered from its transfer row, and each item's key is
completed with that answer (or let go while the batch still settles).
"""

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from api.auth import Principal
from api.batch_items import ItemWork, answer_under_key
from api.batch_models import BatchCreate, BatchItem, BatchItemOut, item_error
from api.idempotency import Attempt
from api.models import SagaOut, TransferOut
from api.presenters import transfer_out
from ledger.errors import ErrorCode, LedgerError
from ledger.ids import is_account_id, slot_of
from ledger.posting import Movement
from ledger.transfers import TransferStatus
from shards import transfers as transfer_rows
from shards.cluster import SHARD_FAILURES, ShardCluster, new_transfer_id, transfer_id_for
from shards.idempotency import IdempotencyStore
from shards.posting import payee_refusals
from shards.transfers import TransferRecord
from workflows.atomic.inputs import (
    AtomicBatch,
    AtomicLeg,
    AtomicOutcome,
    LegRefusal,
    atomic_workflow_id,
)


@runtime_checkable
class AtomicSettlement(Protocol):
    """Settles atomic batches (implemented by `workflows.handover.dispatcher`)."""

    async def settle_atomic(self, batch: AtomicBatch, *, wait_s: float) -> AtomicOutcome | None:
        """Start the batch's workflow; its outcome if it ends within `wait_s`, else None."""
        ...


class AtomicBatches:
    """Makes atomic batches."""

    def __init__(
        self,
        cluster: ShardCluster,
        store: IdempotencyStore,
        settlement: AtomicSettlement | None,
        *,
        sync_wait_s: float,
    ) -> None:
        self._cluster = cluster
        self._store = store
        self._settlement = settlement
        self._sync_wait_s = sync_wait_s

    async def create(
        self, *, principal: Principal, body: BatchCreate, attempt: Attempt | None
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
                answer_under_key(self._store, principal, items[i], _waiting(i, entered[i], decided))
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
            batch = await self._with_payee_checks(self._legs(principal, items, attempt, entered))
            outcome = await self._settlement.settle_atomic(batch, wait_s=self._sync_wait_s)
            answers = await self._answers(principal, batch, outcome)
        except BaseException as error:
            # The items' claims are let go (nothing moved under them), then the batch fails.
            if any(claimed.done() for claimed in entered.values()):
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

    async def _with_payee_checks(self, batch: AtomicBatch) -> AtomicBatch:
        """The legs with what their payees' shards would refuse their credits for, so each
        leg is refused in `REFUSAL_ORDER` like a single transfer (one read per destination
        shard; a shard that does not answer leaves its legs to the prepare step)."""
        by_shard: dict[int, list[int]] = {}
        for index, leg in enumerate(batch.legs):
            by_shard.setdefault(leg.destination_shard, []).append(index)

        async def check(shard: int, indexes: list[int]) -> list[LedgerError | None]:
            try:
                return await payee_refusals(
                    self._cluster.shards[shard],
                    tenant_id=batch.legs[indexes[0]].tenant_id,
                    credits=[
                        (leg.credit_account_id, leg.amount, leg.currency)
                        for leg in (batch.legs[i] for i in indexes)
                    ],
                    step=Movement.PREPARE_CREDIT,
                )
            except SHARD_FAILURES:
                return [None] * len(indexes)

        shards = sorted(by_shard)
        found = await asyncio.gather(*(check(s, by_shard[s]) for s in shards))
        legs = list(batch.legs)
        for shard, refusals in zip(shards, found, strict=True):
            for index, refusal in zip(by_shard[shard], refusals, strict=True):
                if refusal is not None:
                    legs[index] = replace(
                        legs[index],
                        payee_refusal=LegRefusal(str(refusal.code), refusal.message, refusal.param),
                    )
        return replace(batch, legs=legs)

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
