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






T = TypeVar("T", bound="EntryOut")



@_attrs_define
class EntryOut:
    """ An immutable journal line, with the account's balance after it.

        Attributes:
            id (str):
            account_id (str):
            transfer_id (str):
            currency (str):
            layer (str):
            side (str):
            amount (int):
            posted_after (int):
            available_after (int):
            version (int):
            created_at (datetime.datetime):
            object_ (Literal['entry'] | Unset):  Default: 'entry'.
     """

    id: str
    account_id: str
    transfer_id: str
    currency: str
    layer: str
    side: str
    amount: int
    posted_after: int
    available_after: int
    version: int
    created_at: datetime.datetime
    object_: Literal['entry'] | Unset = 'entry'
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        id = self.id

        account_id = self.account_id

        transfer_id = self.transfer_id

        currency = self.currency

        layer = self.layer

        side = self.side

        amount = self.amount

        posted_after = self.posted_after

        available_after = self.available_after

        version = self.version

        created_at = self.created_at.isoformat()

        object_ = self.object_


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "account_id": account_id,
            "transfer_id": transfer_id,
            "currency": currency,
            "layer": layer,
            "side": side,
            "amount": amount,
            "posted_after": posted_after,
            "available_after": available_after,
            "version": version,
            "created_at": created_at,
        })
        if object_ is not UNSET:
            field_dict["object"] = object_

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        id = d.pop("id")

        account_id = d.pop("account_id")

        transfer_id = d.pop("transfer_id")

        currency = d.pop("currency")

        layer = d.pop("layer")

        side = d.pop("side")

        amount = d.pop("amount")

        posted_after = d.pop("posted_after")

        available_after = d.pop("available_after")

        version = d.pop("version")

        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))




        object_ = cast(Literal['entry'] | Unset , d.pop("object", UNSET))
        if object_ != 'entry'and not isinstance(object_, Unset):
            raise ValueError(f"object must match const 'entry', got '{object_}'")

        entry_out = cls(
            id=id,
            account_id=account_id,
            transfer_id=transfer_id,
            currency=currency,
            layer=layer,
            side=side,
            amount=amount,
            posted_after=posted_after,
            available_after=available_after,
            version=version,
            created_at=created_at,
            object_=object_,
        )


        entry_out.additional_properties = d
        return entry_out

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
