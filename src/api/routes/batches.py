"""`/v1/transfers/batch`."""

from fastapi import APIRouter, Response

from api.batch_models import BatchCreate, BatchOut
from api.batch_service import check_batch
from api.deps import IdempotentDep, PrincipalDep, StateDep
from api.idempotency import Attempt
from api.openapi import AUTHENTICATED, error_responses

router = APIRouter(
    prefix="/v1/transfers", tags=["transfers"], responses=error_responses(*AUTHENTICATED)
)


def _final(_: int, answer: object) -> bool:
    """A batch's answer is replayed only once every item's is final."""
    assert isinstance(answer, BatchOut)
    return all(item.final for item in answer.data)


@router.post("/batch", status_code=200, response_model=BatchOut, responses=error_responses(413))
async def create_transfer_batch(
    body: BatchCreate, state: StateDep, principal: PrincipalDep, idempotent: IdempotentDep
) -> Response:
    """Make up to a thousand transfers in one request; 200 with one outcome per item.

    Each item is answered as a single `POST /v1/transfers` would be (`status` and the
    `transfer`, or the `error`). Without `atomic`, each item stands alone. With `atomic`,
    every item is posted or none is, across shards too: when one is refused, it answers its
    error and every other `batch_leg_refused`, and no money moved. An atomic batch that has
    not settled within the short wait answers 202 `processing` items; each transfer then
    reaches `posted` (all of them) or `failed` (all of them). Bad input refuses the whole
    batch with 400, naming the item (`transfers[17].amount`).
    """
    check_batch(body, request_key=idempotent.key)

    async def work(attempt: Attempt | None) -> tuple[int, BatchOut]:
        return await state.batches.create(principal=principal, body=body, attempt=attempt)

    return await idempotent.run(body, work, is_final=_final)
