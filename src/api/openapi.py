"""The error half of the OpenAPI contract: every status a route answers, in the one shape.

Routes declare the statuses they can answer with `error_responses`; each is documented with
the `ErrorOut` schema and the error codes that status carries (from `api.errors`, the one
status mapping). FastAPI's own 422 entries are dropped: validation errors are answered 400
`invalid_request` (or `amount_invalid`, `metadata_invalid`), never 422.
"""

from typing import Any

from fastapi import FastAPI

from api.errors import codes_with_status
from api.models import ErrorOut

AUTHENTICATED = (400, 401, 429, 500, 503)
"""What any `/v1` route may answer: bad input, a missing or unknown key, a key over its rate
limit, a bug, an outage."""

_REASONS = {
    400: "The request is invalid",
    401: "The API key is missing or unknown",
    402: "The debit account lacks the funds",
    404: "No such object for this tenant",
    409: "The object's state, or a request in flight with the same Idempotency-Key",
    413: "The body is over 1 MiB",
    429: "The API key is over its rate limit; retry after Retry-After seconds",
    500: "A bug, logged with the request id",
    503: "A shard or the settlement is unavailable; retry after Retry-After seconds",
}

_RETRY_AFTER = (429, 503)
"""Statuses whose answer carries `Retry-After` (every transient error code has one of them)."""
_RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error statuses, each with the codes it carries."""
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        codes = ", ".join(f"`{code}`" for code in codes_with_status(status))
        assert codes, f"no error code is answered with {status}"
        documented[status] = {"model": ErrorOut, "description": f"{_REASONS[status]}: {codes}."}
        if status in _RETRY_AFTER:
            documented[status]["headers"] = {"Retry-After": _RETRY_AFTER_HEADER}
    return documented


def install_contract(app: FastAPI) -> None:
    """Serve FastAPI's OpenAPI document without its 422 responses."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()  # builds the document once and keeps it on the app
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            components = schema.get("components", {}).get("schemas", {})
            for unused in ("HTTPValidationError", "ValidationError"):
                components.pop(unused, None)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
