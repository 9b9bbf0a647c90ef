"""Ids carry a type prefix and a ULID: `acct_01J...`, `tr_01J...`.

Making a new id needs a clock and randomness, so it happens at the edges (`shards.ids`);
the domain only recognises ids.
"""

import re
from typing import Final

from ledger.limits import SLOT_COUNT

ACCOUNT_PREFIX: Final = "acct_"
TRANSFER_PREFIX: Final = "tr_"
CLEARING_PREFIX: Final = "acct_clearing_"
AVAILABILITY_PREFIX: Final = "acct_availability_"

_ULID = r"[0-9A-HJKMNP-TV-Z]{26}"
_ACCOUNT_ID = re.compile(rf"acct_{_ULID}")
_TRANSFER_ID = re.compile(rf"tr_{_ULID}")


def is_account_id(value: str) -> bool:
    """Whether `value` is a well-formed customer account id."""
    return _ACCOUNT_ID.fullmatch(value) is not None


def is_transfer_id(value: str) -> bool:
    """Whether `value` is a well-formed transfer id."""
    return _TRANSFER_ID.fullmatch(value) is not None


_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# A slot fits in a ULID's lowest bits only while the slot count is a power of two.
assert SLOT_COUNT & (SLOT_COUNT - 1) == 0


def transfer_slot(transfer_id: str) -> int:
    """The slot a transfer id names: its debit account's, kept in the ULID's lowest bits
    (`shards.ids.new_transfer_id`), so the transfer is found on one shard."""
    assert is_transfer_id(transfer_id)
    value = 0
    for char in transfer_id.removeprefix(TRANSFER_PREFIX):
        value = value * 32 + _CROCKFORD.index(char)
    return value % SLOT_COUNT


def clearing_account_id(shard: int, currency: str) -> str:
    """The clearing account of a shard for one currency; cross-shard sagas post through it."""
    assert shard >= 0
    assert len(currency) == 3
    return f"{CLEARING_PREFIX}{shard}_{currency}"


def availability_account_id(shard: int, currency: str) -> str:
    """The system account of a shard that carries credits not yet available, per currency:
    a delayed transfer's debit is posted to it at once, and it credits the payee when the
    money becomes available."""
    assert shard >= 0
    assert len(currency) == 3
    return f"{AVAILABILITY_PREFIX}{shard}_{currency}"


def entry_id(account_id: str, version: int) -> str:
    """An entry is identified by its account and the account version it produced."""
    return f"ent_{account_id.removeprefix(ACCOUNT_PREFIX)}_{version}"


def saga_operation_key(transfer_id: str, step: str) -> str:
    """The operation key of one saga step of one transfer: `tr_...:credit`."""
    assert step in {"reserve", "prepare", "credit", "void", "post", "release"}
    return f"{transfer_id}:{step}"
