"""A hold's changes as the posting path plans them: a capture (in part, several times, or
finally), a void, an increment, the expiry; and a review's decision on a transfer held for
review.

The plan is pure: from what the hold holds now it says which movements the change makes
(`CAPTURE`, `RELEASE`, `INCREASE_HOLD`, in their one-shard form; across shards the posting
path turns each into its source movement and the destination's follow-up) and what it
leaves on the transfer. The posting path applies the movements under the transfer's lock,
in the group commit, and checks each through `ledger.posting`, so a change of a hold keeps
every rule a new transfer keeps.
"""

from dataclasses import dataclass
from enum import StrEnum

from ledger.errors import ErrorCode, LedgerError
from ledger.limits import BIGINT_MAX
from ledger.posting import Movement
from ledger.transfers import EventType, SagaStep, TransferStatus, check_step, check_transition


class HoldAction(StrEnum):
    """What a caller does to a hold."""

    CAPTURE = "capture"
    VOID = "void"
    INCREMENT = "increment"
    APPROVE = "approve"
    """A review's decision: post the held money (across shards, hand it to a saga)."""
    REJECT = "reject"
    """A review's decision (or its timeout): release the held money; the transfer fails."""
    EXPIRE = "expire"
    """The funds timers, once a hold's `expires_at` passed: release what it still holds."""


REVIEW_DECISIONS = frozenset({HoldAction.APPROVE, HoldAction.REJECT})


@dataclass(frozen=True, slots=True)
class HoldPlan:
    """The movements a change makes and what it leaves on the transfer row."""

    steps: tuple[tuple[Movement, int], ...]
    """(movement, amount) in order; empty when nothing moves (a void of a hold captured
    in full, say)."""
    status: TransferStatus
    amount: int
    """Held so far, increments included."""
    captured: int
    capture: dict[str, object] | None
    """The capture to append to the row's list, if the change is one."""
    event: EventType | None
    failure_code: ErrorCode | None = None
    """A rejected review's."""
    step: SagaStep | None = None
    """Across shards, the saga step the change leaves (None: as it was)."""
    to_saga: bool = False
    """Across shards, an approved review: the transfer is handed to a saga."""


def check_open(transfer_id: str, status: TransferStatus, *, expired: bool) -> None:
    """Refuse a change of a hold that is no longer open: `expired` says whether its
    `expires_at` is behind the shard's clock, read under the transfer's lock, so a hold is
    refused from its expiry instant whatever the timers are doing.

    Raises:
        LedgerError(transfer_expired, transfer_not_pending).
    """
    if status is TransferStatus.EXPIRED or (status is TransferStatus.PENDING and expired):
        raise LedgerError(ErrorCode.TRANSFER_EXPIRED, f"the hold {transfer_id} expired")
    if status is not TransferStatus.PENDING:
        raise LedgerError(
            ErrorCode.TRANSFER_NOT_PENDING, f"transfer {transfer_id} is {status}, not pending"
        )


def check_due(transfer_id: str, status: TransferStatus, *, due: bool) -> None:
    """Refuse the expiry of a hold that is no longer open (captured, voided or expired
    first), or whose `expires_at` is still ahead of the shard's clock.

    Raises:
        LedgerError(transfer_not_pending, invalid_request).
    """
    if status is not TransferStatus.PENDING:
        raise LedgerError(
            ErrorCode.TRANSFER_NOT_PENDING, f"transfer {transfer_id} is {status}, not pending"
        )
    if not due:
        raise LedgerError(ErrorCode.INVALID_REQUEST, f"the hold {transfer_id} is not due yet")


def check_waiting(transfer_id: str, status: TransferStatus) -> None:
    """Refuse a decision on a transfer that no longer waits for review (decided, or timed
    out, before).

    Raises:
        LedgerError(transfer_not_pending).
    """
    if status is not TransferStatus.REQUIRES_REVIEW:
        raise LedgerError(
            ErrorCode.TRANSFER_NOT_PENDING,
            f"transfer {transfer_id} is {status}, not waiting for review",
        )


