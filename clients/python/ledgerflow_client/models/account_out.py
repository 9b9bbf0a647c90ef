from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.account_status import AccountStatus
from ..models.normal_balance import NormalBalance
from ..types import UNSET, Unset
from typing import cast
from typing import Literal, cast
import datetime

if TYPE_CHECKING:
  from ..models.account_out_metadata import AccountOutMetadata
  from ..models.balance_out import BalanceOut
  from ..models.limits_out import LimitsOut





T = TypeVar("T", bound="AccountOut")



@_attrs_define
class AccountOut:
    """ An account.

        Attributes:
            id (str):
            currency (str):
            normal_balance (NormalBalance): Which side increases an account: customer wallets are credit-normal, assets
                debit.
            allow_overdraft (bool):
            status (AccountStatus): An active account moves money; frozen and closed ones refuse new movements.
            shard (int):
            balance (BalanceOut): A balance in the account's normal orientation, in minor units.
            version (int):
            metadata (AccountOutMetadata):
            created_at (datetime.datetime):
            limits (LimitsOut): An account's limits; null: none.
            object_ (Literal['account'] | Unset):  Default: 'account'.
     """

    id: str
    currency: str
    normal_balance: NormalBalance
    allow_overdraft: bool
    status: AccountStatus
    shard: int
    balance: BalanceOut
    version: int
    metadata: AccountOutMetadata
    created_at: datetime.datetime
    limits: LimitsOut
    object_: Literal['account'] | Unset = 'account'
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)





    def to_dict(self) -> dict[str, Any]:
        from ..models.account_out_metadata import AccountOutMetadata # noqa: PLC0415
        from ..models.balance_out import BalanceOut # noqa: PLC0415
        from ..models.limits_out import LimitsOut # noqa: PLC0415
        id = self.id

        currency = self.currency

        normal_balance = self.normal_balance.value

        allow_overdraft = self.allow_overdraft

        status = self.status.value

        shard = self.shard

        balance = self.balance.to_dict()

        version = self.version

        metadata = self.metadata.to_dict()

        created_at = self.created_at.isoformat()

        limits = self.limits.to_dict()

        object_ = self.object_


        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({
            "id": id,
            "currency": currency,
            "normal_balance": normal_balance,
            "allow_overdraft": allow_overdraft,
            "status": status,
            "shard": shard,
            "balance": balance,
            "version": version,
            "metadata": metadata,
            "created_at": created_at,
            "limits": limits,
        })
        if object_ is not UNSET:
            field_dict["object"] = object_

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.account_out_metadata import AccountOutMetadata # noqa: PLC0415
        from ..models.balance_out import BalanceOut # noqa: PLC0415
        from ..models.limits_out import LimitsOut # noqa: PLC0415
        d = dict(src_dict)
        id = d.pop("id")

        currency = d.pop("currency")

        normal_balance = NormalBalance(d.pop("normal_balance"))




        allow_overdraft = d.pop("allow_overdraft")

        status = AccountStatus(d.pop("status"))




        shard = d.pop("shard")

        balance = BalanceOut.from_dict(d.pop("balance"))




        version = d.pop("version")

        metadata = AccountOutMetadata.from_dict(d.pop("metadata"))




        created_at = datetime.datetime.fromisoformat(d.pop("created_at"))




        limits = LimitsOut.from_dict(d.pop("limits"))




        object_ = cast(Literal['account'] | Unset , d.pop("object", UNSET))
        if object_ != 'account'and not isinstance(object_, Unset):
            raise ValueError(f"object must match const 'account', got '{object_}'")

        account_out = cls(
            id=id,
            currency=currency,
            normal_balance=normal_balance,
            allow_overdraft=allow_overdraft,
            status=status,
            shard=shard,
            balance=balance,
            version=version,
            metadata=metadata,
            created_at=created_at,
            limits=limits,
            object_=object_,
        )


        account_out.additional_properties = d
        return account_out

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
