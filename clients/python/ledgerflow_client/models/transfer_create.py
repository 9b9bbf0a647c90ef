from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.currency import Currency
from ..types import UNSET, Unset
from typing import cast
import datetime

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
            pending (bool | Unset): Place a hold instead of moving the money: 201 `pending` until a capture, a void or
                `expires_at`. Default: False.
            expires_in (int | None | Unset): Seconds until a hold expires (only with `pending`; default 7 days).
            available_on (datetime.datetime | None | Unset): Debit now, but show the credit as the credit account's
                `pending` until this RFC 3339 instant (in the future, at most 90 days ahead).
     """

    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: Currency
    metadata: TransferCreateMetadata | Unset = UNSET
    pending: bool | Unset = False
    expires_in: int | None | Unset = UNSET
    available_on: datetime.datetime | None | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        from ..models.transfer_create_metadata import TransferCreateMetadata # noqa: PLC0415
        debit_account_id = self.debit_account_id

        credit_account_id = self.credit_account_id

        amount = self.amount

        currency = self.currency.value

        metadata: dict[str, Any] | Unset = UNSET
        if not isinstance(self.metadata, Unset):
            metadata = self.metadata.to_dict()

        pending = self.pending

        expires_in: int | None | Unset
        if isinstance(self.expires_in, Unset):
            expires_in = UNSET
        else:
            expires_in = self.expires_in

        available_on: None | str | Unset
        if isinstance(self.available_on, Unset):
            available_on = UNSET
        elif isinstance(self.available_on, datetime.datetime):
            available_on = self.available_on.isoformat()
        else:
            available_on = self.available_on


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "debit_account_id": debit_account_id,
            "credit_account_id": credit_account_id,
            "amount": amount,
            "currency": currency,
        })
        if metadata is not UNSET:
            field_dict["metadata"] = metadata
        if pending is not UNSET:
            field_dict["pending"] = pending
        if expires_in is not UNSET:
            field_dict["expires_in"] = expires_in
        if available_on is not UNSET:
            field_dict["available_on"] = available_on

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




        pending = d.pop("pending", UNSET)

        def _parse_expires_in(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        expires_in = _parse_expires_in(d.pop("expires_in", UNSET))


        def _parse_available_on(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                available_on_type_0 = datetime.datetime.fromisoformat(data)



                return available_on_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        available_on = _parse_available_on(d.pop("available_on", UNSET))


        transfer_create = cls(
            debit_account_id=debit_account_id,
            credit_account_id=credit_account_id,
            amount=amount,
            currency=currency,
            metadata=metadata,
            pending=pending,
            expires_in=expires_in,
            available_on=available_on,
        )

        return transfer_create

