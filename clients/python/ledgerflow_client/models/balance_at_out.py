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






T = TypeVar("T", bound="BalanceAtOut")



@_attrs_define
class BalanceAtOut:
    """ An account's balance as it stood at an instant, from its entries.

        Attributes:
            account_id (str):
            currency (str):
            at (datetime.datetime):
            version (int):
            posted (int):
            pending (int):
            held (int):
            available (int):
            object_ (Literal['balance'] | Unset):  Default: 'balance'.
     """

    account_id: str
    currency: str
    at: datetime.datetime
    version: int
    posted: int
    pending: int
    held: int
    available: int
    object_: Literal['balance'] | Unset = 'balance'
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        account_id = self.account_id

        currency = self.currency

        at = self.at.isoformat()

        version = self.version

        posted = self.posted

        pending = self.pending

        held = self.held

        available = self.available

        object_ = self.object_


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "account_id": account_id,
            "currency": currency,
            "at": at,
            "version": version,
            "posted": posted,
            "pending": pending,
            "held": held,
            "available": available,
        })
        if object_ is not UNSET:
            field_dict["object"] = object_

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        account_id = d.pop("account_id")

        currency = d.pop("currency")

        at = datetime.datetime.fromisoformat(d.pop("at"))




        version = d.pop("version")

        posted = d.pop("posted")

        pending = d.pop("pending")

        held = d.pop("held")

        available = d.pop("available")

        object_ = cast(Literal['balance'] | Unset , d.pop("object", UNSET))
        if object_ != 'balance'and not isinstance(object_, Unset):
            raise ValueError(f"object must match const 'balance', got '{object_}'")

        balance_at_out = cls(
            account_id=account_id,
            currency=currency,
            at=at,
            version=version,
            posted=posted,
            pending=pending,
            held=held,
            available=available,
            object_=object_,
        )


        balance_at_out.additional_properties = d
        return balance_at_out

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
