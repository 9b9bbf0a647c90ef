"""Request and response models of `POST /v1/transfers/batch`."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.errors import http_status
from api.idempotency import KEY_PATTERN
from api.models import ErrorDetail, TransferCreate, TransferOut, _Request
from ledger import limits
from ledger.errors import ErrorCode, error_type, is_transient

ItemIdempotencyKey = Annotated[str, StringConstraints(pattern=KEY_PATTERN)]


class BatchItem(TransferCreate):
    """One transfer of a batch: the body of `POST /v1/transfers`, and optionally the
    `Idempotency-Key` a single request would have sent."""

    idempotency_key: ItemIdempotencyKey | None = Field(
        default=None,
        description="Behaves like the Idempotency-Key of a single `POST /v1/transfers` with "
        "this item as its body: a later single request with the key and the same body "
        "replays this item's answer.",
    )

    def transfer(self) -> TransferCreate:
        """The item as the body of a single `POST /v1/transfers`."""
        return TransferCreate.model_validate(self.model_dump(exclude={"idempotency_key"}))


class BatchCreate(_Request):
    """`POST /v1/transfers/batch`: up to a thousand transfers in one request."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "atomic": True,
                    "transfers": [
                        {
                            "debit_account_id": "acct_01JDQ4Z8G9W5V6X7Y8Z9A0B1C2",
                            "credit_account_id": "acct_01JDQ4ZB3C4D5E6F7G8H9J0K1M",
                            "amount": 10000,
                            "currency": "USD",
                        },
                        {
                            "debit_account_id": "acct_01JDQ4Z8G9W5V6X7Y8Z9A0B1C2",
                            "credit_account_id": "acct_01JDQ4ZD5F6G7H8J9K0M1N2P3Q",
                            "amount": 290,
                            "currency": "USD",
                            "metadata": {"leg": "fee"},
                        },
                    ],
                }
            ]
        }
    )

    transfers: Annotated[
        list[BatchItem], Field(min_length=1, max_length=limits.BATCH_TRANSFERS_MAX)
    ]
    atomic: Annotated[bool, Field(strict=True)] = Field(
        default=False,
        description="All or nothing, across shards too: every transfer is posted, or none.",
    )


class BatchItemOut(BaseModel):
    """The outcome of one item: `status` is what a single request would have been answered,
    with the `transfer` (201, 202) or the `error` (any other); the other one is null."""

    status: int
    transfer: TransferOut | None = None
    error: ErrorDetail | None = None

    @property
    def final(self) -> bool:
        """Whether a retry of the item could be answered otherwise (202, a transient error)."""
        if self.error is not None:
            return not is_transient(self.error.code)
        return self.status != 202


class BatchOut(BaseModel):
    """The outcome of every item, in the request's order."""

    object: Literal["batch"] = "batch"
    atomic: bool
    data: list[BatchItemOut]


def item_error(code: ErrorCode, message: str, param: str | None) -> BatchItemOut:
    """An item refused with `code`, answered as a single request would be."""
    return BatchItemOut(
        status=http_status(code),
        error=ErrorDetail(type=error_type(code), code=code, message=message, param=param),
    )
