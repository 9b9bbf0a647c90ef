from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="LimitsIn")



@_attrs_define
class LimitsIn:
    """ An account's limits; an absent or null field sets no such limit.

        Attributes:
            min_available (int | None | Unset): The lowest available balance a movement may leave; negative: an overdraft
                line. Without it, `allow_overdraft` decides (no floor, or zero).
            max_balance (int | None | Unset): The highest posted plus pending balance a movement may leave (409
                `balance_limit_exceeded`).
            daily_outgoing (int | None | Unset): The most the account may send over any 24 hours (402
                `daily_limit_exceeded`).
            review_above (int | None | Unset): A transfer debiting more waits in `requires_review` for `/approve` or
                `/reject` (rejected after `LEDGERFLOW_REVIEW_TIMEOUT_S`).
     """

    min_available: int | None | Unset = UNSET
    max_balance: int | None | Unset = UNSET
    daily_outgoing: int | None | Unset = UNSET
    review_above: int | None | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        min_available: int | None | Unset
        if isinstance(self.min_available, Unset):
            min_available = UNSET
        else:
            min_available = self.min_available

        max_balance: int | None | Unset
        if isinstance(self.max_balance, Unset):
            max_balance = UNSET
        else:
            max_balance = self.max_balance

        daily_outgoing: int | None | Unset
        if isinstance(self.daily_outgoing, Unset):
            daily_outgoing = UNSET
        else:
            daily_outgoing = self.daily_outgoing

        review_above: int | None | Unset
        if isinstance(self.review_above, Unset):
            review_above = UNSET
        else:
            review_above = self.review_above


        field_dict: dict[str, Any] = {}

        field_dict.update({
        })
        if min_available is not UNSET:
            field_dict["min_available"] = min_available
        if max_balance is not UNSET:
            field_dict["max_balance"] = max_balance
        if daily_outgoing is not UNSET:
            field_dict["daily_outgoing"] = daily_outgoing
        if review_above is not UNSET:
            field_dict["review_above"] = review_above

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_min_available(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        min_available = _parse_min_available(d.pop("min_available", UNSET))


        def _parse_max_balance(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_balance = _parse_max_balance(d.pop("max_balance", UNSET))


        def _parse_daily_outgoing(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        daily_outgoing = _parse_daily_outgoing(d.pop("daily_outgoing", UNSET))


        def _parse_review_above(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        review_above = _parse_review_above(d.pop("review_above", UNSET))


        limits_in = cls(
            min_available=min_available,
            max_balance=max_balance,
            daily_outgoing=daily_outgoing,
            review_above=review_above,
        )

        return limits_in

