"""Which regions changed, told to each open event stream (change_stream.py).

Every publish is numbered (`sequence`, per process) and the hub remembers the number of each
region's last change, so a client that reconnects with the id of the last event it got
(Last-Event-ID) is sent only the regions changed since. The map holds at most one entry per
region (~92,000), so an id of this process is never too old; an id of another process (a
restart, another replica) is unknown, and `epoch` tells them apart."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import Counter
from collections.abc import Callable, Iterable


class ChangeSubscription:
    """One stream client's pending changes: a set, so a slow client gets each changed region
    once (coalesced) however often it changed, and publishing never waits for it."""

    def __init__(self, wants: Callable[[str], bool], client: str | None = None):
        self._wants = wants
        self._pending: set[str] = set()
        self._wake = asyncio.Event()
        self.client = client
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
    """Fans region changes out to stream subscribers, numbering them."""

    def __init__(self) -> None:
        self._subscriptions: set[ChangeSubscription] = set()
        self._per_client: Counter[str] = Counter()
        self._changed_at: dict[str, int] = {}
        self.epoch = secrets.token_hex(4)  # this process's hub: ids of another are unknown
        self.sequence = 0  # the number of the last publish
        self.closed = False

    def __len__(self) -> int:
        return len(self._subscriptions)

    def open_for(self, client: str) -> int:
        """How many streams this client address holds open."""
        return self._per_client[client]

    def subscribe(self, wants: Callable[[str], bool],
                  client: str | None = None) -> ChangeSubscription:
        subscription = ChangeSubscription(wants, client)
        if self.closed:
            subscription.close()
        self._subscriptions.add(subscription)
        if client is not None:
            self._per_client[client] += 1
        return subscription

    def unsubscribe(self, subscription: ChangeSubscription) -> None:
        """Idempotent: a stream's response and its events both let go of it."""
        if subscription not in self._subscriptions:
            return
        self._subscriptions.discard(subscription)
        if subscription.client is not None:
            self._per_client[subscription.client] -= 1
            if self._per_client[subscription.client] <= 0:
                del self._per_client[subscription.client]

    def publish(self, codes: set[str]) -> None:
        if not codes:
            return
        self.sequence += 1
        for code in codes:
            self._changed_at[code] = self.sequence
        for subscription in list(self._subscriptions):
            subscription.notify(codes)

    def changed_since(self, sequence: int, codes: Iterable[str]) -> list[str]:
        """Those of `codes` changed after publish number `sequence`, in the order given."""
        return [c for c in codes if self._changed_at.get(c, 0) > sequence]

    def close(self) -> None:
        """End every stream (the service stops): subscribers see `closed` and finish."""
        self.closed = True
        for subscription in list(self._subscriptions):
            subscription.close()
