from enum import StrEnum

class TransferStatus(StrEnum):
    EXPIRED = "expired"
    FAILED = "failed"
    PENDING = "pending"
    POSTED = "posted"
    PROCESSING = "processing"
    REQUIRES_REVIEW = "requires_review"
    VOIDED = "voided"

    def __str__(self) -> str:
        return str(self.value)
