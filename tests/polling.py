"""Waiting for what the system does asynchronously, in the tests of every pass."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def first_answer(check: Callable[[], Any], timeout: float, what: str,
                 state: Callable[[], Any] = lambda: None, every: float = 0.25) -> Any:
    """The first answer of `check` that is not None, asked every `every` seconds for at most
    `timeout` seconds; else an AssertionError naming `what` (and `state`: how far it got)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(every)
    raise AssertionError(f"{what} not reached in {timeout:.0f} s; last: {state()}")
