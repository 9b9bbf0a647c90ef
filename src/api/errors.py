"""The one place where errors become HTTP responses, all in one shape:

`{"error": {"type", "code", "message", "param"}}`
"""

import re

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.models import ID_PATTERN, TEXT_PATTERN
from api.rate_limit import RateLimited
from ledger.errors import ErrorCode, LedgerError, error_type
from shards.cluster import SHARD_FAILURES

_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.AMOUNT_INVALID: 400,
    ErrorCode.AMOUNT_OVERFLOW: 400,
    ErrorCode.CURRENCY_UNKNOWN: 400,
    ErrorCode.CURRENCY_MISMATCH: 400,
    ErrorCode.METADATA_INVALID: 400,
    ErrorCode.SAME_ACCOUNT: 400,
    ErrorCode.ACCOUNT_NOT_FOUND: 404,
    ErrorCode.TRANSFER_NOT_FOUND: 404,
    ErrorCode.RESOURCE_NOT_FOUND: 404,
    ErrorCode.INSUFFICIENT_FUNDS: 402,
    ErrorCode.DAILY_LIMIT_EXCEEDED: 402,
    ErrorCode.BALANCE_LIMIT_EXCEEDED: 409,
    ErrorCode.ACCOUNT_FROZEN: 409,
    ErrorCode.ACCOUNT_CLOSED: 409,
    ErrorCode.ACCOUNT_NOT_EMPTY: 409,
    ErrorCode.LIMITS_BELOW_BALANCE: 409,
    ErrorCode.TRANSFER_NOT_PENDING: 409,
    ErrorCode.TRANSFER_EXPIRED: 409,
    # A transfer's failure code: the review rejected it (or timed out).
    ErrorCode.REVIEW_REJECTED: 409,
    # Review holds a plain transfer's money (on one shard or across two); a hold or a
    # delayed credit that needs review is refused rather than sent on unreviewed.
    ErrorCode.REVIEW_NOT_SUPPORTED: 400,
    # A tenant's reviews waiting are capped; decide some, then retry.
    ErrorCode.REVIEW_QUEUE_FULL: 409,
    ErrorCode.AMOUNT_EXCEEDS_HOLD: 400,
    ErrorCode.BATCH_LEG_REFUSED: 409,
    ErrorCode.API_KEY_MISSING: 401,
    ErrorCode.API_KEY_INVALID: 401,
    ErrorCode.IDEMPOTENCY_KEY_REUSED: 400,
    ErrorCode.IDEMPOTENCY_KEY_IN_FLIGHT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.SHARD_UNAVAILABLE: 503,
    ErrorCode.SETTLEMENT_UNAVAILABLE: 503,
    # Not the caller's fault (no 4xx), not a bug of the API (no 500), not worth retrying as is
    # (no 503): the destination shard, upstream of the API, failed to apply the credit.
    ErrorCode.SETTLEMENT_FAILED: 502,
    ErrorCode.INTERNAL_ERROR: 500,
}
assert set(_STATUS) == set(ErrorCode), "every error code needs an HTTP status"

log = structlog.get_logger("ledgerflow.api")


def http_status(code: ErrorCode) -> int:
    """The HTTP status of an error code."""
    return _STATUS[code]


def codes_with_status(status: int) -> list[ErrorCode]:
    """The error codes answered with `status`, in declaration order (for the contract)."""
    return [code for code, code_status in _STATUS.items() if code_status == status]


def error_body(
    code: ErrorCode, message: str, param: str | None
) -> dict[str, dict[str, str | None]]:
    """The documented error shape."""
    return {
        "error": {
            "type": str(error_type(code)),
            "code": str(code),
            "message": message,
            "param": param,
        }
    }


def error_response(error: LedgerError) -> JSONResponse:
    """An HTTP response for a domain error."""
    headers = None
    if isinstance(error, RateLimited):
        headers = {"Retry-After": str(error.retry_after_s)}
    elif error.transient:
        headers = {"Retry-After": "1"}
    return JSONResponse(
        error_body(error.code, error.message, error.param),
        status_code=http_status(error.code),
        headers=headers,
    )


