"""`Annotated` dependency aliases, in one module."""

from typing import Annotated

from fastapi import Depends, Header, Query, Request, Security
from fastapi.security import HTTPBearer
from starlette.requests import HTTPConnection

from api.auth import Principal
from api.idempotency import KEY_PATTERN, IdempotentRequest, check_key
from api.models import ID_PATTERN
from api.state import AppState
from ledger import limits


async def _state(request: Request) -> AppState:
    state = request.app.state.ledgerflow
    assert isinstance(state, AppState), "the lifespan has not started"
    return state


class _BearerApiKey(HTTPBearer):
    """The `Authorization: Bearer <key>` header, documented as the OpenAPI security scheme
    (Swagger UI's Authorize button, generated clients' token) and handed over as sent:
    `Authenticator` tells a missing header (`api_key_missing`) from a malformed or unknown
    one (`api_key_invalid`), which FastAPI's own `HTTPBearer` would both report as missing."""

    async def __call__(self, request: HTTPConnection) -> str | None:  # type: ignore[override]
        return request.headers.get("Authorization")


_bearer_api_key = _BearerApiKey(
    scheme_name="ApiKey",
    bearerFormat="API key",
    description="An API key, scoped to one tenant: `Authorization: Bearer <key>`.",
    auto_error=False,
)


async def _principal(
    request: Request, authorization: Annotated[str | None, Security(_bearer_api_key)]
) -> Principal:
    state = await _state(request)
    principal = await state.authenticator.authenticate(authorization)
    request.state.tenant_id = principal.tenant_id
    state.rate_limiter.admit(principal.api_key_id)
    return principal


async def _idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Any printable ASCII; the same key and parameters replay the first answer.",
            # Documented here, checked by `check_key`, which names the rule in its error.
            json_schema_extra={"pattern": KEY_PATTERN},
        ),
    ] = None,
) -> str | None:
    return check_key(idempotency_key)


async def _idempotent(
    request: Request,
    principal: Annotated[Principal, Depends(_principal)],
    key: Annotated[str | None, Depends(_idempotency_key)],
) -> IdempotentRequest:
    state = await _state(request)
    return IdempotentRequest(
        store=state.idempotency,
        principal=principal,
        key=key,
        method_path=f"{request.method} {request.url.path}",
    )


StateDep = Annotated[AppState, Depends(_state)]
PrincipalDep = Annotated[Principal, Depends(_principal)]
IdempotentDep = Annotated[IdempotentRequest, Depends(_idempotent)]
"""What every POST route answers through: `Idempotency-Key` checked and documented,
replays, reuse refused (`api.idempotency`). FastAPI runs `_principal` once per request
however many dependencies name it, so the route may take `PrincipalDep` as well."""
LimitQuery = Annotated[int, Query(ge=1, le=limits.PAGE_SIZE_MAX)]
CursorQuery = Annotated[str | None, Query(min_length=1, max_length=128, pattern=ID_PATTERN)]
