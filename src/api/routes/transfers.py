"""`/v1/transfers`."""

from fastapi import APIRouter, Response

from api.deps import CursorQuery, IdempotentDep, LimitQuery, PrincipalDep, StateDep
from api.idempotency import Attempt
from api.models import ListOut, TransferCreate, TransferOut
from api.openapi import AUTHENTICATED, error_responses
from ledger import limits
from ledger.transfers import TransferStatus

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
    within the short wait, else 202 `processing`.
    """

    async def work(attempt: Attempt | None) -> tuple[int, TransferOut]:
        created = await state.transfers.create(principal=principal, body=body, attempt=attempt)
        return created_status(created.status), created

    return await idempotent.run(body, work)


def created_status(status: TransferStatus) -> int:
    """The HTTP status of a new transfer's answer: 202 while its saga is settling it (the
    answer is not final, so it is not stored for replay), else 201."""
    return 202 if status is TransferStatus.PROCESSING else 201


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
