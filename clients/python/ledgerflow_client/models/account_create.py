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
  from ..models.limits_in import LimitsIn





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
            limits (LimitsIn | None | Unset):
     """

    currency: Currency
    normal_balance: NormalBalance | Unset = UNSET
    allow_overdraft: bool | Unset = False
    metadata: AccountCreateMetadata | Unset = UNSET
    limits: LimitsIn | None | Unset = UNSET





    def to_dict(self) -> dict[str, Any]:
        from ..models.account_create_metadata import AccountCreateMetadata # noqa: PLC0415
        from ..models.limits_in import LimitsIn # noqa: PLC0415
        currency = self.currency.value

        normal_balance: str | Unset = UNSET
        if not isinstance(self.normal_balance, Unset):
            normal_balance = self.normal_balance.value


        allow_overdraft = self.allow_overdraft

        metadata: dict[str, Any] | Unset = UNSET
        if not isinstance(self.metadata, Unset):
            metadata = self.metadata.to_dict()

        limits: dict[str, Any] | None | Unset
        if isinstance(self.limits, Unset):
            limits = UNSET
        elif isinstance(self.limits, LimitsIn):
            limits = self.limits.to_dict()
        else:
            limits = self.limits


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
        if limits is not UNSET:
            field_dict["limits"] = limits

        return field_dict



    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.account_create_metadata import AccountCreateMetadata # noqa: PLC0415
        from ..models.limits_in import LimitsIn # noqa: PLC0415
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




        def _parse_limits(data: object) -> LimitsIn | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                limits_type_0 = LimitsIn.from_dict(data)



                return limits_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(LimitsIn | None | Unset, data)

        limits = _parse_limits(d.pop("limits", UNSET))


        account_create = cls(
            currency=currency,
            normal_balance=normal_balance,
            allow_overdraft=allow_overdraft,
            metadata=metadata,
            limits=limits,
        )

        return account_create

