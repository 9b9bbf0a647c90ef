"""Every POST answers through the one idempotency dependency (`api.deps.IdempotentDep`)."""

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from api.app import ApiConfig, create_app
from api.deps import IdempotentDep
from api.routes.transfers import created_status
from ledger.transfers import TransferStatus

_IDEMPOTENT = IdempotentDep.__metadata__[0].dependency


def _api_routes(routes: list[BaseRoute]) -> list[APIRoute]:
    """Every API route, through included routers (whose routes carry their full path)."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        included = getattr(route, "original_router", None)
        if included is not None:
            found += _api_routes(included.routes)
    return found


def _calls(dependant: Dependant) -> set[object]:
    calls: set[object] = set()
    for sub in dependant.dependencies:
        calls.add(sub.call)
        calls |= _calls(sub)
    return calls


def test_every_post_route_takes_the_idempotency_dependency() -> None:
    """A POST route that skipped it would move money twice on a retry: each one, including
    routes added later, must name `IdempotentDep` (see `api.idempotency` for the pattern)."""
    app = create_app(ApiConfig(shard_dsns=[]))
    posts = [r for r in _api_routes(app.routes) if "POST" in r.methods]
    assert {r.path for r in posts} >= {"/v1/accounts", "/v1/transfers"}
    missing = [r.path for r in posts if _IDEMPOTENT not in _calls(r.dependant)]
    assert not missing, f"POST routes without IdempotentDep: {missing}"


def test_a_transfer_still_settling_is_202_and_every_other_answer_201() -> None:
    """Only `processing` (a saga still settling) and `requires_review` (a person still to
    decide) are not final, so only they are 202 and, for that reason, never stored for
    replay: a retry answers the transfer as it stands then."""
    unsettled = {TransferStatus.PROCESSING, TransferStatus.REQUIRES_REVIEW}
    assert {created_status(s) for s in unsettled} == {202}
    others = [s for s in TransferStatus if s not in unsettled]
    assert {created_status(s) for s in others} == {201}
