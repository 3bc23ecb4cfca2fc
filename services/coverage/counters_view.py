"""The coverage API's read side: village counters added up to every region level.

The coverage workers keep absolute counters per (source partition, village) in the coverage
database (services/coverage/counting_store.py); the API's follower (counters_feed.py) reads the
cells that changed into `RegionCountersView`, which keeps running totals for every village,
district, regency, province and the nation. The view is pure (no I/O), so the rules are tested
without a database. `coverage_of` renders one region the way the contract says; `ChangeHub`
tells stream subscribers which regions changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.coverage.counting import CounterCell
from shared.regions import RegionDirectory, directory
from shared.vocabulary import SEGMENTS

log = logging.getLogger("ucj.coverage.counters")

STATUS_COUNTERS = ("registered", "active", "inactive", "terminated")

Counters = dict[str, int]
Villages = dict[str, Counters]


class RegionCountersView:
    """The absolute counters of every (source partition, village) cell, and every region's
    totals: a cell's new value moves the totals of its village, district, regency, province and
    the nation by its difference from the value it replaces. Values are absolute, so applying
    the same cells again leaves the view as it was. A region's `updated_at` is when a change
    to its counters was last seen."""

    def __init__(self, regions: RegionDirectory | None = None) -> None:
        self._regions = regions or directory()
        self._cells: dict[tuple[int, str], Counters] = {}
        self._totals: dict[str, Counters] = {}
        self._updated: dict[str, datetime] = {}
        self._changed: set[str] = set()
        self.unknown_villages = 0

    def apply(self, cells: Iterable[CounterCell], moment: datetime | None = None) -> None:
        """Take the new absolute values of these cells. A cell of a code that is not a village
        is skipped (and counted in `unknown_villages`): it cannot be placed in any region."""
        moment = moment or datetime.now(UTC)
        for cell in cells:
            if not self._regions.is_village(cell.village):
                self.unknown_villages += 1
                log.error("counters of %r skipped: not a village code", cell.village[:40])
                continue
            counters = self._cells.setdefault((cell.partition, cell.village), {})
            delta = cell.value - counters.get(cell.name, 0)
            if not delta:
                continue
            if cell.value:
                counters[cell.name] = cell.value
            else:
                counters.pop(cell.name, None)
            self._move(cell.village, {cell.name: delta}, moment)

    def _move(self, village: str, delta: Counters, moment: datetime | None) -> None:
        for region in self._regions.lineage(village):
            totals = self._totals.setdefault(region, {})
            for name, change in delta.items():
                total = totals.get(name, 0) + change
                if total:
                    totals[name] = total
                else:
                    del totals[name]
            if not totals:
                del self._totals[region]
            if moment is not None and (region not in self._updated
                                       or self._updated[region] < moment):
                self._updated[region] = moment
            self._changed.add(region)

    def counters(self, code: str) -> Counters:
        """The region's counters summed over partitions; the standard ones are always present."""
        total: Counters = dict.fromkeys(STATUS_COUNTERS, 0)
        for name in segment_counter_names():
            total[name] = 0
        total.update(self._totals.get(code, {}))
        return total

    def updated_at(self, code: str) -> datetime | None:
        return self._updated.get(code)

    def regions(self) -> set[str]:
        """Codes of the regions with any participant counted."""
        return set(self._totals)

    def take_changes(self) -> set[str]:
        """Regions whose counters changed since the last call."""
        changed, self._changed = self._changed, set()
        return changed


def segment_counter_names() -> list[str]:
    return [f"{segment}.{name}" for segment in SEGMENTS for name in ("registered", "active")]


# --- one region's coverage, as the contract shapes it ----------------------------------------


@dataclass(frozen=True, slots=True)
class WorkforceFigure:
    """The working population of a region (BPS Sakernas, once a year), with year and source."""

    workforce: int
    year: int
    source: str


def ucj_ratio(active: int, workforce: int | None) -> float | None:
    """UCJ = active participants / working population; None without a workforce figure."""
    if not workforce:
        return None
    return round(active / workforce, 6)


def gap_to_target(active: int, workforce: int | None, target: float) -> int | None:
    """How many more active workers the region needs to reach `target` (a fraction, 0.5115).

    Decimal, not float: 0.3 * 10 must need 3 workers, not 4.
    """
    if not workforce:
        return None
    needed = math.ceil(Decimal(str(target)) * workforce)
    return max(0, needed - active)


def coverage_of(
    region: Mapping[str, str],
    counters: Mapping[str, int],
    updated_at: datetime | None,
    workforce: WorkforceFigure | None,
    *,
    target: float | None = None,
) -> dict[str, Any]:
    active = counters.get("active", 0)
    figure = workforce.workforce if workforce else None
    body: dict[str, Any] = {
        "region": dict(region),
        "workforce": figure,
        "workforce_year": workforce.year if workforce else None,
        "workforce_source": workforce.source if workforce else None,
        "registered": counters.get("registered", 0),
        "active": active,
        "inactive": counters.get("inactive", 0),
        "terminated": counters.get("terminated", 0),
        "by_segment": {
            segment: {"registered": counters.get(f"{segment}.registered", 0),
                      "active": counters.get(f"{segment}.active", 0)}
            for segment in SEGMENTS
        },
        "ucj": ucj_ratio(active, figure),
        "updated_at": updated_at.isoformat() if updated_at else None,
    }
    if target is not None:
        body["target"] = target
        body["gap_to_target"] = gap_to_target(active, figure, target)
    return body


# --- change notifications for stream subscribers ---------------------------------------------


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

    async def next_changes(self, wait_seconds: float) -> set[str]:
        """The regions changed since the last call (empty after `wait_seconds` or once closed)."""
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
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, wants: Callable[[str], bool]) -> ChangeSubscription:
        self._loop = asyncio.get_running_loop()
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
        """End every stream (shutdown): subscribers see `closed` and finish their responses."""
        self.closed = True
        for subscription in list(self._subscriptions):
            subscription.close()

    def close_threadsafe(self) -> None:
        """close(), from a signal handler or another thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.close)
        else:
            self.closed = True
