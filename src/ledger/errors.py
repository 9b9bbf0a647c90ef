"""One domain error type with a closed set of codes.

Each code says whether a retry may succeed (transient) and what kind of error it is; the
HTTP mapping lives in `api.errors` and Temporal's non-retryable types are derived from
`NON_RETRYABLE_CODES` here, so there is exactly one list.
"""

from enum import StrEnum


class ErrorType(StrEnum):
    """The broad class of an error, as the API reports it in `error.type`."""

    INVALID_REQUEST = "invalid_request_error"
    AUTHENTICATION = "authentication_error"
    IDEMPOTENCY = "idempotency_error"
    RATE_LIMIT = "rate_limit_error"
    FUNDS = "funds_error"
    STATE = "state_error"
    API = "api_error"


class ErrorCode(StrEnum):
    """Every way an operation may be refused; the set is closed."""

    INVALID_REQUEST = "invalid_request"
    BODY_TOO_LARGE = "body_too_large"
    AMOUNT_INVALID = "amount_invalid"
    AMOUNT_OVERFLOW = "amount_overflow"
    CURRENCY_UNKNOWN = "currency_unknown"
    CURRENCY_MISMATCH = "currency_mismatch"
    METADATA_INVALID = "metadata_invalid"
    SAME_ACCOUNT = "same_account"
    ACCOUNT_NOT_FOUND = "account_not_found"
    TRANSFER_NOT_FOUND = "transfer_not_found"
    RESOURCE_NOT_FOUND = "resource_not_found"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    DAILY_LIMIT_EXCEEDED = "daily_limit_exceeded"
    BALANCE_LIMIT_EXCEEDED = "balance_limit_exceeded"
    ACCOUNT_FROZEN = "account_frozen"
    ACCOUNT_CLOSED = "account_closed"
    ACCOUNT_NOT_EMPTY = "account_not_empty"
    LIMITS_BELOW_BALANCE = "limits_below_balance"
    """New limits whose floor (`min_available`, or zero for an account that may not
    overdraw) the account is overdrawn past now: nothing was changed."""
    TRANSFER_NOT_PENDING = "transfer_not_pending"
    TRANSFER_EXPIRED = "transfer_expired"
    REVIEW_REJECTED = "review_rejected"
    REVIEW_NOT_SUPPORTED = "review_not_supported"
    REVIEW_QUEUE_FULL = "review_queue_full"
    """The tenant has as many transfers waiting for review as it may
    (`LEDGERFLOW_REVIEWS_WAITING_MAX`): the transfer was not made and nothing is held."""
    AMOUNT_EXCEEDS_HOLD = "amount_exceeds_hold"
    API_KEY_MISSING = "api_key_missing"
    API_KEY_INVALID = "api_key_invalid"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    IDEMPOTENCY_KEY_IN_FLIGHT = "idempotency_key_in_flight"
    RATE_LIMITED = "rate_limited"
    """The API key sent more requests than its rate limit allows; retry after Retry-After."""
    SHARD_UNAVAILABLE = "shard_unavailable"
    SETTLEMENT_UNAVAILABLE = "settlement_unavailable"
    SETTLEMENT_FAILED = "settlement_failed"
    """The destination shard could not apply a cross-shard credit (it raised, not refused);
    the hold was released and the transfer failed. Logged with its traceback."""
    BATCH_LEG_REFUSED = "batch_leg_refused"
    """Another item of an atomic batch was refused, so this one was not made (its hold, if
    any, was released and the transfer failed)."""
    INTERNAL_ERROR = "internal_error"
    """A bug, never a business answer; logged with its traceback."""


_TRANSIENT: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT,
        ErrorCode.RATE_LIMITED,
        ErrorCode.SHARD_UNAVAILABLE,
        ErrorCode.SETTLEMENT_UNAVAILABLE,
        ErrorCode.INTERNAL_ERROR,
    }
)

_TYPES: dict[ErrorCode, ErrorType] = {
    ErrorCode.API_KEY_MISSING: ErrorType.AUTHENTICATION,
    ErrorCode.API_KEY_INVALID: ErrorType.AUTHENTICATION,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: ErrorType.IDEMPOTENCY,
    ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT: ErrorType.IDEMPOTENCY,
    ErrorCode.RATE_LIMITED: ErrorType.RATE_LIMIT,
    ErrorCode.INSUFFICIENT_FUNDS: ErrorType.FUNDS,
    ErrorCode.DAILY_LIMIT_EXCEEDED: ErrorType.FUNDS,
    ErrorCode.BALANCE_LIMIT_EXCEEDED: ErrorType.STATE,
    ErrorCode.ACCOUNT_FROZEN: ErrorType.STATE,
    ErrorCode.ACCOUNT_CLOSED: ErrorType.STATE,
    ErrorCode.ACCOUNT_NOT_EMPTY: ErrorType.STATE,
    ErrorCode.LIMITS_BELOW_BALANCE: ErrorType.STATE,
    ErrorCode.TRANSFER_NOT_PENDING: ErrorType.STATE,
    ErrorCode.TRANSFER_EXPIRED: ErrorType.STATE,
    ErrorCode.REVIEW_REJECTED: ErrorType.STATE,
    ErrorCode.REVIEW_QUEUE_FULL: ErrorType.STATE,
    ErrorCode.BATCH_LEG_REFUSED: ErrorType.STATE,
    ErrorCode.SHARD_UNAVAILABLE: ErrorType.API,
    ErrorCode.SETTLEMENT_UNAVAILABLE: ErrorType.API,
    ErrorCode.SETTLEMENT_FAILED: ErrorType.API,
    ErrorCode.INTERNAL_ERROR: ErrorType.API,
}

NON_RETRYABLE_CODES: frozenset[ErrorCode] = frozenset(c for c in ErrorCode if c not in _TRANSIENT)
"""Business refusals: retrying the same request cannot succeed."""


def is_transient(code: ErrorCode) -> bool:
    """Whether retrying the same operation later may succeed."""
    return code in _TRANSIENT


def error_type(code: ErrorCode) -> ErrorType:
    """The broad class of an error code."""
    return _TYPES.get(code, ErrorType.INVALID_REQUEST)


class LedgerError(Exception):
    """An operating error: a value to handle, never a crash.

    `param` names the request field at fault, when there is one.
    """

    def __init__(self, code: ErrorCode, message: str, param: str | None = None) -> None:
        super().__init__(code, message, param)
        self.code = code
        self.message = message
        self.param = param

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    @property
    def transient(self) -> bool:
        """Whether a retry may succeed."""
        return is_transient(self.code)
