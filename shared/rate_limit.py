"""Per-key request budgets: a token bucket per API key, in the memory of one process.

A key may make `per_minute` requests a minute on each service, with bursts of up to ten
seconds' worth. Pure arithmetic on a monotonic clock; the caller turns a refusal into a 429.
"""

from __future__ import annotations

import time
from collections.abc import Callable

BURST_SECONDS = 10.0
_MAX_BUCKETS = 100_000


class RateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)

    def take(self, key: str, per_minute: int) -> float:
        """Spend one request of `key`'s budget: 0.0 when allowed, otherwise the seconds until
        one more request would be."""
        rate = per_minute / 60.0
        capacity = max(1.0, rate * BURST_SECONDS)
        now = self._clock()
        tokens, when = self._buckets.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - when) * rate)
        if tokens >= 1.0:
            self._remember(key, (tokens - 1.0, now))
            return 0.0
        self._remember(key, (tokens, now))
        return (1.0 - tokens) / rate

    def _remember(self, key: str, bucket: tuple[float, float]) -> None:
        if key not in self._buckets and len(self._buckets) >= _MAX_BUCKETS:
            self._buckets.clear()  # forgetting a bucket only ever gives a key more room
        self._buckets[key] = bucket
