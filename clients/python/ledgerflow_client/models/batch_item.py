from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.currency import Currency
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.batch_item_metadata import BatchItemMetadata





T = TypeVar("T", bound="BatchItem")



@_attrs_define
class BatchItem:
    """ One transfer of a batch: the body of `POST /v1/transfers`, and optionally the
    `Idempotency-Key` a single request would have sent.

        Attributes:
            debit_account_id (str):
            credit_account_id (str):
            amount (int):
            currency (Currency): An ISO 4217 currency code.
            metadata (BatchItemMetadata | Unset):
            idempotency_key (None | str | Unset): Behaves like the Idempotency-Key of a single `POST /v1/transfers` with
                this item as its body: a later single request with the key and the same body replays this item's answer.
     """

    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: Currency
    metadata: BatchItemMetadata | Unset = UNSET
    idempotency_key: None | str | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        from ..models.batch_item_metadata import BatchItemMetadata # noqa: PLC0415
        debit_account_id = self.debit_account_id

        credit_account_id = self.credit_account_id

        amount = self.amount

        currency = self.currency.value

        metadata: dict[str, Any] | Unset = UNSET
        if not isinstance(self.metadata, Unset):
            metadata = self.metadata.to_dict()

        idempotency_key: None | str | Unset
        if isinstance(self.idempotency_key, Unset):
            idempotency_key = UNSET
        else:
            idempotency_key = self.idempotency_key


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "debit_account_id": debit_account_id,
            "credit_account_id": credit_account_id,
            "amount": amount,
            "currency": currency,
        })
        if metadata is not UNSET:
            field_dict["metadata"] = metadata
        if idempotency_key is not UNSET:
            field_dict["idempotency_key"] = idempotency_key

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.batch_item_metadata import BatchItemMetadata # noqa: PLC0415
        d = dict(src_dict)
        debit_account_id = d.pop("debit_account_id")

        credit_account_id = d.pop("credit_account_id")

        amount = d.pop("amount")

        currency = Currency(d.pop("currency"))




        _metadata = d.pop("metadata", UNSET)
        metadata: BatchItemMetadata | Unset
        if isinstance(_metadata,  Unset):
            metadata = UNSET
        else:
            metadata = BatchItemMetadata.from_dict(_metadata)




        def _parse_idempotency_key(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        idempotency_key = _parse_idempotency_key(d.pop("idempotency_key", UNSET))


        batch_item = cls(
            debit_account_id=debit_account_id,
            credit_account_id=credit_account_id,
            amount=amount,
            currency=currency,
            metadata=metadata,
            idempotency_key=idempotency_key,
        )

        return batch_item

