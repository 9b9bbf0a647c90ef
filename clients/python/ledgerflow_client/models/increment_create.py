from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset







T = TypeVar("T", bound="IncrementCreate")



@_attrs_define
class IncrementCreate:
    """ `POST /v1/transfers/{id}/increment`: raise an open hold by `amount`.

        Attributes:
            amount (int):
     """

    amount: int





    def to_dict(self) -> dict[str, Any]:
        amount = self.amount


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "amount": amount,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        amount = d.pop("amount")

        increment_create = cls(
            amount=amount,
        )

        return increment_create

