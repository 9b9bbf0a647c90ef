"""What a posting takes and gives back: `PostingRequest`, `PostingResult`, and the stored
form of a result.

Callers build requests (the API, the saga's activities, the group committer), the posting
SQL applies them (`shards.posting`) and writes their results (`shards.batch_writes`); all of
them import the types from here, so none of those modules imports another to name them.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime

from ledger.errors import ErrorCode, LedgerError
from ledger.holds import HoldAction
from ledger.posting import Movement
from ledger.transfers import SettlementKind
from shards.db import Record
from shards.transfers import TransferRecord


@dataclass(frozen=True, slots=True)
class PostingRequest:
    """One movement of one transfer, keyed for exactly-once application."""

    operation_key: str
    transfer_id: str
    tenant_id: str
    movement: Movement
    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: str
    source_shard: int
    destination_shard: int
    metadata: dict[str, str] = field(default_factory=dict)
    failure_code: str | None = None
    """For `RELEASE_HOLD`: why the transfer failed."""
    expires_at: datetime | None = None
    """For `HOLD`: when the hold stops being capturable and is released."""
    workflow_id: str | None = None
    """For `RESERVE_FUNDS`: the workflow that settles the transfer when it is known before
    the reserve (an atomic batch); its outbox row is then claimed by it from the start, in
    the reserve's own transaction, so no other saga can take the transfer."""
    available_on: datetime | None = None
    """For `DEFER_DEBIT` and `RESERVE_FUNDS`: when the payee's pending credit becomes
    available."""
    reviews_waiting_max: int | None = None
    """For a transfer its debit account's `review_above` sends to review: how many of the
    tenant's transfers may wait for review on this shard (None: no cap)."""
    payee_refusal: LedgerError | None = None
    """For `RESERVE_FUNDS`: what the payee's shard showed it would refuse the credit for
    when the request came (`ledger.posting.refusal_of_payee`); it answers in
    `ledger.posting.REFUSAL_ORDER` with this shard's own refusals."""

    @property
    def settlement_kind(self) -> SettlementKind:
        """What the saga makes of this transfer when it is a cross-shard reserve."""
        if self.expires_at is not None:
            return SettlementKind.HOLD
        if self.available_on is not None:
            return SettlementKind.DEFERRED
        return SettlementKind.TRANSFER


@dataclass(frozen=True, slots=True)
class HoldChangeRequest:
    """A change of an open hold (`ledger.holds`), keyed for exactly-once application: the
    posting path locks the transfer row, plans the change from what it holds, and applies
    its movements in the same batch as every other posting."""

    operation_key: str
    transfer_id: str
    tenant_id: str | None
    """The tenant whose transfer it must be; None for a review's decision, which its
    workflow applies to the transfer the API checked, and for the expiry."""
    action: HoldAction
    amount: int | None = None
    """Capture: what to post (all that is held when None). Increment: by how much."""
    final: bool = True
    """Capture: release what is left (True), or keep it held for later captures."""
    payee_refusal: LedgerError | None = None
    """An increment across shards: what the payee's shard refused the raise with, under its
    lock (`shards.raises`), or, for an increment its payer could not fund as a read without
    a lock showed, what the payee's shard or the payer would refuse; answered in
    `REFUSAL_ORDER`."""
    request_key: str | None = None
    """A review's decision: the operation key of the API request that sent it, recorded
    with the decision when it applies (`shards.review.decided_under`)."""


PostingItem = PostingRequest | HoldChangeRequest
"""What the group commit takes: a movement, or a change of a hold."""


@dataclass(frozen=True, slots=True)
class PostingResult:
    """The outcome of one request; `replayed` when the operation key had been seen."""

    operation_key: str
    transfer_id: str
    error: LedgerError | None
    replayed: bool
    created_at: datetime | None = None
    """When this batch created the transfer row (None for replays and other movements)."""
    held_for_review: bool = False
    """The transfer exceeded its debit account's `review_above` and waits for review."""
    changed: TransferRecord | None = None
    """A change of a hold applied now: the transfer as the change left it."""

    @property
    def ok(self) -> bool:
        """Whether the movement was applied (now or the first time)."""
        return self.error is None


def movement_of(
    transfer: Record, movement: Movement, *, operation_key: str, amount: int
) -> PostingRequest:
    """A movement of an existing transfer, from its row (`id`, `tenant_id`, both accounts,
    `currency`, both shards): a hold's capture or release, a delayed credit made available,
    a review's decision."""
    return PostingRequest(
        operation_key=operation_key,
        transfer_id=transfer["id"],
        tenant_id=transfer["tenant_id"],
        movement=movement,
        debit_account_id=transfer["debit_account_id"],
        credit_account_id=transfer["credit_account_id"],
        amount=amount,
        currency=transfer["currency"],
        source_shard=transfer["source_shard"],
        destination_shard=transfer["destination_shard"],
    )


def result_json(error: LedgerError | None) -> str:
    """The stored result of one operation (`operations.result`)."""
    if error is None:
        return json.dumps({"ok": True})
    return json.dumps(
        {"error": {"code": str(error.code), "message": error.message, "param": error.param}}
    )


def replayed_result(key: str, transfer_id: str, stored: dict[str, object]) -> PostingResult:
    """The result of an operation seen before, read back from what `result_json` stored."""
    error = stored.get("error")
    if isinstance(error, dict):
        return PostingResult(
            key,
            transfer_id,
            LedgerError(ErrorCode(error["code"]), str(error["message"]), error.get("param")),
            replayed=True,
        )
    return PostingResult(key, transfer_id, None, replayed=True)


def raise_key(operation_key: str) -> str:
    """The key of the raise an increment across shards (keyed `operation_key` on its
    source) reserves on its destination (`Movement.RAISE_CREDIT`)."""
    return f"{operation_key}:{Movement.RAISE_CREDIT}"


def increment_key(raise_operation_key: str) -> str:
    """The source's key of the increment whose raise is keyed `raise_operation_key`."""
    suffix = f":{Movement.RAISE_CREDIT}"
    assert raise_operation_key.endswith(suffix)
    return raise_operation_key.removesuffix(suffix)
