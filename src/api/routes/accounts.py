"""`/v1/accounts`."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import CursorQuery, IdempotentDep, LimitQuery, PrincipalDep, StateDep
from api.idempotency import Attempt
from api.models import (
    AccountCreate,
    AccountOut,
    AvailabilityOut,
    BalanceAtOut,
    EntryOut,
    LimitsIn,
    ListOut,
)
from api.openapi import AUTHENTICATED, error_responses
from ledger import limits
from ledger.accounts import AccountStatus

router = APIRouter(
    prefix="/v1/accounts", tags=["accounts"], responses=error_responses(*AUTHENTICATED)
)
_POST_ERRORS = error_responses(409, 413)
"""Every POST: an Idempotency-Key in flight is 409, a body over 1 MiB is 413."""


@router.post("", status_code=201, response_model=AccountOut, responses=_POST_ERRORS)
async def create_account(
    body: AccountCreate, state: StateDep, principal: PrincipalDep, idempotent: IdempotentDep
) -> Response:
    """Open an account. Balances start at zero."""

    async def work(attempt: Attempt | None) -> tuple[int, AccountOut]:
        return 201, await state.accounts.create(principal=principal, body=body, attempt=attempt)

    return await idempotent.run(body, work)


@router.get("", response_model=ListOut[AccountOut])
async def list_accounts(
    state: StateDep,
    principal: PrincipalDep,
    limit: LimitQuery = limits.PAGE_SIZE_DEFAULT,
    starting_after: CursorQuery = None,
    ending_before: CursorQuery = None,
) -> ListOut[AccountOut]:
    """The tenant's accounts, newest first."""
    data, has_more = await state.accounts.list_page(
        principal=principal,
        limit=limit,
        starting_after=starting_after,
        ending_before=ending_before,
    )
    return ListOut[AccountOut](data=data, has_more=has_more, url="/v1/accounts")


@router.get("/{account_id}", response_model=AccountOut, responses=error_responses(404))
async def get_account(account_id: str, state: StateDep, principal: PrincipalDep) -> AccountOut:
    """One account with its balance."""
    return await state.accounts.get(principal=principal, account_id=account_id)


@router.get(
    "/{account_id}/balance", response_model=BalanceAtOut, responses=error_responses(400, 404)
)
async def get_account_balance(
    account_id: str,
    state: StateDep,
    principal: PrincipalDep,
    at: Annotated[
        str | None,
        Query(
            description="An RFC 3339 instant with an offset, not in the future; now when absent.",
            examples=["2026-01-31T23:59:59Z"],
            max_length=64,
        ),
    ] = None,
) -> BalanceAtOut:
    """The account's posted, pending, held and available balance as it stood at `at`,
    from its entries."""
    return await state.accounts.balance_at(principal=principal, account_id=account_id, at=at)


@router.post(
    "/{account_id}/limits", response_model=AccountOut, responses=error_responses(404, 409, 413)
)
async def set_account_limits(
    account_id: str,
    body: LimitsIn,
    state: StateDep,
    principal: PrincipalDep,
    idempotent: IdempotentDep,
) -> Response:
    """Replace the account's limits (a field left out removes that limit). They apply from
    the next movement on: a balance already past a new `max_balance` or daily limit stays
    as it is; a floor the account is overdrawn past is 409 `limits_below_balance`."""

    async def work(_: Attempt | None) -> tuple[int, AccountOut]:
        return 200, await state.accounts.set_limits(
            principal=principal, account_id=account_id, body=body
        )

    return await idempotent.run(body, work)


async def _set_status(
    state: StateDep,
    principal: PrincipalDep,
    idempotent: IdempotentDep,
    account_id: str,
    status: AccountStatus,
) -> Response:
    async def work(_: Attempt | None) -> tuple[int, AccountOut]:
        return 200, await state.accounts.set_status(
            principal=principal, account_id=account_id, status=status
        )

    return await idempotent.run(None, work)


@router.post(
    "/{account_id}/freeze", response_model=AccountOut, responses=error_responses(404, 409, 413)
)
async def freeze_account(
    account_id: str, state: StateDep, principal: PrincipalDep, idempotent: IdempotentDep
) -> Response:
    """Stop all new money moving in or out of an account."""
    return await _set_status(state, principal, idempotent, account_id, AccountStatus.FROZEN)


@router.post(
    "/{account_id}/unfreeze", response_model=AccountOut, responses=error_responses(404, 409, 413)
)
async def unfreeze_account(
    account_id: str, state: StateDep, principal: PrincipalDep, idempotent: IdempotentDep
) -> Response:
    """Let money move again through a frozen account."""
    return await _set_status(state, principal, idempotent, account_id, AccountStatus.ACTIVE)


@router.post(
    "/{account_id}/close", response_model=AccountOut, responses=error_responses(404, 409, 413)
)
async def close_account(
    account_id: str, state: StateDep, principal: PrincipalDep, idempotent: IdempotentDep
) -> Response:
    """Close an empty account for good."""
    return await _set_status(state, principal, idempotent, account_id, AccountStatus.CLOSED)


@router.get(
    "/{account_id}/availability",
    response_model=ListOut[AvailabilityOut],
    responses=error_responses(404),
)
async def list_account_availability(
    account_id: str,
    state: StateDep,
    principal: PrincipalDep,
    limit: LimitQuery = limits.PAGE_SIZE_MAX,
) -> ListOut[AvailabilityOut]:
    """The credits still to become available to the account (transfers with
    `available_on`), soonest first; `has_more` when more wait than `limit`."""
    data = await state.accounts.availability(
        principal=principal, account_id=account_id, limit=limit + 1
    )
    return ListOut[AvailabilityOut](
        data=data[:limit],
        has_more=len(data) > limit,
        url=f"/v1/accounts/{account_id}/availability",
    )


@router.get(
    "/{account_id}/entries", response_model=ListOut[EntryOut], responses=error_responses(404)
)
async def list_entries(
    account_id: str,
    state: StateDep,
    principal: PrincipalDep,
    limit: LimitQuery = limits.PAGE_SIZE_DEFAULT,
    starting_after: CursorQuery = None,
    ending_before: CursorQuery = None,
) -> ListOut[EntryOut]:
    """The account's immutable entries, newest first, each with the balance after it."""
    data, has_more = await state.accounts.entries(
        principal=principal,
        account_id=account_id,
        limit=limit,
        starting_after=starting_after,
        ending_before=ending_before,
    )
    return ListOut[EntryOut](data=data, has_more=has_more, url=f"/v1/accounts/{account_id}/entries")
