"""Stable slot hashing: an id always maps to the same slot, in every process and version.

Python's `hash()` is salted per process, so it would route one account to different shards
in different processes; BLAKE2b is stable, fast and in the standard library.
"""

import hashlib

from ledger.limits import SLOT_COUNT


def slot_of(entity_id: str) -> int:
    """The slot, in `[0, SLOT_COUNT)`, an id hashes to."""
    digest = hashlib.blake2b(entity_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % SLOT_COUNT
