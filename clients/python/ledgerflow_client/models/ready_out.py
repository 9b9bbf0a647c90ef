from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from typing import cast
from typing import Literal, cast






T = TypeVar("T", bound="ReadyOut")



@_attrs_define
class ReadyOut:
    """ `/readyz`: the process serves; `shards_down` names the shards that missed their last
    health probe (requests for their accounts get 503 until they are back).

        Attributes:
            status (Literal['ok']):
            shards (int):
            shards_down (list[int]):
     """

    status: Literal['ok']
    shards: int
    shards_down: list[int]
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        status = self.status

        shards = self.shards

        shards_down = self.shards_down




        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "status": status,
            "shards": shards,
            "shards_down": shards_down,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        status = cast(Literal['ok'] , d.pop("status"))
        if status != 'ok':
            raise ValueError(f"status must match const 'ok', got '{status}'")

        shards = d.pop("shards")

        shards_down = cast(list[int], d.pop("shards_down"))


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
