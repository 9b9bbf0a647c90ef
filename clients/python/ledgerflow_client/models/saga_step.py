from enum import StrEnum

class SagaStep(StrEnum):
    CREDITED = "credited"
    HELD = "held"
    POSTED = "posted"
    REFUSED = "refused"
    RELEASED = "released"
    RESERVED = "reserved"

    def __str__(self) -> str:
        return str(self.value)
