"""Request and response models. Every request field is bounded."""

from datetime import datetime
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
)
from pydantic_core import PydanticCustomError, core_schema

from ledger import limits
from ledger.accounts import AccountStatus, NormalBalance
from ledger.errors import ErrorCode, ErrorType, LedgerError
from ledger.money import CURRENCY_EXPONENTS, currency_exponent
from ledger.transfers import EventType, SagaStep, TransferStatus

TEXT_PATTERN = r"^[^\x00]*$"
"""Free text (metadata): any Unicode but NUL, which PostgreSQL cannot store in text or jsonb.
(Unpaired surrogates are refused by the JSON parsing already.)"""

ID_PATTERN = r"^[!-~]+$"
"""An object id, or a cursor naming one: printable ASCII without spaces, as every id is."""

MetadataKey = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=limits.METADATA_KEY_LENGTH_MAX, pattern=TEXT_PATTERN
    ),
]
MetadataValue = Annotated[
    str, StringConstraints(max_length=limits.METADATA_VALUE_LENGTH_MAX, pattern=TEXT_PATTERN)
]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=limits.METADATA_KEYS_MAX)]


def _supported_currency(code: str) -> str:
    """The code, if the domain knows its exponent; else the domain's `currency_unknown`,
    which the error handler answers with that code rather than `invalid_request`."""
    try:
        currency_exponent(code)
    except LedgerError as error:
        raise PydanticCustomError(str(error.code), error.message) from None
    return code


class _CurrencyCode:
    """An ISO 4217 code: three capitals that the domain supports.

    Documented as the supported set, but validated as a string and then by the domain: an
    unknown code is answered 400 `currency_unknown`, which a pydantic enum would turn into
    `invalid_request`. The core schema's `ref` makes it one `Currency` component that
    every model refers to, so a generated client has one `Currency` enum.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, _source: object, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            _supported_currency,
            core_schema.str_schema(pattern=r"^[A-Z]{3}$"),
            ref="Currency",
            metadata={
                "pydantic_js_updates": {
                    "title": "Currency",
                    "description": "An ISO 4217 currency code.",
                    "enum": sorted(CURRENCY_EXPONENTS),
                }
            },
        )


Currency = Annotated[str, _CurrencyCode]
AccountId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
Amount = Annotated[int, Field(gt=0, le=limits.BIGINT_MAX, strict=True)]


def _rfc3339_text(value: object) -> object:
    """A moment in a body is an RFC 3339 string, as the schema says: a number is not taken
    for seconds since 1970."""
    if not isinstance(value, str | datetime):
        raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 string")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text)]
"""An RFC 3339 instant with its offset, parsed strictly."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitsIn(_Request):
    """An account's limits; an absent or null field sets no such limit."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"min_available": -5000, "daily_outgoing": 100000}]}
    )

    min_available: (
        Annotated[int, Field(ge=-limits.BIGINT_MAX, le=limits.BIGINT_MAX, strict=True)] | None
    ) = Field(
        default=None,
        description="The lowest available balance a movement may leave; negative: an"
        " overdraft line. Without it, `allow_overdraft` decides (no floor, or zero).",
    )
    max_balance: Annotated[int, Field(ge=0, le=limits.BIGINT_MAX, strict=True)] | None = Field(
        default=None,
        description="The highest posted plus pending balance a movement may leave (409"
        " `balance_limit_exceeded`).",
    )
    daily_outgoing: Amount | None = Field(
        default=None,
        description="The most the account may send over any 24 hours (402 `daily_limit_exceeded`).",
    )
    review_above: Amount | None = Field(
        default=None,
        description="A transfer debiting more waits in `requires_review` for `/approve` or"
        " `/reject` (rejected after `LEDGERFLOW_REVIEW_TIMEOUT_S`).",
    )


class LimitsOut(BaseModel):
    """An account's limits; null: none."""

    min_available: int | None
    max_balance: int | None
    daily_outgoing: int | None
    review_above: int | None


class AccountCreate(_Request):
    """`POST /v1/accounts`."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"currency": "USD"},
                {
                    "currency": "EUR",
                    "normal_balance": "credit",
                    "allow_overdraft": False,
                    "metadata": {"customer": "cus_42"},
                },
            ]
        }
    )

    currency: Currency
    normal_balance: NormalBalance = NormalBalance.CREDIT
    allow_overdraft: Annotated[bool, Field(strict=True)] = False
    metadata: Metadata = Field(default_factory=dict)
    limits: LimitsIn | None = None


class TransferCreate(_Request):
    """`POST /v1/transfers`: move `amount` minor units from the debit to the credit account."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "debit_account_id": "acct_01JDQ4Z8G9W5V6X7Y8Z9A0B1C2",
                    "credit_account_id": "acct_01JDQ4ZB3C4D5E6F7G8H9J0K1M",
                    "amount": 2500,
                    "currency": "USD",
                    "metadata": {"order": "ord_1001"},
                }
            ]
        }
    )

    debit_account_id: AccountId
    credit_account_id: AccountId
    amount: Amount
    currency: Currency
    metadata: Metadata = Field(default_factory=dict)
    pending: bool = Field(
        default=False,
        strict=True,
        description="Place a hold instead of moving the money: 201 `pending` until a capture,"
        " a void or `expires_at`.",
    )
    expires_in: int | None = Field(
        default=None,
        ge=1,
        le=limits.HOLD_EXPIRES_IN_S_MAX,
        strict=True,
        description="Seconds until a hold expires (only with `pending`; default 7 days).",
    )
    available_on: Instant | None = Field(
        default=None,
        description="Debit now, but show the credit as the credit account's `pending` until"
        " this RFC 3339 instant (in the future, at most 90 days ahead).",
    )


