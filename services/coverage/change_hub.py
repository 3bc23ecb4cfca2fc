"""Which regions changed, told to each open event stream (change_stream.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable


class ChangeSubscription:
    """One stream client's pending changes: a set, so a slow client gets each changed region
    once (coalesced) however often it changed, and publishing never waits for it."""

    def __init__(self, wants: Callable[[str], bool]):
        self._wants = wants
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self.closed = False

    def notify(self, codes: Iterable[str]) -> None:
        relevant = [c for c in codes if self._wants(c)]
        if relevant:
            self._pending.update(relevant)
            self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next_changes(self, wait_seconds: float | None = None) -> set[str]:
        """The regions changed since the last call; empty once closed, or after `wait_seconds`
        (None: wait as long as it takes)."""
        if not self._pending and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_seconds)
        self._wake.clear()
        pending, self._pending = self._pending, set()
        return pending


class ChangeHub:
    """Fans region changes out to stream subscribers."""

    def __init__(self) -> None:
        self._subscriptions: set[ChangeSubscription] = set()
        self.closed = False

    def __len__(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, wants: Callable[[str], bool]) -> ChangeSubscription:
        subscription = ChangeSubscription(wants)
        if self.closed:
            subscription.close()
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: ChangeSubscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, codes: set[str]) -> None:
        for subscription in list(self._subscriptions):
            subscription.notify(codes)

    def close(self) -> None:
        """End every stream (the service stops): subscribers see `closed` and finish."""
        self.closed = True
        for subscription in list(self._subscriptions):
            subscription.close()
