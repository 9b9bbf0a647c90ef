from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.transfer_status import TransferStatus
from ..types import UNSET, Unset
from typing import cast
from typing import Literal, cast
import datetime

if TYPE_CHECKING:
  from ..models.capture_out import CaptureOut
  from ..models.saga_out import SagaOut
  from ..models.transfer_out_metadata import TransferOutMetadata





T = TypeVar("T", bound="TransferOut")



@_attrs_define
class TransferOut:
    """ A transfer.

        Attributes:
            id (str):
            status (TransferStatus): Where a transfer is, as the API shows it.
            amount (int):
            currency (str):
            debit_account_id (str):
            credit_account_id (str):
            cross_shard (bool):
            metadata (TransferOutMetadata):
            created_at (datetime.datetime):
            object_ (Literal['transfer'] | Unset):  Default: 'transfer'.
            failure_code (None | str | Unset):
            saga (None | SagaOut | Unset):
            expires_at (datetime.datetime | None | Unset):
            captured_amount (int | None | Unset):
            captures (list[CaptureOut] | None | Unset):
            available_on (datetime.datetime | None | Unset):
            available_at (datetime.datetime | None | Unset):
     """

    id: str
    status: TransferStatus
    amount: int
    currency: str
    debit_account_id: str
    credit_account_id: str
    cross_shard: bool
    metadata: TransferOutMetadata
    created_at: datetime.datetime
    object_: Literal['transfer'] | Unset = 'transfer'
    failure_code: None | str | Unset = UNSET
    saga: None | SagaOut | Unset = UNSET
    expires_at: datetime.datetime | None | Unset = UNSET
    captured_amount: int | None | Unset = UNSET
    captures: list[CaptureOut] | None | Unset = UNSET
    available_on: datetime.datetime | None | Unset = UNSET
    available_at: datetime.datetime | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.capture_out import CaptureOut # noqa: PLC0415
        from ..models.saga_out import SagaOut # noqa: PLC0415
        from ..models.transfer_out_metadata import TransferOutMetadata # noqa: PLC0415
        id = self.id

        status = self.status.value

        amount = self.amount

        currency = self.currency

        debit_account_id = self.debit_account_id

        credit_account_id = self.credit_account_id

        cross_shard = self.cross_shard

        metadata = self.metadata.to_dict()

        created_at = self.created_at.isoformat()

        object_ = self.object_

        failure_code: None | str | Unset
        if isinstance(self.failure_code, Unset):
            failure_code = UNSET
        else:
            failure_code = self.failure_code

        saga: dict[str, Any] | None | Unset
        if isinstance(self.saga, Unset):
            saga = UNSET
        elif isinstance(self.saga, SagaOut):
            saga = self.saga.to_dict()
        else:
            saga = self.saga

        expires_at: None | str | Unset
        if isinstance(self.expires_at, Unset):
            expires_at = UNSET
        elif isinstance(self.expires_at, datetime.datetime):
            expires_at = self.expires_at.isoformat()
        else:
            expires_at = self.expires_at

        captured_amount: int | None | Unset
        if isinstance(self.captured_amount, Unset):
            captured_amount = UNSET
        else:
            captured_amount = self.captured_amount

        captures: list[dict[str, Any]] | None | Unset
        if isinstance(self.captures, Unset):
            captures = UNSET
        elif isinstance(self.captures, list):
            captures = []
            for captures_type_0_item_data in self.captures:
                captures_type_0_item = captures_type_0_item_data.to_dict()
                captures.append(captures_type_0_item)


        else:
            captures = self.captures

        available_on: None | str | Unset
        if isinstance(self.available_on, Unset):
            available_on = UNSET
        elif isinstance(self.available_on, datetime.datetime):
            available_on = self.available_on.isoformat()
        else:
            available_on = self.available_on

        available_at: None | str | Unset
        if isinstance(self.available_at, Unset):
            available_at = UNSET
        elif isinstance(self.available_at, datetime.datetime):
            available_at = self.available_at.isoformat()
        else:
            available_at = self.available_at


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "status": status,
            "amount": amount,
            "currency": currency,
            "debit_account_id": debit_account_id,
            "credit_account_id": credit_account_id,
            "cross_shard": cross_shard,
            "metadata": metadata,
            "created_at": created_at,
        })
        if object_ is not UNSET:
            field_dict["object"] = object_
        if failure_code is not UNSET:
            field_dict["failure_code"] = failure_code
        if saga is not UNSET:
            field_dict["saga"] = saga
        if expires_at is not UNSET:
            field_dict["expires_at"] = expires_at
        if captured_amount is not UNSET:
            field_dict["captured_amount"] = captured_amount
        if captures is not UNSET:
            field_dict["captures"] = captures
        if available_on is not UNSET:
            field_dict["available_on"] = available_on
        if available_at is not UNSET:
            field_dict["available_at"] = available_at

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.capture_out import CaptureOut # noqa: PLC0415
        from ..models.saga_out import SagaOut # noqa: PLC0415
        from ..models.transfer_out_metadata import TransferOutMetadata # noqa: PLC0415
        d = dict(src_dict)
        id = d.pop("id")

        status = TransferStatus(d.pop("status"))




        amount = d.pop("amount")

        currency = d.pop("currency")

        debit_account_id = d.pop("debit_account_id")

        credit_account_id = d.pop("credit_account_id")

        cross_shard = d.pop("cross_shard")

        metadata = TransferOutMetadata.from_dict(d.pop("metadata"))




        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))




        object_ = cast(Literal['transfer'] | Unset , d.pop("object", UNSET))
        if object_ != 'transfer'and not isinstance(object_, Unset):
            raise ValueError(f"object must match const 'transfer', got '{object_}'")

        def _parse_failure_code(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        failure_code = _parse_failure_code(d.pop("failure_code", UNSET))


        def _parse_saga(data: object) -> None | SagaOut | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                saga_type_0 = SagaOut.from_dict(data)



                return saga_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | SagaOut | Unset, data)

        saga = _parse_saga(d.pop("saga", UNSET))


        def _parse_expires_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                expires_at_type_0 = datetime.datetime.fromisoformat(data)



                return expires_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        expires_at = _parse_expires_at(d.pop("expires_at", UNSET))


        def _parse_captured_amount(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        captured_amount = _parse_captured_amount(d.pop("captured_amount", UNSET))


        def _parse_captures(data: object) -> list[CaptureOut] | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, list):
                    raise TypeError()
                captures_type_0 = []
                _captures_type_0 = data
                for captures_type_0_item_data in (_captures_type_0):
                    captures_type_0_item = CaptureOut.from_dict(captures_type_0_item_data)



                    captures_type_0.append(captures_type_0_item)

                return captures_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(list[CaptureOut] | None | Unset, data)

        captures = _parse_captures(d.pop("captures", UNSET))


        def _parse_available_on(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                available_on_type_0 = datetime.datetime.fromisoformat(data)



                return available_on_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        available_on = _parse_available_on(d.pop("available_on", UNSET))


        def _parse_available_at(data: object) -> datetime.datetime | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, str):
                    raise TypeError()
                available_at_type_0 = datetime.datetime.fromisoformat(data)



                return available_at_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(datetime.datetime | None | Unset, data)

        available_at = _parse_available_at(d.pop("available_at", UNSET))


        transfer_out = cls(
            id=id,
            status=status,
            amount=amount,
            currency=currency,
            debit_account_id=debit_account_id,
            credit_account_id=credit_account_id,
            cross_shard=cross_shard,
            metadata=metadata,
            created_at=created_at,
            object_=object_,
            failure_code=failure_code,
            saga=saga,
            expires_at=expires_at,
            captured_amount=captured_amount,
            captures=captures,
            available_on=available_on,
            available_at=available_at,
        )


        transfer_out.additional_properties = d
        return transfer_out

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
