"""Garbage collection for processes that hold many long-lived objects and make many short ones.

CPython's collector runs a young collection every 700 allocations and, now and then, a full
one over every live object. The region directory alone is hundreds of thousands of objects
(83,762 villages), and a batch of decoded events tens of thousands more: with the default
thresholds the coverage worker spent three quarters of its decoding time collecting
(bench.fold: 17,000-19,000 events/s before, 34,700 after). So: load what lives for the whole
process, freeze it out of the collector's sight, and let the young generation grow."""

from __future__ import annotations

import gc

from shared.regions import directory

YOUNG_THRESHOLD = 100_000


def tune_gc() -> None:
    """Call once at start, before serving: the directory loaded and frozen, larger thresholds."""
    directory()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 50, 100)
