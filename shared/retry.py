"""One way to wait before trying again, for every loop that outlives a dependency's outage
(the outbox relay, the event consumers, the key directory, the database at start, the
calendar, the counters follower): a pause that a stop event cuts short, and an exponential
backoff that starts again after a success."""

from __future__ import annotations

import asyncio
import contextlib


async def pause(stop: asyncio.Event | None, seconds: float) -> bool:
    """Wait `seconds`, less if `stop` is set meanwhile; whether it is set."""
    if stop is None:
        await asyncio.sleep(seconds)
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


class Backoff:
    """`first` seconds after a first failure, doubling up to `cap`; `succeeded()` resets.
    `first == cap` is a fixed pause."""

    def __init__(self, first: float, cap: float | None = None):
        self.first = first
        self.cap = first if cap is None else cap
        self.delay = first

    def succeeded(self) -> None:
        self.delay = self.first

    async def wait(self, stop: asyncio.Event | None = None) -> bool:
        """Pause the current delay (less if stopped), then double it; whether stopped."""
        stopped = await pause(stop, self.delay)
        self.delay = min(self.delay * 2, self.cap)
        return stopped
