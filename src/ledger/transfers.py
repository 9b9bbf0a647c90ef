"""The transfer lifecycle: its states, the saga's steps, and which changes are allowed.

Every writer of a transfer's status or saga step (the posting SQL's parameters, the saga,
the outbox, reconciliation, the API's presenters and its OpenAPI enum) names them from
here, and a change of status or step is checked against the tables below. Adding a state is
a change in this module plus the code that acts on it: the event a state reports is here
too (`EventType`, `event_for`).

The event feed's vocabulary: an event is written in the transaction that changes a
transfer, with the transfer as that change left it: `transfer.posted`, `transfer.failed`,
`transfer.pending`, `transfer.captured`, `transfer.incremented`, `transfer.voided`,
`transfer.expired`, `transfer.requires_review`, `transfer.approved`, `transfer.rejected`
and `funds.available`.
"""

from enum import StrEnum
from typing import Final

from ledger.posting import Movement


class TransferStatus(StrEnum):
    """Where a transfer is, as the API shows it."""

    PROCESSING = "processing"
    """Cross-shard: reserved on the source, its saga not finished."""
    PENDING = "pending"
    """A hold: the money is held on the debit side and pending on the credit side, until a
    final capture, a void or its expiry."""
    REQUIRES_REVIEW = "requires_review"
    """Above its debit account's `review_above`: the money is held, as for a hold, until a
    person approves (posted) or rejects it (failed, `review_rejected`), or the review times
    out (rejected)."""
    POSTED = "posted"
    """Final: the money moved (for a hold: captured, what was not captured released)."""
    VOIDED = "voided"
    """Final: a hold released by its owner; whatever was captured before stays posted."""
    EXPIRED = "expired"
    """Final: a hold that reached `expires_at` and was released."""
    FAILED = "failed"
    """Final: refused by the destination and compensated; `failure_code` says why."""


class SagaStep(StrEnum):
    """Where a cross-shard transfer is in its saga."""

    RESERVED = "reserved"
    """The source holds the money; the destination has not been credited."""
    CREDITED = "credited"
    """The destination was credited; the hold must be posted (never compensated)."""
    REFUSED = "refused"
    """The destination refused the credit; the hold must be released. Seen by the saga's
    query only: the transfer row goes from `reserved` straight to `released`."""
    HELD = "held"
    """Final for the saga of a hold across shards: the destination shows the credit
    pending. Captures, voids and the expiry finish it on both shards (`shards.followups`)."""
    POSTED = "posted"
    """Final: the hold was posted."""
    RELEASED = "released"
    """Final: the hold was released; the transfer failed."""


class SettlementKind(StrEnum):
    """What the saga makes of a cross-shard reserve."""

    TRANSFER = "transfer"
    """Credit the destination, post the reserve: the transfer is `posted`."""
    HOLD = "hold"
    """Credit the destination pending, keep the reserve: the hold is `pending`."""
    DEFERRED = "deferred"
    """Credit the destination pending until `available_on`, post the reserve: the transfer
    is `posted` and its credit becomes available later."""


STATUS_TRANSITIONS: Final[dict[TransferStatus, frozenset[TransferStatus]]] = {
    # A hold across shards is `pending` once its destination shows the credit.
    TransferStatus.PROCESSING: frozenset(
        {TransferStatus.POSTED, TransferStatus.FAILED, TransferStatus.PENDING}
    ),
    TransferStatus.PENDING: frozenset(
        {TransferStatus.POSTED, TransferStatus.VOIDED, TransferStatus.EXPIRED}
    ),
    TransferStatus.REQUIRES_REVIEW: frozenset(
        # Approved across shards, a transfer is handed to a saga: `processing`.
        {TransferStatus.POSTED, TransferStatus.FAILED, TransferStatus.PROCESSING}
    ),
    TransferStatus.POSTED: frozenset(),
    TransferStatus.VOIDED: frozenset(),
    TransferStatus.EXPIRED: frozenset(),
    TransferStatus.FAILED: frozenset(),
}
"""The status changes a transfer may make; a status with none is final."""

