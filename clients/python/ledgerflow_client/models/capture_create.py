from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="CaptureCreate")



@_attrs_define
class CaptureCreate:
    """ `POST /v1/transfers/{id}/capture`: post `amount` of a hold (all of it when absent).

        Attributes:
            amount (int | None | Unset):
            final (bool | Unset): Release what the capture leaves (true), or keep it held for more captures. Default: True.
     """

    amount: int | None | Unset = UNSET
    final: bool | Unset = True





    def to_dict(self) -> dict[str, Any]:
        amount: int | None | Unset
        if isinstance(self.amount, Unset):
            amount = UNSET
        else:
            amount = self.amount

        final = self.final


        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if amount is not UNSET:
            field_dict["amount"] = amount
        if final is not UNSET:
            field_dict["final"] = final

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_amount(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        amount = _parse_amount(d.pop("amount", UNSET))


        final = d.pop("final", UNSET)

        capture_create = cls(
            amount=amount,
            final=final,
        )

        return capture_create

