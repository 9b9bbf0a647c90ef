from enum import StrEnum

class ErrorCode(StrEnum):
    ACCOUNT_CLOSED = "account_closed"
    ACCOUNT_FROZEN = "account_frozen"
    ACCOUNT_NOT_EMPTY = "account_not_empty"
    ACCOUNT_NOT_FOUND = "account_not_found"
    AMOUNT_EXCEEDS_HOLD = "amount_exceeds_hold"
    AMOUNT_INVALID = "amount_invalid"
    AMOUNT_OVERFLOW = "amount_overflow"
    API_KEY_INVALID = "api_key_invalid"
    API_KEY_MISSING = "api_key_missing"
    BATCH_LEG_REFUSED = "batch_leg_refused"
    BODY_TOO_LARGE = "body_too_large"
    CURRENCY_MISMATCH = "currency_mismatch"
    CURRENCY_UNKNOWN = "currency_unknown"
    IDEMPOTENCY_KEY_IN_FLIGHT = "idempotency_key_in_flight"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INTERNAL_ERROR = "internal_error"
    INVALID_REQUEST = "invalid_request"
    METADATA_INVALID = "metadata_invalid"
    RATE_LIMITED = "rate_limited"
    RESOURCE_NOT_FOUND = "resource_not_found"
    SAME_ACCOUNT = "same_account"
    SETTLEMENT_FAILED = "settlement_failed"
    SETTLEMENT_UNAVAILABLE = "settlement_unavailable"
    SHARD_UNAVAILABLE = "shard_unavailable"
    TRANSFER_EXPIRED = "transfer_expired"
    TRANSFER_NOT_FOUND = "transfer_not_found"
    TRANSFER_NOT_PENDING = "transfer_not_pending"

    def __str__(self) -> str:
        return str(self.value)
