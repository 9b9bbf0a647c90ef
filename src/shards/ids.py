"""New ids: a type prefix and a ULID, so ids sort by creation time."""

import hashlib
import secrets
import time
from datetime import datetime

from ulid import ULID

from ledger.ids import ACCOUNT_PREFIX, TRANSFER_PREFIX
from ledger.limits import SLOT_COUNT

_ULID_RANDOM_BITS = 80
_SLOT_BITS = SLOT_COUNT.bit_length() - 1


def new_account_id() -> str:
    """A fresh `acct_<ulid>`."""
    return f"{ACCOUNT_PREFIX}{ULID()}"


def account_id_for(operation_key: str, first_seen_at: datetime) -> str:
    """The id of the account an idempotent request opens: the same for every attempt of
    the request, so a retry after a crash finds the account the first attempt created
    instead of opening a second one. It sorts by when the request was first seen, and its
    80 random bits come from the operation key, which is unique per API key and request."""
    millis = int(first_seen_at.timestamp() * 1000)
    digest = hashlib.sha256(operation_key.encode()).digest()
    value = millis << _ULID_RANDOM_BITS | int.from_bytes(digest[:10], "big")
    return f"{ACCOUNT_PREFIX}{ULID.from_int(value)}"


def new_transfer_id(slot: int) -> str:
    """A fresh `tr_<ulid>` for a transfer that lives in `slot` (its debit account's).

    The slot replaces the ULID's lowest random bits (`ledger.ids.transfer_slot` reads it
    back): the id still sorts by creation millisecond, keeps 68 random bits, and says which shard
    holds the transfer, wherever the slot moves.
    """
    assert 0 <= slot < SLOT_COUNT
    # Built from fresh randomness: a monotonic ULID generator increments the lowest bits
    # within a millisecond, which the slot would overwrite.
    random_bits = _ULID_RANDOM_BITS - _SLOT_BITS
    value = (time.time_ns() // 1_000_000) << _ULID_RANDOM_BITS
    value |= secrets.randbits(random_bits) << _SLOT_BITS | slot
    return f"{TRANSFER_PREFIX}{ULID.from_int(value)}"


def transfer_id_for(operation_key: str, first_seen_at: datetime, slot: int) -> str:
    """The id of a transfer an idempotent request makes in `slot`: the same for every
    attempt of the request (like `account_id_for`), so a retry names the transfer the first
    attempt started."""
    assert 0 <= slot < SLOT_COUNT
    millis = int(first_seen_at.timestamp() * 1000)
    digest = hashlib.sha256(operation_key.encode()).digest()
    random_bits = int.from_bytes(digest[:10], "big") >> _SLOT_BITS
    value = millis << _ULID_RANDOM_BITS | random_bits << _SLOT_BITS | slot
    return f"{TRANSFER_PREFIX}{ULID.from_int(value)}"


def new_api_key() -> tuple[str, str]:
    """A fresh API key id and secret; the secret is shown once and stored hashed."""
    return f"key_{ULID()}", f"lf_sk_{secrets.token_urlsafe(32)}"
