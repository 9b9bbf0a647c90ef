"""Ids, and where each one lives.

An id is a type prefix and a ULID: `acct_01J...`, `tr_01J...`. It sorts by the millisecond it
was made in. This module formats ids from a time and randomness it is given (`account_id`,
`transfer_id`): reading the clock and drawing randomness happen at the edges that create
accounts and transfers (`shards.accounts.new_account_id`, `shards.cluster.new_transfer_id`),
and an idempotent request's id is derived from its operation key instead (`key_entropy`), so
every attempt of the request names the same account or transfer.

Where an id lives: an account id hashes to a slot (`slot_of`); a transfer id carries its
debit account's slot in its lowest bits (`transfer_slot`), so a transfer is found on one
shard. The shard map assigns contiguous slot ranges to shard indexes; moving a range to
another instance bumps the map's version without re-hashing any id.

Slot hashing is stable: an id always maps to the same slot, in every process and version.
Python's `hash()` is salted per process, so it would route one account to different shards
in different processes; BLAKE2b is stable, fast and in the standard library.
"""

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from ledger.limits import SHARD_COUNT_MAX, SLOT_COUNT

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
    (`transfer_id`), so the transfer is found on one shard."""
    assert is_transfer_id(transfer_id)
    value = 0
    for char in transfer_id.removeprefix(TRANSFER_PREFIX):
        value = value * 32 + _CROCKFORD.index(char)
    return value % SLOT_COUNT


ENTROPY_BYTES: Final = 10
"""A ULID's random part: 80 bits."""

_RANDOM_BITS: Final = ENTROPY_BYTES * 8
_SLOT_BITS: Final = SLOT_COUNT.bit_length() - 1
_MILLIS_MAX: Final = 2**48 - 1


def _ulid(millis: int, random_part: int) -> str:
    """The 26 Crockford base32 characters of a ULID: 48 bits of milliseconds since the
    epoch, then 80 bits of randomness."""
    assert 0 <= millis <= _MILLIS_MAX
    assert 0 <= random_part < 2**_RANDOM_BITS
    value = millis << _RANDOM_BITS | random_part
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def key_entropy(operation_key: str) -> bytes:
    """The randomness of the id an idempotent request makes, drawn from its operation key
    (unique per API key and request), so every attempt of the request makes the same id."""
    return hashlib.sha256(operation_key.encode()).digest()[:ENTROPY_BYTES]


def account_id(millis: int, entropy: bytes) -> str:
    """An account id made at `millis` (since the epoch) from `ENTROPY_BYTES` of entropy."""
    assert len(entropy) == ENTROPY_BYTES
    return f"{ACCOUNT_PREFIX}{_ulid(millis, int.from_bytes(entropy, 'big'))}"


def transfer_id(slot: int, millis: int, entropy: bytes) -> str:
    """A transfer id made at `millis` for a transfer that lives in `slot` (its debit
    account's).

    The slot replaces the ULID's lowest random bits (`transfer_slot` reads it back): the id
    still sorts by creation millisecond, keeps 68 random bits, and says which shard holds
    the transfer, wherever the slot moves.
    """
    assert 0 <= slot < SLOT_COUNT
    assert len(entropy) == ENTROPY_BYTES
    random_part = int.from_bytes(entropy, "big") >> _SLOT_BITS << _SLOT_BITS | slot
    return f"{TRANSFER_PREFIX}{_ulid(millis, random_part)}"


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


def slot_of(entity_id: str) -> int:
    """The slot, in `[0, SLOT_COUNT)`, an id hashes to."""
    digest = hashlib.blake2b(entity_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SLOT_COUNT


@dataclass(frozen=True, slots=True)
class SlotRange:
    """Slots `[start, stop)` served by shard `shard`."""

    start: int
    stop: int
    shard: int


@dataclass(frozen=True, slots=True)
class ShardMap:
    """A complete, non-overlapping assignment of every slot to a shard."""

    version: int
    ranges: tuple[SlotRange, ...]

    def __post_init__(self) -> None:
        assert self.version >= 1
        assert self.ranges, "a shard map needs at least one range"
        expected_start = 0
        for slot_range in self.ranges:
            assert slot_range.start == expected_start, "ranges must be sorted and contiguous"
            assert slot_range.start < slot_range.stop
            assert 0 <= slot_range.shard < SHARD_COUNT_MAX
            expected_start = slot_range.stop
        assert expected_start == SLOT_COUNT, "ranges must cover every slot"

    @property
    def shard_count(self) -> int:
        """How many shards the map names."""
        return max(r.shard for r in self.ranges) + 1

    def shard_for_slot(self, slot: int) -> int:
        """The shard serving `slot`."""
        assert 0 <= slot < SLOT_COUNT
        for slot_range in self.ranges:
            if slot < slot_range.stop:
                return slot_range.shard
        raise AssertionError("unreachable: ranges cover every slot")

    def shard_for(self, entity_id: str) -> int:
        """The shard that stores the entity with this id."""
        return self.shard_for_slot(slot_of(entity_id))

    def to_json(self) -> dict[str, object]:
        """A JSON-ready form, stored with the data on every shard."""
        return {
            "version": self.version,
            "ranges": [[r.start, r.stop, r.shard] for r in self.ranges],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> "ShardMap":
        """Parse the stored form."""
        raw_ranges = data["ranges"]
        assert isinstance(raw_ranges, list)
        version = data["version"]
        assert isinstance(version, int)
        return cls(
            version=version,
            ranges=tuple(SlotRange(int(a), int(b), int(s)) for a, b, s in raw_ranges),
        )


def even_shard_map(shard_count: int) -> ShardMap:
    """Version 1: slots split into `shard_count` equal contiguous ranges."""
    assert 1 <= shard_count <= SHARD_COUNT_MAX
    bounds = [SLOT_COUNT * i // shard_count for i in range(shard_count + 1)]
    return ShardMap(
        version=1,
        ranges=tuple(SlotRange(bounds[i], bounds[i + 1], i) for i in range(shard_count)),
    )
