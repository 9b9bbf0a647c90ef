from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, BinaryIO, TextIO, TYPE_CHECKING, Generator

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

from ..models.currency import Currency
from ..models.normal_balance import NormalBalance
from ..types import UNSET, Unset
from typing import cast

if TYPE_CHECKING:
  from ..models.account_create_metadata import AccountCreateMetadata





T = TypeVar("T", bound="AccountCreate")



@_attrs_define
class AccountCreate:
    """ `POST /v1/accounts`.

        Attributes:
            currency (Currency): An ISO 4217 currency code.
            normal_balance (NormalBalance | Unset): Which side increases an account: customer wallets are credit-normal,
                assets debit.
            allow_overdraft (bool | Unset):  Default: False.
            metadata (AccountCreateMetadata | Unset):
     """

    currency: Currency
    normal_balance: NormalBalance | Unset = UNSET
    allow_overdraft: bool | Unset = False
    metadata: AccountCreateMetadata | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        from ..models.account_create_metadata import AccountCreateMetadata # noqa: PLC0415
        currency = self.currency.value

        normal_balance: str | Unset = UNSET
        if not isinstance(self.normal_balance, Unset):
            normal_balance = self.normal_balance.value


        allow_overdraft = self.allow_overdraft

        metadata: dict[str, Any] | Unset = UNSET
        if not isinstance(self.metadata, Unset):
            metadata = self.metadata.to_dict()


        field_dict: dict[str, Any] = {}

        field_dict.update({
            "currency": currency,
        })
        if normal_balance is not UNSET:
            field_dict["normal_balance"] = normal_balance
        if allow_overdraft is not UNSET:
            field_dict["allow_overdraft"] = allow_overdraft
        if metadata is not UNSET:
            field_dict["metadata"] = metadata

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.account_create_metadata import AccountCreateMetadata # noqa: PLC0415
        d = dict(src_dict)
        currency = Currency(d.pop("currency"))




        _normal_balance = d.pop("normal_balance", UNSET)
        normal_balance: NormalBalance | Unset
        if isinstance(_normal_balance,  Unset):
            normal_balance = UNSET
        else:
            normal_balance = NormalBalance(_normal_balance)




        allow_overdraft = d.pop("allow_overdraft", UNSET)

        _metadata = d.pop("metadata", UNSET)
        metadata: AccountCreateMetadata | Unset
        if isinstance(_metadata,  Unset):
            metadata = UNSET
        else:
            metadata = AccountCreateMetadata.from_dict(_metadata)




        account_create = cls(
            currency=currency,
            normal_balance=normal_balance,
            allow_overdraft=allow_overdraft,
            metadata=metadata,
        )

        return account_create

