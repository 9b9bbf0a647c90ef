"""Rate limits per API key: a token bucket per key, in this process.

Each key's bucket holds up to `burst` tokens and refills at `rate_per_s`; a request takes
one token or is refused 429 `rate_limited` with `Retry-After` naming when the next token is
due. So one tenant's flood is refused at the edge before it reaches a shard, and the other
tenants keep their share of the process. The buckets live in memory: with N API processes
behind a load balancer a key may send up to N times the limit, which is what a limit per
process means (a shared limit would cost a round trip to a shared store on every request).
"""

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ledger import limits
from ledger.errors import ErrorCode, LedgerError


class RateLimited(LedgerError):
    """429 `rate_limited`; `retry_after_s` is when the key's next token is due."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            ErrorCode.RATE_LIMITED,
            f"too many requests for this API key; retry after {retry_after_s} s",
            "Authorization",
        )
        self.retry_after_s = retry_after_s


@dataclass(slots=True)
class _Bucket:
    tokens: float
    refilled_at: float


class RateLimiter:
    """Token buckets per API key, at most `keys_max` of them.

    Beyond `keys_max` keys the least recently used bucket is dropped: a key idle that long
    has refilled anyway, so forgetting it changes nothing but the memory it held.
    """

    def __init__(
        self,
        *,
        rate_per_s: float,
        burst: int,
        keys_max: int = limits.RATE_LIMIT_KEYS_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert 0 <= rate_per_s <= limits.RATE_LIMIT_PER_S_MAX, rate_per_s
        assert 1 <= burst <= limits.RATE_LIMIT_BURST_MAX, burst
        assert keys_max >= 1, keys_max
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._keys_max = keys_max
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        """Whether requests are limited at all (a rate of 0 turns limiting off)."""
        return self._rate_per_s > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def admit(self, key: str) -> None:
        """Take one token from `key`'s bucket.

        Raises:
            RateLimited: the bucket is empty; `retry_after_s` says when it is not.
        """
        if not self.enabled:
            return
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=float(self._burst), refilled_at=now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._keys_max:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            elapsed_s = max(0.0, now - bucket.refilled_at)
            bucket.tokens = min(float(self._burst), bucket.tokens + elapsed_s * self._rate_per_s)
            bucket.refilled_at = now
        if bucket.tokens < 1:
            wait_s = (1 - bucket.tokens) / self._rate_per_s
            raise RateLimited(min(limits.RATE_LIMIT_RETRY_AFTER_S_MAX, max(1, math.ceil(wait_s))))
        bucket.tokens -= 1
        assert 0 <= bucket.tokens <= self._burst
