from enum import StrEnum

class TransferStatus(StrEnum):
    FAILED = "failed"
    PENDING = "pending"
    POSTED = "posted"
    PROCESSING = "processing"
    VOIDED = "voided"

    def __str__(self) -> str:
        return str(self.value)