def plan_decision(
    approve: bool, *, amount: int, cross_shard: bool, step: SagaStep | None
) -> HoldPlan:
    """A review's decision on a transfer held for review (its whole `amount`): on one shard
    the held money posts (`CAPTURE`) or is released (`RELEASE`); across shards an approved
    reserve is handed to a saga (nothing moves now), a rejected one is released on the
    source (`RELEASE_ACROSS`: no destination was credited, so none follows)."""
    held = TransferStatus.REQUIRES_REVIEW
    if approve:
        event = EventType.TRANSFER_APPROVED
        if cross_shard:
            status = check_transition(held, TransferStatus.PROCESSING)
            return HoldPlan((), status, amount, 0, None, event, to_saga=True)
        status = check_transition(held, TransferStatus.POSTED)
        return HoldPlan(((Movement.CAPTURE, amount),), status, amount, 0, None, event)
    status = check_transition(held, TransferStatus.FAILED)
    event = EventType.TRANSFER_REJECTED
    if cross_shard:
        assert step is not None
        released = check_step(step, SagaStep.RELEASED)
        return HoldPlan(
            ((Movement.RELEASE_ACROSS, amount),),
            status,
            amount,
            0,
            None,
            event,
            failure_code=ErrorCode.REVIEW_REJECTED,
            step=released,
        )
    return HoldPlan(
        ((Movement.RELEASE, amount),),
        status,
        amount,
        0,
        None,
        event,
        failure_code=ErrorCode.REVIEW_REJECTED,
    )


def plan_change(
    action: HoldAction, *, amount: int | None, final: bool, held_total: int, captured: int
) -> HoldPlan:
    """What `action` does to an open hold that has held `held_total` (increments included)
    and captured `captured` of it.

    Raises:
        LedgerError(amount_exceeds_hold): a capture of more than is still held.
        LedgerError(amount_overflow): an increment past the bigint range in all.
    """
    held = held_total - captured
    status = TransferStatus.PENDING
    match action:
        case HoldAction.INCREMENT:
            assert amount is not None
            assert amount > 0
            if held_total + amount > BIGINT_MAX:
                # What the transfer debits in all is an amount like any other.
                raise LedgerError(
                    ErrorCode.AMOUNT_OVERFLOW,
                    f"the hold would debit {held_total + amount} in all, past the bigint range",
                    "amount",
                )
            return HoldPlan(
                ((Movement.INCREASE_HOLD, amount),),
                status,
                held_total + amount,
                captured,
                None,
                EventType.TRANSFER_INCREMENTED,
            )
        case HoldAction.VOID:
            steps = ((Movement.RELEASE, held),) if held else ()
            status = check_transition(status, TransferStatus.VOIDED)
            return HoldPlan(steps, status, held_total, captured, None, EventType.TRANSFER_VOIDED)
        case HoldAction.EXPIRE:
            steps = ((Movement.RELEASE, held),) if held else ()
            status = check_transition(status, TransferStatus.EXPIRED)
            return HoldPlan(steps, status, held_total, captured, None, EventType.TRANSFER_EXPIRED)
        case HoldAction.CAPTURE:
            take = held if amount is None else amount
            if take > held:
                raise LedgerError(
                    ErrorCode.AMOUNT_EXCEEDS_HOLD,
                    f"{take} is more than the {held} still held",
                    "amount",
                )
            moves: list[tuple[Movement, int]] = [(Movement.CAPTURE, take)] if take else []
            if final:
                status = check_transition(status, TransferStatus.POSTED)
                if held > take:
                    moves.append((Movement.RELEASE, held - take))
            return HoldPlan(
                tuple(moves),
                status,
                held_total,
                captured + take,
                {"amount": take, "final": final},
                EventType.TRANSFER_CAPTURED,
            )
        case HoldAction.APPROVE | HoldAction.REJECT:
            raise AssertionError("a review's decision is planned by plan_decision")
