"""The scenarios of `ledgerflow bench`, apart from the bench itself: the CLI offers them as
choices without importing the bench's HTTP client (the `bench` extra)."""

from enum import StrEnum


class Scenario(StrEnum):
    """What each request of a scenario sends."""

    SINGLE = "single"
    """One single-shard transfer per request."""
    BATCH = "batch"
    """`POST /v1/transfers/batch` with `--batch-size` single-shard items, not atomic."""
    CROSS = "cross"
    """One cross-shard transfer per request."""
    MIXED = "mixed"
    """One transfer per request, half of them single-shard and half cross-shard."""
    HOT = "hot"
    """One single-shard transfer per request, every one crediting one fee account; run
    beside the same load crediting `--accounts-per-shard` accounts in turn (`hot-spread`)
    for the ratio."""
    ATOMIC = "atomic"
    """An atomic batch per request: a payment, its fee and a tax leg, on up to three shards."""
    HOLD = "hold"
    """A card payment on one shard: a hold (`pending`), then its capture; two requests per
    transfer, counted once the capture answered."""
    HOLD_CROSS = "hold-cross"
    """A card payment across shards: a hold (202 `processing` until its saga opened it,
    followed by reading the transfer), then its capture, counted once the capture answered."""


DEFAULT_SCENARIOS = (Scenario.SINGLE, Scenario.BATCH, Scenario.CROSS, Scenario.MIXED)
"""What `ledgerflow bench` runs without `--scenarios`."""

CROSS_SHARD_SCENARIOS = frozenset(
    {Scenario.CROSS, Scenario.MIXED, Scenario.ATOMIC, Scenario.HOLD_CROSS}
)
"""Scenarios that need at least two shards."""
