"""The event feed's vocabulary: which change of a transfer each event reports.

An event is written in the transaction that changes a transfer's status, with the transfer
as that change left it. Today's writers report `transfer.posted`, `transfer.failed`,
`transfer.pending`, `transfer.captured`, `transfer.voided`, `transfer.expired`,
`transfer.requires_review`, `transfer.approved`, `transfer.rejected` and `funds.available`.
"""

from enum import StrEnum

from ledger.transfers import TransferStatus


class EventType(StrEnum):
    """What an event reports."""

    TRANSFER_POSTED = "transfer.posted"
    TRANSFER_FAILED = "transfer.failed"
    TRANSFER_PENDING = "transfer.pending"
    TRANSFER_CAPTURED = "transfer.captured"
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