class CaptureCreate(_Request):
    """`POST /v1/transfers/{id}/capture`: post `amount` of a hold (all of it when absent)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": 1500, "final": False}]})

    amount: Amount | None = None
    final: bool = Field(
        default=True,
        strict=True,
        description="Release what the capture leaves (true), or keep it held for more captures.",
    )


class IncrementCreate(_Request):
    """`POST /v1/transfers/{id}/increment`: raise an open hold by `amount`."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": 500}]})

    amount: Amount


class BalanceOut(BaseModel):
    """A balance in the account's normal orientation, in minor units."""

    posted: int
    pending: int
    held: int
    available: int


class BalanceAtOut(BaseModel):
    """An account's balance as it stood at an instant, from its entries."""

    object: Literal["balance"] = "balance"
    account_id: str
    currency: str
    at: datetime
    version: int
    """The account's version at `at`: the last entry at or before it (0: none yet)."""
    posted: int
    pending: int
    held: int
    available: int


class AccountOut(BaseModel):
    """An account."""

    id: str
    object: Literal["account"] = "account"
    currency: str
    normal_balance: NormalBalance
    allow_overdraft: bool
    status: AccountStatus
    shard: int
    balance: BalanceOut
    version: int
    metadata: dict[str, str]
    created_at: datetime
    limits: LimitsOut


class SagaOut(BaseModel):
    """How a cross-shard transfer is being settled."""

    step: SagaStep | None
    workflow_id: str | None
    source_shard: int
    destination_shard: int


class CaptureOut(BaseModel):
    """One capture of a hold."""

    amount: int
    final: bool
    at: datetime


class TransferOut(BaseModel):
    """A transfer."""

    id: str
    object: Literal["transfer"] = "transfer"
    status: TransferStatus
    amount: int
    currency: str
    debit_account_id: str
    credit_account_id: str
    cross_shard: bool
    failure_code: str | None = None
    saga: SagaOut | None = None
    metadata: dict[str, str]
    created_at: datetime
    expires_at: datetime | None = None
    """A hold's expiry; null for a transfer that is not a hold."""
    captured_amount: int | None = None
    """What a hold's captures posted so far (`amount` is what was held, increments
    included); null for a transfer that is not a hold."""
    captures: list[CaptureOut] | None = None
    """A hold's captures, in order; null for a transfer that is not a hold."""
    available_on: datetime | None = None
    """When the credit becomes available; null for a transfer credited at once."""
    available_at: datetime | None = None
    """When it did; null until then."""


class AvailabilityOut(BaseModel):
    """A credit still to become available to an account."""

    object: Literal["pending_credit"] = "pending_credit"
    transfer_id: str
    amount: int
    available_on: datetime


class EventData(BaseModel):
    """What an event carries: the transfer as the change left it."""

    object: TransferOut


class EventOut(BaseModel):
    """One change of a transfer's state, in the tenant's event feed."""

    id: str
    object: Literal["event"] = "event"
    type: EventType
    data: EventData
    created_at: datetime


class EntryOut(BaseModel):
    """An immutable journal line, with the account's balance after it."""

    id: str
    object: Literal["entry"] = "entry"
    account_id: str
    transfer_id: str
    currency: str
    layer: str
    side: str
    amount: int
    posted_after: int
    available_after: int
    version: int
    created_at: datetime


T = TypeVar("T")


class ListOut(BaseModel, Generic[T]):
    """A cursor page."""

    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    url: str


class ErrorDetail(BaseModel):
    """What went wrong: `code` is the stable, machine-readable part."""

    type: ErrorType
    code: ErrorCode
    message: str
    param: str | None = Field(description="the request field or header at fault, if one is")


class ErrorOut(BaseModel):
    """Every error, whatever its status."""

    error: ErrorDetail


class ReadyOut(BaseModel):
    """`/readyz`: the process serves; `shards_down` names the shards that missed their last
    health probe (requests for their accounts get 503 until they are back)."""

    status: Literal["ok"]
    shards: int
    shards_down: list[int]
