"""A batch item under its own `idempotency_key`: exactly a single request's key.

The item's fingerprint is that of `POST /v1/transfers` with the item as its body, so a later
single request under the key and with the same body replays the item, and one with another
body is refused as reuse.
"""

from collections.abc import Awaitable, Callable

import orjson
from fastapi.responses import Response

from api.auth import Principal
from api.batch_models import BatchItem, BatchItemOut, item_error
from api.idempotency import Attempt, Fingerprint, run_idempotent
from api.models import ErrorDetail, TransferOut
from ledger.errors import LedgerError
from shards.idempotency import IdempotencyStore

SINGLE_TRANSFER = "POST /v1/transfers"

ItemWork = Callable[[Attempt | None], Awaitable[tuple[int, TransferOut]]]
"""An item's work, as a single request's: (status, transfer), or a `LedgerError`."""


def from_response(response: Response) -> BatchItemOut:
    """An item's outcome from the answer a single request would have got."""
    body = orjson.loads(bytes(response.body))
    if "error" in body:
        return BatchItemOut(status=response.status_code, error=ErrorDetail(**body["error"]))
    return BatchItemOut(status=response.status_code, transfer=TransferOut(**body))


def from_error(error: LedgerError) -> BatchItemOut:
    """An item refused with `error`."""
    return item_error(error.code, error.message, error.param)


async def answer_under_key(
    store: IdempotencyStore, principal: Principal, item: BatchItem, work: ItemWork
) -> BatchItemOut:
    """Run `work` under the item's own key, as a single request with the item as its body
    would: claimed, completed and replayed under the same fingerprint."""
    assert item.idempotency_key is not None
    transfer = item.transfer()
    try:
        response = await run_idempotent(
            store,
            principal=principal,
            key=item.idempotency_key,
            fingerprint=Fingerprint.of(SINGLE_TRANSFER, transfer),
            work=work,
        )
    except LedgerError as error:
        return from_error(error)
    return from_response(response)
