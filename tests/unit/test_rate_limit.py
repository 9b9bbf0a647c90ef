"""The token bucket per API key: burst, refill, Retry-After and a bounded table."""

import pytest

from api.rate_limit import RateLimited, RateLimiter
from ledger.errors import ErrorCode, is_transient


class Clock:
    """A hand-driven monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_key_gets_its_burst_then_waits_for_the_refill() -> None:
    """`burst` requests pass at once; the next is refused with the seconds until a token."""
    clock = Clock()
    limiter = RateLimiter(rate_per_s=0.5, burst=3, clock=clock)
    for _ in range(3):
        limiter.admit("key_a")
    with pytest.raises(RateLimited) as refused:
        limiter.admit("key_a")
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert is_transient(refused.value.code)
    assert refused.value.retry_after_s == 2  # one token every 2 s
    clock.now += 2.0
    limiter.admit("key_a")
    with pytest.raises(RateLimited):
        limiter.admit("key_a")


def test_keys_are_limited_apart() -> None:
    """One key out of tokens does not hold back another."""
    limiter = RateLimiter(rate_per_s=1, burst=1, clock=Clock())
    limiter.admit("key_a")
    with pytest.raises(RateLimited):
        limiter.admit("key_a")
    limiter.admit("key_b")


def test_the_refill_stops_at_the_burst() -> None:
    """A key idle for an hour gets `burst` requests, not an hour's worth."""
    clock = Clock()
    limiter = RateLimiter(rate_per_s=10, burst=2, clock=clock)
    limiter.admit("key_a")
    clock.now += 3600
    limiter.admit("key_a")
    limiter.admit("key_a")
    with pytest.raises(RateLimited) as refused:
        limiter.admit("key_a")
    assert refused.value.retry_after_s == 1  # rounded up to whole seconds, never 0


def test_the_table_is_bounded_by_dropping_the_least_recently_used() -> None:
    """Beyond `keys_max` keys the idlest bucket goes; the busy ones keep their state."""
    limiter = RateLimiter(rate_per_s=1, burst=1, keys_max=2, clock=Clock())
    limiter.admit("busy")
    limiter.admit("idle")
    with pytest.raises(RateLimited):
        limiter.admit("busy")  # busy is now the most recently used
    limiter.admit("new")
    assert len(limiter) == 2
    with pytest.raises(RateLimited):
        limiter.admit("busy")  # still empty: its bucket was kept
    limiter.admit("idle")  # dropped, so it starts again with a full bucket


def test_a_rate_of_zero_is_unlimited() -> None:
    """0 turns limiting off and keeps no state."""
    limiter = RateLimiter(rate_per_s=0, burst=1, clock=Clock())
    for _ in range(1000):
        limiter.admit("key_a")
    assert not limiter.enabled
    assert len(limiter) == 0
