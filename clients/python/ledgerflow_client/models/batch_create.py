from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.batch_item import BatchItem





T = TypeVar("T", bound="BatchCreate")



@_attrs_define
class BatchCreate:
    """ `POST /v1/transfers/batch`: up to a thousand transfers in one request.

        Attributes:
            transfers (list[BatchItem]):
            atomic (bool | Unset): All or nothing, across shards too: every transfer is posted, or none. Default: False.
     """

    transfers: list[BatchItem]
    atomic: bool | Unset = False





    def to_dict(self) -> dict[str, Any]:
        from ..models.batch_item import BatchItem # noqa: PLC0415
        transfers = []
        for transfers_item_data in self.transfers:
            transfers_item = transfers_item_data.to_dict()
            transfers.append(transfers_item)



        atomic = self.atomic


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "transfers": transfers,
        })
        if atomic is not UNSET:
            field_dict["atomic"] = atomic

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.batch_item import BatchItem # noqa: PLC0415
        d = dict(src_dict)
        transfers = []
        _transfers = d.pop("transfers")
        for transfers_item_data in (_transfers):
            transfers_item = BatchItem.from_dict(transfers_item_data)



            transfers.append(transfers_item)


        atomic = d.pop("atomic", UNSET)

        batch_create = cls(
            transfers=transfers,
            atomic=atomic,
        )

        return batch_create

