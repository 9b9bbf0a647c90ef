"""`/v1/events`."""

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CursorQuery, LimitQuery, PrincipalDep, StateDep
from api.models import EventOut, ListOut
from api.openapi import AUTHENTICATED, error_responses
from ledger import limits
from ledger.transfers import EventType

router = APIRouter(prefix="/v1/events", tags=["events"], responses=error_responses(*AUTHENTICATED))


@router.get("", response_model=ListOut[EventOut])
async def list_events(
    state: StateDep,
    principal: PrincipalDep,
    limit: LimitQuery = limits.PAGE_SIZE_DEFAULT,
    starting_after: CursorQuery = None,
    ending_before: CursorQuery = None,
    type: Annotated[EventType | None, Query(description="Only events of this type.")] = None,
) -> ListOut[EventOut]:
    """The tenant's events, newest first: each change of a transfer's state, with the
    transfer as the change left it. Follow new events with `ending_before` set to the
    newest id seen. Events are kept 30 days."""
    data, has_more = await state.events.list_page(
        principal=principal,
        event_type=type,
        limit=limit,
        starting_after=starting_after,
        ending_before=ending_before,
    )
    return ListOut[EventOut](data=data, has_more=has_more, url="/v1/events")


@router.get("/{event_id}", response_model=EventOut, responses=error_responses(404))
async def get_event(event_id: str, state: StateDep, principal: PrincipalDep) -> EventOut:
    """One event; 404 once it is older than the 30 days events are kept."""
    return await state.events.get(principal=principal, event_id=event_id)
