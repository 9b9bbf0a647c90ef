"""The scenarios of `ledgerflow bench`, apart from the bench itself: the CLI offers them as
choices without importing the bench's HTTP client (the `bench` extra)."""

from enum import StrEnum


class BenchMode(StrEnum):
    """Which shard pairs the transfers use."""

    SINGLE = "single"
    CROSS = "cross"
    MIXED = "mixed"
