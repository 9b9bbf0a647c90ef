"""The shard map: which instance serves which slots. Versioned, so slots can move.

An id hashes to a slot (`slot_of`); the map assigns contiguous slot ranges to shard
indexes. Moving a range to another instance bumps the version without re-hashing any id.

Slot hashing is stable: an id always maps to the same slot, in every process and version.
Python's `hash()` is salted per process, so it would route one account to different shards
in different processes; BLAKE2b is stable, fast and in the standard library.
"""

import hashlib
from dataclasses import dataclass

from ledger.limits import SHARD_COUNT_MAX, SLOT_COUNT


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
