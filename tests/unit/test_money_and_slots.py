"""Money validation, ids, slot hashing and the shard map."""

import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ulid import ULID

from ledger.errors import ErrorCode, LedgerError
from ledger.ids import (
    ENTROPY_BYTES,
    ShardMap,
    SlotRange,
    account_id,
    even_shard_map,
    is_transfer_id,
    key_entropy,
    slot_of,
    transfer_id,
    transfer_slot,
)
from ledger.limits import BIGINT_MAX, SLOT_COUNT
from ledger.money import check_amount, currency_exponent, format_minor
from shards.accounts import account_id_for
from shards.cluster import new_transfer_id, transfer_id_for


@pytest.mark.parametrize("amount", [0, -1, True, 1.5, BIGINT_MAX + 1])
def test_bad_amounts_are_refused(amount: object) -> None:
    """Zero, negatives, booleans, floats and values past bigint are not amounts."""
    with pytest.raises(LedgerError) as refused:
        check_amount(amount)  # type: ignore[arg-type]
    assert refused.value.code in {ErrorCode.AMOUNT_INVALID, ErrorCode.AMOUNT_OVERFLOW}


def test_currency_exponents() -> None:
    """ISO 4217 exponents: yen has none, dinar three; unknown codes are refused."""
    assert currency_exponent("JPY") == 0
    assert currency_exponent("KWD") == 3
    assert format_minor(-12345, "USD") == "-123.45 USD"
    with pytest.raises(LedgerError):
        currency_exponent("XXX")


def test_slot_hash_is_stable() -> None:
    """Slots never depend on the process: this value is fixed forever."""
    assert slot_of("acct_01JABCDEFGHJKMNPQRSTVWXYZ0") == slot_of("acct_01JABCDEFGHJKMNPQRSTVWXYZ0")
    assert slot_of("acct_00000000000000000000000000") == 797


@given(st.text(min_size=1, max_size=40))
def test_slots_are_in_range(value: str) -> None:
    """Every id lands in a slot."""
    assert 0 <= slot_of(value) < SLOT_COUNT


def test_even_shard_map_covers_every_slot() -> None:
    """The initial map splits slots evenly and round-trips through JSON."""
    shard_map = even_shard_map(4)
    assert [shard_map.shard_for_slot(s) for s in (0, 1023, 1024, 4095)] == [0, 0, 1, 3]
    assert ShardMap.from_json(shard_map.to_json()) == shard_map


def test_a_map_with_a_gap_is_a_programmer_error() -> None:
    """Maps must cover every slot exactly once."""
    with pytest.raises(AssertionError):
        ShardMap(version=1, ranges=(SlotRange(0, 100, 0), SlotRange(200, SLOT_COUNT, 1)))


@settings(max_examples=50)
@given(st.integers(0, SLOT_COUNT - 1))
def test_a_transfer_id_names_its_slot_and_still_sorts_by_time(slot: int) -> None:
    """A new transfer id is a well-formed `tr_<ulid>` that reads back the slot it was made
    for, and ids made later sort after it (the slot takes only the lowest random bits)."""
    first = new_transfer_id(slot)
    assert is_transfer_id(first)
    assert transfer_slot(first) == slot
    time.sleep(0.002)
    assert new_transfer_id(SLOT_COUNT - 1 - slot) > first


def test_transfer_ids_made_in_one_millisecond_for_one_slot_differ() -> None:
    """Ids for one slot made as fast as possible (many per millisecond) never collide."""
    ids = [new_transfer_id(7) for _ in range(20_000)]
    assert len(set(ids)) == len(ids)


@settings(max_examples=200)
@given(
    st.integers(0, 2**48 - 1),
    st.binary(min_size=ENTROPY_BYTES, max_size=ENTROPY_BYTES),
    st.integers(0, SLOT_COUNT - 1),
)
def test_ids_are_ulids_and_keep_their_layout(millis: int, entropy: bytes, slot: int) -> None:
    """The domain's own ULID formatting is python-ulid's: the time in the top 48 bits and the
    entropy below, with a transfer's slot in the lowest 12 bits. Ids made from an operation
    key before this formatting moved into the domain are made the same way, so a retry of an
    old request still names the account or transfer its first attempt created."""
    random_part = int.from_bytes(entropy, "big")
    assert account_id(millis, entropy) == f"acct_{ULID.from_int(millis << 80 | random_part)}"
    slot_bits = SLOT_COUNT.bit_length() - 1
    expected = millis << 80 | (random_part >> slot_bits) << slot_bits | slot
    made = transfer_id(slot, millis, entropy)
    assert made == f"tr_{ULID.from_int(expected)}"
    assert transfer_slot(made) == slot
    assert ULID.from_str(made.removeprefix("tr_")).milliseconds == millis


def test_ids_made_for_one_request_are_the_same_on_every_attempt() -> None:
    """An idempotent request's ids depend on its operation key and when it was first seen:
    the same for every attempt, different for another key."""
    seen = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert account_id_for("k1", seen) == account_id_for("k1", seen) != account_id_for("k2", seen)
    assert transfer_id_for("k1", seen, 9) == transfer_id_for("k1", seen, 9)
    assert transfer_slot(transfer_id_for("k1", seen, 9)) == 9
    stamp = int(seen.timestamp() * 1000)
    assert ULID.from_str(account_id_for("k1", seen).removeprefix("acct_")).milliseconds == stamp
    assert account_id_for("k1", seen) == account_id(stamp, key_entropy("k1"))
