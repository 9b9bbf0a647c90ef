from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.event_type import EventType
from ..types import UNSET, Unset
from typing import cast
from typing import Literal, cast
import datetime

if TYPE_CHECKING:
  from ..models.event_data import EventData





T = TypeVar("T", bound="EventOut")



@_attrs_define
class EventOut:
    """ One change of a transfer's state, in the tenant's event feed.

        Attributes:
            id (str):
            type_ (EventType): What an event reports.
            data (EventData): What an event carries: the transfer as the change left it.
            created_at (datetime.datetime):
            object_ (Literal['event'] | Unset):  Default: 'event'.
     """

    id: str
    type_: EventType
    data: EventData
    created_at: datetime.datetime
    object_: Literal['event'] | Unset = 'event'
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.event_data import EventData # noqa: PLC0415
        id = self.id

        type_ = self.type_.value

        data = self.data.to_dict()

        created_at = self.created_at.isoformat()

        object_ = self.object_


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "type": type_,
            "data": data,
            "created_at": created_at,
        })
        if object_ is not UNSET:
            field_dict["object"] = object_

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.event_data import EventData # noqa: PLC0415
        d = dict(src_dict)
        id = d.pop("id")

        type_ = EventType(d.pop("type"))




        data = EventData.from_dict(d.pop("data"))




        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))




        object_ = cast(Literal['event'] | Unset , d.pop("object", UNSET))
        if object_ != 'event'and not isinstance(object_, Unset):
            raise ValueError(f"object must match const 'event', got '{object_}'")

        event_out = cls(
            id=id,
            type_=type_,
            data=data,
            created_at=created_at,
            object_=object_,
        )


        event_out.additional_properties = d
        return event_out

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