STEP_TRANSITIONS: Final[dict[SagaStep, frozenset[SagaStep]]] = {
    SagaStep.RESERVED: frozenset({SagaStep.CREDITED, SagaStep.REFUSED, SagaStep.RELEASED}),
    SagaStep.CREDITED: frozenset({SagaStep.POSTED, SagaStep.HELD}),
    SagaStep.REFUSED: frozenset({SagaStep.RELEASED}),
    SagaStep.HELD: frozenset(),
    SagaStep.POSTED: frozenset(),
    SagaStep.RELEASED: frozenset(),
}
"""The saga step changes a transfer may make. A credited transfer is never released."""

assert set(STATUS_TRANSITIONS) == set(TransferStatus)
assert set(STEP_TRANSITIONS) == set(SagaStep)


def check_transition(current: TransferStatus, new: TransferStatus) -> TransferStatus:
    """`new`, when a transfer at `current` may move there; a programming error otherwise."""
    assert new in STATUS_TRANSITIONS[current], f"a {current} transfer cannot become {new}"
    return new


def check_step(current: SagaStep, new: SagaStep) -> SagaStep:
    """`new`, when a saga at `current` may move there; a programming error otherwise."""
    assert new in STEP_TRANSITIONS[current], f"a saga at {current} cannot move to {new}"
    return new


def opening_status(movement: Movement) -> TransferStatus:
    """The status a transfer starts with: posted at once on one shard, processing while a
    saga settles it across two."""
    match movement:
        case Movement.TRANSFER:
            return TransferStatus.POSTED
        case Movement.RESERVE_FUNDS:
            return TransferStatus.PROCESSING
        case Movement.HOLD:
            return TransferStatus.PENDING
        case Movement.HOLD_FOR_REVIEW | Movement.RESERVE_FOR_REVIEW:
            return TransferStatus.REQUIRES_REVIEW
        case Movement.DEFER_DEBIT:
            # The money left the payer; the payee's credit is pending until `available_on`.
            return TransferStatus.POSTED
    raise AssertionError(f"{movement} does not open a transfer")


def finishing(movement: Movement) -> tuple[TransferStatus, SagaStep]:
    """The status and saga step a cross-shard transfer ends with when `movement` (the post or
    the release of its hold) is applied; both checked against the transitions."""
    match movement:
        case Movement.POST_HOLD:
            return (
                check_transition(TransferStatus.PROCESSING, TransferStatus.POSTED),
                check_step(SagaStep.CREDITED, SagaStep.POSTED),
            )
        case Movement.RELEASE_HOLD:
            return (
                check_transition(TransferStatus.PROCESSING, TransferStatus.FAILED),
                check_step(SagaStep.REFUSED, SagaStep.RELEASED),
            )
    raise AssertionError(f"{movement} does not finish a transfer")


class EventType(StrEnum):
    """What an event reports."""

    TRANSFER_POSTED = "transfer.posted"
    TRANSFER_FAILED = "transfer.failed"
    TRANSFER_PENDING = "transfer.pending"
    TRANSFER_CAPTURED = "transfer.captured"
    TRANSFER_INCREMENTED = "transfer.incremented"
    TRANSFER_VOIDED = "transfer.voided"
    TRANSFER_EXPIRED = "transfer.expired"
    TRANSFER_REQUIRES_REVIEW = "transfer.requires_review"
    TRANSFER_APPROVED = "transfer.approved"
    TRANSFER_REJECTED = "transfer.rejected"
    FUNDS_AVAILABLE = "funds.available"


_STATUS_EVENTS: dict[TransferStatus, EventType] = {
    TransferStatus.POSTED: EventType.TRANSFER_POSTED,
    TransferStatus.FAILED: EventType.TRANSFER_FAILED,
    TransferStatus.PENDING: EventType.TRANSFER_PENDING,
    TransferStatus.VOIDED: EventType.TRANSFER_VOIDED,
    TransferStatus.EXPIRED: EventType.TRANSFER_EXPIRED,
    TransferStatus.REQUIRES_REVIEW: EventType.TRANSFER_REQUIRES_REVIEW,
}


def event_for(status: TransferStatus) -> EventType | None:
    """The event a transfer reaching `status` reports, if any: a transfer still settling
    (`processing`) reports nothing until it is final."""
    return _STATUS_EVENTS.get(status)
