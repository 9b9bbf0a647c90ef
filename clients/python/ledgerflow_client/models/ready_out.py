from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.ready_out_status import ReadyOutStatus
from ..types import UNSET, Unset
from typing import cast






T = TypeVar("T", bound="ReadyOut")



@_attrs_define
class ReadyOut:
    """ `/readyz`: `ok` with the shard count, or `unavailable` naming the shards down.

        Attributes:
            status (ReadyOutStatus):
            shards (int | None | Unset):
            shards_down (list[int] | None | Unset):
     """

    status: ReadyOutStatus
    shards: int | None | Unset = UNSET
    shards_down: list[int] | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        status = self.status.value

        shards: int | None | Unset
        if isinstance(self.shards, Unset):
            shards = UNSET
        else:
            shards = self.shards

        shards_down: list[int] | None | Unset
        if isinstance(self.shards_down, Unset):
            shards_down = UNSET
        elif isinstance(self.shards_down, list):
            shards_down = self.shards_down


        else:
            shards_down = self.shards_down


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "status": status,
        })
        if shards is not UNSET:
            field_dict["shards"] = shards
        if shards_down is not UNSET:
            field_dict["shards_down"] = shards_down

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        status = ReadyOutStatus(d.pop("status"))




        def _parse_shards(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        shards = _parse_shards(d.pop("shards", UNSET))


        def _parse_shards_down(data: object) -> list[int] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                shards_down_type_0 = cast(list[int], data)

                return shards_down_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[int] | None | Unset, data)

        shards_down = _parse_shards_down(d.pop("shards_down", UNSET))


        ready_out = cls(
            status=status,
            shards=shards,
            shards_down=shards_down,
        )


        ready_out.additional_properties = d
        return ready_out

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