_PATTERN_RULES = {
    ID_PATTERN: "must be an id: printable ASCII without spaces",
    TEXT_PATTERN: "must not contain NUL characters",
}
"""What a pattern the caller missed means, in words rather than as a regular expression."""


_DOMAIN_CODES = frozenset(str(code) for code in ErrorCode)
"""Error types a model's validator raises as a `PydanticCustomError` named by its code."""


def _param_of(loc: tuple[object, ...]) -> str | None:
    """The field a validation error names: `amount`, `metadata.order`, or in a list
    `transfers[17].amount`."""
    param = ""
    for part in loc:
        if part in ("body", "query", "path", "header"):
            continue
        if isinstance(part, int):
            param += f"[{part}]"
        else:
            param += f".{part}" if param else str(part)
    return param or None


async def _ledger_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, LedgerError)
    return error_response(error)


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    first = error.errors()[0] if error.errors() else {}
    if first.get("type") == "json_invalid":
        message, param = "the request body is not valid JSON", None
    else:
        param = _param_of(tuple(first.get("loc", ())))
        rule = _PATTERN_RULES.get(first.get("ctx", {}).get("pattern", ""))
        message = f"{param or 'request'}: {rule or first.get('msg', 'invalid value')}"
    code = ErrorCode.INVALID_REQUEST
    # In a batch the item's own field decides: `transfers[17].amount` is an amount.
    field = re.sub(r"^transfers\[\d+\]\.", "", param or "")
    if first.get("type") in _DOMAIN_CODES:
        # A rule of the domain checked while parsing (`api.models`): its own code.
        code = ErrorCode(first["type"])
    elif field == "amount":
        code = ErrorCode.AMOUNT_INVALID
    elif field.startswith("metadata"):
        code = ErrorCode.METADATA_INVALID
    return JSONResponse(error_body(code, message, param), status_code=http_status(code))


def _allowed_methods(request: Request) -> str:
    """The methods the OpenAPI document lists for the request's path, for a 405's `Allow`.

    Starlette names only the methods of the first route whose path matches, and the routes
    of one path may be spread over several (`POST` and `GET /v1/transfers`). A path the
    document names literally is that path alone (`/v1/transfers/batch` is not the transfer
    `batch` of `/v1/transfers/{transfer_id}`).
    """
    paths = request.app.openapi()["paths"]
    if request.url.path in paths:
        return ", ".join(sorted(method.upper() for method in paths[request.url.path]))
    methods: set[str] = set()
    for template, operations in paths.items():
        if re.fullmatch(re.sub(r"\{[^/]+\}", "[^/]+", template), request.url.path):
            methods.update(method.upper() for method in operations)
    return ", ".join(sorted(methods))


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = ErrorCode.RESOURCE_NOT_FOUND if error.status_code == 404 else ErrorCode.INVALID_REQUEST
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    return JSONResponse(
        error_body(code, str(error.detail), None), status_code=error.status_code, headers=headers
    )


async def _shard_failure(request: Request, error: Exception) -> JSONResponse:
    """A shard that is down or restarting outside the batched paths (a read, an account
    change): transient, so 503 with Retry-After, and the client retries."""
    log.warning("shard unavailable", path=request.url.path, error=repr(error))
    return error_response(LedgerError(ErrorCode.SHARD_UNAVAILABLE, "a shard is unavailable; retry"))


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error", path=request.url.path, error=repr(error))
    return JSONResponse(
        error_body(ErrorCode.INTERNAL_ERROR, "internal error", None),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through the one shape."""
    app.add_exception_handler(LedgerError, _ledger_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for failure in SHARD_FAILURES:
        app.add_exception_handler(failure, _shard_failure)
    app.add_exception_handler(Exception, _unexpected_error)
