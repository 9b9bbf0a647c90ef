from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast
from typing import Literal, cast

if TYPE_CHECKING:
  from ..models.batch_item_out import BatchItemOut





T = TypeVar("T", bound="BatchOut")



@_attrs_define
class BatchOut:
    """ The outcome of every item, in the request's order.

        Attributes:
            atomic (bool):
            data (list[BatchItemOut]):
            object_ (Literal['batch'] | Unset):  Default: 'batch'.
     """

    atomic: bool
    data: list[BatchItemOut]
    object_: Literal['batch'] | Unset = 'batch'
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.batch_item_out import BatchItemOut # noqa: PLC0415
        atomic = self.atomic

        data = []
        for data_item_data in self.data:
            data_item = data_item_data.to_dict()
            data.append(data_item)



        object_ = self.object_


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "atomic": atomic,
            "data": data,
        })
        if object_ is not UNSET:
            field_dict["object"] = object_

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.batch_item_out import BatchItemOut # noqa: PLC0415
        d = dict(src_dict)
        atomic = d.pop("atomic")

        data = []
        _data = d.pop("data")
        for data_item_data in (_data):
            data_item = BatchItemOut.from_dict(data_item_data)



            data.append(data_item)


        object_ = cast(Literal['batch'] | Unset , d.pop("object", UNSET))
        if object_ != 'batch'and not isinstance(object_, Unset):
            raise ValueError(f"object must match const 'batch', got '{object_}'")

        batch_out = cls(
            atomic=atomic,
            data=data,
            object_=object_,
        )


        batch_out.additional_properties = d
        return batch_out

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
