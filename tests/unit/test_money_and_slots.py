"""Money validation, slot hashing and the shard map."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import ErrorCode, LedgerError
from ledger.ids import is_transfer_id, transfer_slot
from ledger.limits import BIGINT_MAX, SLOT_COUNT
from ledger.money import check_amount, currency_exponent, format_minor
from ledger.shardmap import ShardMap, SlotRange, even_shard_map, slot_of
from shards.ids import new_transfer_id


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
