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
  from ..models.transfer_create_metadata import TransferCreateMetadata





T = TypeVar("T", bound="TransferCreate")



@_attrs_define
class TransferCreate:
    """ `POST /v1/transfers`: move `amount` minor units from the debit to the credit account.

        Attributes:
            debit_account_id (str):
            credit_account_id (str):
            amount (int):
            currency (Currency): An ISO 4217 currency code.
            metadata (TransferCreateMetadata | Unset):
     """

    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: Currency
    metadata: TransferCreateMetadata | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        from ..models.transfer_create_metadata import TransferCreateMetadata # noqa: PLC0415
        debit_account_id = self.debit_account_id

        credit_account_id = self.credit_account_id

        amount = self.amount

        currency = self.currency.value

        metadata: dict[str, Any] | Unset = UNSET
        if not isinstance(self.metadata, Unset):
            metadata = self.metadata.to_dict()


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "debit_account_id": debit_account_id,
            "credit_account_id": credit_account_id,
            "amount": amount,
            "currency": currency,
        })
        if metadata is not UNSET:
            field_dict["metadata"] = metadata

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.transfer_create_metadata import TransferCreateMetadata # noqa: PLC0415
        d = dict(src_dict)
        debit_account_id = d.pop("debit_account_id")

        credit_account_id = d.pop("credit_account_id")

        amount = d.pop("amount")

        currency = Currency(d.pop("currency"))




        _metadata = d.pop("metadata", UNSET)
        metadata: TransferCreateMetadata | Unset
        if isinstance(_metadata,  Unset):
            metadata = UNSET
        else:
            metadata = TransferCreateMetadata.from_dict(_metadata)




        transfer_create = cls(
            debit_account_id=debit_account_id,
            credit_account_id=credit_account_id,
            amount=amount,
            currency=currency,
            metadata=metadata,
        )

        return transfer_create

