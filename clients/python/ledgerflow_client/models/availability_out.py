from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast
from typing import Literal, cast
import datetime






T = TypeVar("T", bound="AvailabilityOut")



@_attrs_define
class AvailabilityOut:
    """ A credit still to become available to an account.

        Attributes:
            transfer_id (str):
            amount (int):
            available_on (datetime.datetime):
            object_ (Literal['pending_credit'] | Unset):  Default: 'pending_credit'.
     """

    transfer_id: str
    amount: int
    available_on: datetime.datetime
    object_: Literal['pending_credit'] | Unset = 'pending_credit'
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        transfer_id = self.transfer_id

        amount = self.amount

        available_on = self.available_on.isoformat()

        object_ = self.object_


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "transfer_id": transfer_id,
            "amount": amount,
            "available_on": available_on,
        })
        if object_ is not UNSET:
            field_dict["object"] = object_

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        transfer_id = d.pop("transfer_id")

        amount = d.pop("amount")

        available_on = datetime.datetime.fromisoformat(d.pop("available_on"))




        object_ = cast(Literal['pending_credit'] | Unset , d.pop("object", UNSET))
        if object_ != 'pending_credit'and not isinstance(object_, Unset):
            raise ValueError(f"object must match const 'pending_credit', got '{object_}'")

        availability_out = cls(
            transfer_id=transfer_id,
            amount=amount,
            available_on=available_on,
            object_=object_,
        )


        availability_out.additional_properties = d
        return availability_out

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
