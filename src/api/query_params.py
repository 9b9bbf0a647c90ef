"""Unknown query parameters are refused: a filter the operation does not take is 400 naming
it, never ignored (a client that sent `?account_id=` believed it had filtered)."""

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from ledger.errors import ErrorCode, LedgerError

_KNOWN: dict[int, frozenset[str]] = {}
"""The query parameters of each route, by the route's id, found on its first request."""


def _query_names(dependant: Dependant) -> frozenset[str]:
    """The query parameters an operation takes, its dependencies' included."""
    names: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        names.update(field.alias for field in current.query_params)
        pending.extend(current.dependencies)
    return frozenset(names)


async def known_query_only(request: Request) -> None:
    """A router's dependency: 400 `invalid_request`, `param` naming it, for a query
    parameter the route does not take.

    Raises:
        LedgerError(invalid_request).
    """
    if not request.scope.get("query_string"):
        return  # the common case costs one lookup
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _KNOWN.get(id(route))
    if known is None:
        known = _KNOWN[id(route)] = _query_names(route.dependant)
    for name in request.query_params:
        if name not in known:
            takes = f"; this operation takes {', '.join(sorted(known))}" if known else ""
            raise LedgerError(
                ErrorCode.INVALID_REQUEST, f"unknown query parameter: {name}{takes}", name
            )
