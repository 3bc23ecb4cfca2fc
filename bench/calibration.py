"""How fast this machine runs Python right now, so figures from different moments compare.

The 2-core machine the benches run on is shared: with the stack idle, the same pure-Python
loop has taken from 1.05 to 1.37 s within a minute. Each bench prints this figure next to its
own, measured just before the run; a run with a slow calibration ran on a slow machine.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Coroutine
from typing import Any

import orjson

LOOP = 10_000_000


def calibration_s() -> float:
    """Seconds for a fixed pure-Python loop (one core): lower is a faster machine."""
    started = time.perf_counter()
    total = 0
    for i in range(LOOP):
        total += i * i
    return round(time.perf_counter() - started, 3)


def run_and_print(main: Coroutine[Any, Any, Any]) -> None:
    """Run a bench's coroutine (on uvloop when installed) and print its summary as the last
    line, JSON."""
    try:
        import uvloop
    except ImportError:
        summary = asyncio.run(main)
    else:
        summary = uvloop.run(main)
    print(orjson.dumps(summary).decode())
    sys.stdout.flush()
