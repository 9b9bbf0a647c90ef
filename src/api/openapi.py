"""The error half of the OpenAPI contract: every status a route answers, in the one shape.

Routes declare the statuses they can answer with `error_responses`; each is documented with
the `ErrorOut` schema and the error codes that status carries (from `api.errors`, the one
status mapping). FastAPI's own 422 entries are dropped: validation errors are answered 400
`invalid_request` (or `amount_invalid`, `metadata_invalid`, `currency_unknown`), never 422.

Each operation's id is its route function's name (`create_transfer`, `list_accounts`), so
generated clients read naturally and the ids do not change when a path does.
"""

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from api.errors import codes_with_status
from api.models import ErrorOut
from ledger import limits

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
    502: (
        "A shard could not apply the cross-shard credit (the hold was released), or an"
        " increment across shards was interrupted and abandoned; nothing moved"
    ),
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


def operation_id(route: APIRoute) -> str:
    """A route's OpenAPI `operationId`: its function's name, unique across the API."""
    return route.name


_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_FLOAT_EXACT_MAX = 2**53
"""Every integer up to this is exact as a float; above it a float names a neighbour."""


def _restore_integer_bounds(node: object) -> None:
    """Write integer schemas' bounds as integers again.

    FastAPI validates the document through its OpenAPI models, which type these bounds as
    floats: `amount`'s maximum 2**63-1 would be published as 9.223372036854776e18, which is
    2**63, one above the real bound. Below 2**53 the float is exact; above it the only
    bounds this API has are `BIGINT_MAX` and its negative (`min_available`), asserted so
    that a new one is not silently off.
    """
    if isinstance(node, list):
        for item in node:
            _restore_integer_bounds(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "integer":
        for bound in _BOUNDS:
            value = node.get(bound)
            if isinstance(value, float):
                assert value.is_integer(), (bound, value)
                if abs(value) <= _FLOAT_EXACT_MAX:
                    node[bound] = int(value)
                else:
                    assert abs(value) == float(limits.BIGINT_MAX), (bound, value)
                    node[bound] = limits.BIGINT_MAX if value > 0 else -limits.BIGINT_MAX
    for child in node.values():
        _restore_integer_bounds(child)


def install_contract(app: FastAPI) -> None:
    """Serve FastAPI's OpenAPI document without its 422 responses and with exact integer
    bounds. (Operation ids come from `operation_id`, given to `FastAPI(...)`.)"""
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
            _restore_integer_bounds(schema)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
