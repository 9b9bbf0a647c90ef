"""`/v1/transfers`."""

from fastapi import APIRouter, Response

from api.deps import CursorQuery, IdempotentDep, LimitQuery, PrincipalDep, StateDep
from api.idempotency import Attempt, created_status
from api.models import CaptureCreate, IncrementCreate, ListOut, TransferCreate, TransferOut
from api.openapi import AUTHENTICATED, error_responses
from ledger import limits
from ledger.holds import HoldAction

router = APIRouter(
    prefix="/v1/transfers", tags=["transfers"], responses=error_responses(*AUTHENTICATED)
)


@router.post(
    "",
    status_code=201,
    response_model=TransferOut,
    responses={
        202: {"model": TransferOut, "description": "cross-shard, still settling"},
        **error_responses(402, 404, 409, 413, 502),
    },
)
async def create_transfer(
    body: TransferCreate, state: StateDep, principal: PrincipalDep, idempotent: IdempotentDep
) -> Response:
    """Move money between two accounts of the same currency.

    Both accounts on one shard: one local transaction, 201 `posted`. On two shards: the funds
    are reserved synchronously and a saga settles the rest; 201 `posted` when it finished
    within the short wait, else 202 `processing`. With `"pending": true`: a hold, 201
    `pending` with `expires_at` (across shards 202 `processing` until the payee's shard shows
    it pending), until captured, voided or expired.
    Above the debit account's `review_above` (one shard or two): 202 `requires_review`, its
    funds held until approved, rejected, or rejected when its review times out.
    """

    async def work(attempt: Attempt | None) -> tuple[int, TransferOut]:
        created = await state.transfers.create(principal=principal, body=body, attempt=attempt)
        return created_status(created.status), created

    return await idempotent.run(body, work)


@router.get("", response_model=ListOut[TransferOut])
async def list_transfers(
    state: StateDep,
    principal: PrincipalDep,
    limit: LimitQuery = limits.PAGE_SIZE_DEFAULT,
    starting_after: CursorQuery = None,
    ending_before: CursorQuery = None,
) -> ListOut[TransferOut]:
    """The tenant's transfers, newest first."""
    data, has_more = await state.transfers.list_page(
        principal=principal,
        limit=limit,
        starting_after=starting_after,
        ending_before=ending_before,
    )
    return ListOut[TransferOut](data=data, has_more=has_more, url="/v1/transfers")


@router.get("/{transfer_id}", response_model=TransferOut, responses=error_responses(404))
async def get_transfer(transfer_id: str, state: StateDep, principal: PrincipalDep) -> TransferOut:
    """One transfer and, when cross-shard, the saga step it reached."""
    return await state.transfers.get(principal=principal, transfer_id=transfer_id)


_HOLD_ERRORS = error_responses(404, 409, 413)
"""A change of a hold: unknown (404), no longer pending or expired (409)."""


@router.post(
    "/{transfer_id}/capture",
    response_model=TransferOut,
    responses=error_responses(400, 404, 409, 413),
)
async def capture_transfer(
    transfer_id: str,
    body: CaptureCreate,
    state: StateDep,
    principal: PrincipalDep,
    idempotent: IdempotentDep,
) -> Response:
    """Post `amount` of a hold (all of it when absent). A final capture (the default) releases
    what is left and the transfer is `posted`; with `"final": false` the rest stays held for
    later captures. Refused with 409 `transfer_not_pending` or `transfer_expired`, 400
    `amount_exceeds_hold`."""

    async def work(attempt: Attempt | None) -> tuple[int, TransferOut]:
        return 200, await state.transfer_changes.change_hold(
            principal=principal,
            transfer_id=transfer_id,
            action=HoldAction.CAPTURE,
            attempt=attempt,
            amount=body.amount,
            final=body.final,
        )

    return await idempotent.run(body, work)


@router.post("/{transfer_id}/void", response_model=TransferOut, responses=_HOLD_ERRORS)
async def void_transfer(
    transfer_id: str, state: StateDep, principal: PrincipalDep, idempotent: IdempotentDep
) -> Response:
    """Release what a hold still holds; the transfer is `voided` (earlier captures stay)."""

    async def work(attempt: Attempt | None) -> tuple[int, TransferOut]:
        return 200, await state.transfer_changes.change_hold(
            principal=principal, transfer_id=transfer_id, action=HoldAction.VOID, attempt=attempt
        )

    return await idempotent.run(None, work)


@router.post(
    "/{transfer_id}/increment",
    response_model=TransferOut,
    responses=error_responses(400, 402, 404, 409, 413, 502),
)
async def increment_transfer(
    transfer_id: str,
    body: IncrementCreate,
    state: StateDep,
    principal: PrincipalDep,
    idempotent: IdempotentDep,
) -> Response:
    """Raise an open hold by `amount` when the funds are there (402 `insufficient_funds`
    otherwise); `amount` shows what is held so far."""

    async def work(attempt: Attempt | None) -> tuple[int, TransferOut]:
        return 200, await state.transfer_changes.change_hold(
            principal=principal,
            transfer_id=transfer_id,
            action=HoldAction.INCREMENT,
            attempt=attempt,
            amount=body.amount,
        )

    return await idempotent.run(body, work)


@router.post("/{transfer_id}/approve", response_model=TransferOut, responses=_HOLD_ERRORS)
async def approve_transfer(
    transfer_id: str, state: StateDep, principal: PrincipalDep, idempotent: IdempotentDep
) -> Response:
    """Approve a transfer waiting for review; answers it as the approval left it. On one
    shard its held money posts (`posted`). Across shards a saga settles it: `posted` when
    the saga finished within the short wait, else `processing` until it does. 409
    `transfer_not_pending` when it is not waiting for review, or was decided otherwise."""

    async def work(attempt: Attempt | None) -> tuple[int, TransferOut]:
        return 200, await state.transfer_changes.decide_review(
            principal=principal, transfer_id=transfer_id, approve=True, attempt=attempt
        )

    return await idempotent.run(None, work)


@router.post("/{transfer_id}/reject", response_model=TransferOut, responses=_HOLD_ERRORS)
async def reject_transfer(
    transfer_id: str, state: StateDep, principal: PrincipalDep, idempotent: IdempotentDep
) -> Response:
    """Reject a transfer waiting for review: its held money is released and it is `failed`
    with `review_rejected`. 409 `transfer_not_pending` as for `/approve`."""

    async def work(attempt: Attempt | None) -> tuple[int, TransferOut]:
        return 200, await state.transfer_changes.decide_review(
            principal=principal, transfer_id=transfer_id, approve=False, attempt=attempt
        )

    return await idempotent.run(None, work)
