from enum import StrEnum

class EventType(StrEnum):
    FUNDS_AVAILABLE = "funds.available"
    TRANSFER_APPROVED = "transfer.approved"
    TRANSFER_CAPTURED = "transfer.captured"
    TRANSFER_EXPIRED = "transfer.expired"
    TRANSFER_FAILED = "transfer.failed"
    TRANSFER_INCREMENTED = "transfer.incremented"
    TRANSFER_PENDING = "transfer.pending"
    TRANSFER_POSTED = "transfer.posted"
    TRANSFER_REJECTED = "transfer.rejected"
    TRANSFER_REQUIRES_REVIEW = "transfer.requires_review"
    TRANSFER_VOIDED = "transfer.voided"

    def __str__(self) -> str:
        return str(self.value)
