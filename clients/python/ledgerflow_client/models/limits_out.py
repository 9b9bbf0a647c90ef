from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast






T = TypeVar("T", bound="LimitsOut")



@_attrs_define
class LimitsOut:
    """ An account's limits; null: none.

        Attributes:
            min_available (int | None):
            max_balance (int | None):
            daily_outgoing (int | None):
            review_above (int | None):
     """

    min_available: int | None
    max_balance: int | None
    daily_outgoing: int | None
    review_above: int | None
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        min_available: int | None
        min_available = self.min_available

        max_balance: int | None
        max_balance = self.max_balance

        daily_outgoing: int | None
        daily_outgoing = self.daily_outgoing

        review_above: int | None
        review_above = self.review_above


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "min_available": min_available,
            "max_balance": max_balance,
            "daily_outgoing": daily_outgoing,
            "review_above": review_above,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_min_available(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        min_available = _parse_min_available(d.pop("min_available"))


        def _parse_max_balance(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        max_balance = _parse_max_balance(d.pop("max_balance"))


        def _parse_daily_outgoing(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        daily_outgoing = _parse_daily_outgoing(d.pop("daily_outgoing"))


        def _parse_review_above(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        review_above = _parse_review_above(d.pop("review_above"))


        limits_out = cls(
            min_available=min_available,
            max_balance=max_balance,
            daily_outgoing=daily_outgoing,
            review_above=review_above,
        )


        limits_out.additional_properties = d
        return limits_out

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
