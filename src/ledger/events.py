"""The event feed's vocabulary: which change of a transfer each event reports.

An event is written in the transaction that changes a transfer's status, with the transfer
as that change left it. Today's writers report `transfer.posted`, `transfer.failed`,
`transfer.pending`, `transfer.captured`, `transfer.voided` and `transfer.expired`; the
other types are part of the API's contract and are written by review and delayed
availability as they land.
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


def event_for(status: TransferStatus) -> EventType | None:
    """The event a transfer reaching `status` reports, if any: a transfer still settling
    (`processing`) reports nothing until it is final."""
    match status:
        case TransferStatus.POSTED:
            return EventType.TRANSFER_POSTED
        case TransferStatus.FAILED:
            return EventType.TRANSFER_FAILED
        case TransferStatus.PENDING:
            return EventType.TRANSFER_PENDING
        case TransferStatus.VOIDED:
            return EventType.TRANSFER_VOIDED
        case TransferStatus.EXPIRED:
            return EventType.TRANSFER_EXPIRED
        case TransferStatus.PROCESSING:
            return None
