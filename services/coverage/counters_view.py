"""The coverage API's read side: village counters added up to every region level.

The coverage workers keep absolute counters per (source partition, village) in the coverage
database (services/coverage/counting_store.py); the API's follower (counters_feed.py) reads the
cells that changed into `RegionCountersView`, which keeps running totals for every village,
district, regency, province and the nation, whatever the counters are named (statuses,
segments, claims). The view is pure (no I/O), so the rules are tested without a database.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from services.coverage.counting import CounterCell
from shared.regions import RegionDirectory, directory
from shared.vocabulary import SEGMENTS

log = logging.getLogger("ucj.coverage.counters")

STATUS_COUNTERS = ("registered", "active", "inactive", "terminated")
DIMENSION_MARK = "/"  # in the names of the dimension counters (counting.contribution)

Counters = dict[str, int]


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
        # The dimension counters of issue 11 (names with a slash: per employer, channel, agent,
        # programme), per region, apart: region answers never copy them.
        self._dimensions: dict[str, Counters] = {}
        self._updated: dict[str, datetime] = {}
        self._changed: set[str] = set()
        self.unknown_villages = 0
        self.generation = 0  # moves with every apply: answers built before are out of date

    def apply(self, cells: Iterable[CounterCell], moment: datetime | None = None) -> None:
        """Take the new absolute values of these cells. A cell of a code that is not a village
        is skipped (and counted in `unknown_villages`): it cannot be placed in any region."""
        moment = moment or datetime.now(UTC)
        self.generation += 1
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
            for name, change in delta.items():
                held = self._dimensions if DIMENSION_MARK in name else self._totals
                totals = held.setdefault(region, {})
                total = totals.get(name, 0) + change
                if total:
                    totals[name] = total
                else:
                    del totals[name]
                if not totals:
                    del held[region]
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

    def dimensions(self, code: str) -> Counters:
        """The region's dimension counters (names with a slash), summed over partitions: live,
        not a copy (read, never change)."""
        return self._dimensions.get(code, {})

    @property
    def regions_directory(self) -> RegionDirectory:
        return self._regions

    def updated_at(self, code: str) -> datetime | None:
        return self._updated.get(code)

    def regions(self) -> set[str]:
        """Codes of the regions with any counter not zero."""
        return set(self._totals) | set(self._dimensions)

    def take_changes(self) -> set[str]:
        """Regions whose counters changed since the last call."""
        changed, self._changed = self._changed, set()
        return changed


def segment_counter_names() -> list[str]:
    return [f"{segment}.{name}" for segment in SEGMENTS for name in ("registered", "active")]
