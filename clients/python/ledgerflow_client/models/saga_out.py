from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.saga_step import SagaStep
from typing import cast






T = TypeVar("T", bound="SagaOut")



@_attrs_define
class SagaOut:
    """ How a cross-shard transfer is being settled.

        Attributes:
            step (None | SagaStep):
            workflow_id (None | str):
            source_shard (int):
            destination_shard (int):
     """

    step: None | SagaStep
    workflow_id: None | str
    source_shard: int
    destination_shard: int
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        step: None | str
        if isinstance(self.step, SagaStep):
            step = self.step.value
        else:
            step = self.step

        workflow_id: None | str
        workflow_id = self.workflow_id

        source_shard = self.source_shard

        destination_shard = self.destination_shard


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "step": step,
            "workflow_id": workflow_id,
            "source_shard": source_shard,
            "destination_shard": destination_shard,
        })

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        def _parse_step(data: object) -> None | SagaStep:
            if data is None:
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                step_type_0 = SagaStep(data)



                return step_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | SagaStep, data)

        step = _parse_step(d.pop("step"))


        def _parse_workflow_id(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        workflow_id = _parse_workflow_id(d.pop("workflow_id"))


        source_shard = d.pop("source_shard")

        destination_shard = d.pop("destination_shard")

        saga_out = cls(
            step=step,
            workflow_id=workflow_id,
            source_shard=source_shard,
            destination_shard=destination_shard,
        )


        saga_out.additional_properties = d
        return saga_out

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
