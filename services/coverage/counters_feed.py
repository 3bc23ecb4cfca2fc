"""The coverage API's follower of the coverage database: counter cells into the view, workforce
figures and targets (every year of each) into caches, changed regions to the stream
subscribers.

It polls (every `interval`, 0.1 s by default) the partitions' versions, a dozen rows, and reads
only the cells changed since the versions it holds (counting_store.counter_changes). Everything
the API answers comes from memory, so reads keep being served while the database is away; they
are marked stale once the follower has not reached the database for `stale_after` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Generic, TypeVar

import asyncpg

from services.coverage.change_hub import ChangeHub
from services.coverage.counters_view import RegionCountersView
from services.coverage.counting import Organisation
from services.coverage.counting_store import counter_changes
from services.coverage.region_coverage import UcjTarget, WorkforceFigure
from services.coverage.yearly_figures import TARGETS, WORKFORCE
from shared.problems import dependency_away, describe_away

log = logging.getLogger("ucj.coverage.feed")


F = TypeVar("F", WorkforceFigure, UcjTarget)


class YearlyCache(Generic[F]):
    """Every region's figures by year, in memory (a few thousand rows at most)."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[int, F]] = {}
        self.since: datetime | None = None
        self.generation = 0  # moves with every put

    def put(self, code: str, figure: F) -> bool:
        """Hold the figure; True when it is new or differs from the one held for its year."""
        held = self.figures.setdefault(code, {})
        if held.get(figure.year) == figure:
            return False
        held[figure.year] = figure
        self.generation += 1
        return True

    def of(self, code: str) -> dict[int, F] | None:
        return self.figures.get(code)


class WorkforceCache(YearlyCache[WorkforceFigure]):
    """Every region's workforce figure of every year."""


class TargetCache(YearlyCache[UcjTarget]):
    """Every region's UCJ target of every year."""


class OrganisationDirectory:
    """Every employer and funded programme as last folded (services/coverage/counting.py
    Organisation), by id."""

    def __init__(self) -> None:
        self.by_id: dict[str, Organisation] = {}
        self.generation = 0

    def put(self, organisation: Organisation) -> None:
        kept = self.by_id.get(organisation.id)
        if kept is None or kept.sequence < organisation.sequence:
            self.by_id[organisation.id] = organisation
            self.generation += 1

    def of_kind(self, kind: str) -> list[Organisation]:
        return [o for o in self.by_id.values() if o.kind == kind]


class CountersFollower:
    def __init__(self, view: RegionCountersView, hub: ChangeHub, workforce: WorkforceCache,
                 targets: TargetCache | None = None, *, interval: float = 0.1,
                 stale_after: float = 5.0, query_timeout: float = 5.0,
                 figures_interval: float = 1.0):
        self.view = view
        self.hub = hub
        self.workforce = workforce
        self.targets = targets if targets is not None else TargetCache()
        self.organisations = OrganisationDirectory()
        # Workforce figures and targets change rarely, and a write re-reads the last minute's
        # rows (yearly_figures.py): after an import of thousands, read them once a second, not at
        # every poll. This replica's own writes go straight into its caches.
        self.figures_interval = figures_interval
        self._figures_read_at: float | None = None
        self.interval = interval
        self.stale_after = stale_after
        self.query_timeout = query_timeout
        self.ready = asyncio.Event()
        self.versions: dict[int, int] = {}
        self.last_read: float | None = None  # monotonic time of the last successful read
        self.failing_since: float | None = None

    @property
    def stale(self) -> bool:
        """The database has not been read for `stale_after` seconds: what we serve may be old."""
        return self.last_read is None or time.monotonic() - self.last_read > self.stale_after

    async def run(self, pool: asyncpg.Pool) -> None:
        """Follow the database until cancelled; an outage is logged once, and waited out."""
        while True:
            try:
                async with asyncio.timeout(self.query_timeout):
                    await self.read_once(pool)
                if self.failing_since is not None:
                    log.info("coverage database answers again after %.1fs",
                             time.monotonic() - self.failing_since)
                    self.failing_since = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.failing_since is None:  # once per outage, not every interval
                    if dependency_away(exc):
                        log.warning("coverage database away (%s): serving the counters held",
                                    describe_away(exc))
                    else:
                        log.exception("counters follower failed")
                    self.failing_since = time.monotonic()
            await asyncio.sleep(self.interval)

    def figures_moved(self, codes: set[str]) -> set[str]:
        """The regions whose UCJ a workforce figure or target of `codes` moves: each of them
        and its ancestors (whose figure may be the sum of their children's)."""
        regions = self.view.regions_directory
        return {up for code in codes for up in regions.lineage(code)}

    async def reached(self, versions: dict[int, int], within: float = 2.0) -> bool:
        """True once what the view holds is exactly these partition versions; False when it
        went past them or `within` seconds passed."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.versions == versions:
                return True
            if any(self.versions.get(p, 0) > v for p, v in versions.items()):
                return False
            await asyncio.sleep(self.interval / 2)
        return False

    async def read_once(self, pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            versions, cells, organisations = await counter_changes(conn, self.versions)
            figures_due = (self._figures_read_at is None
                           or time.monotonic() - self._figures_read_at >= self.figures_interval)
            if figures_due:
                figures, since = await WORKFORCE.changed_since(conn, self.workforce.since)
                targets, targets_since = await TARGETS.changed_since(conn, self.targets.since)
        if cells:
            self.view.apply(cells, datetime.now(UTC))
        for organisation in organisations:
            self.organisations.put(organisation)
        self.versions = versions
        moved: set[str] = set()  # regions whose workforce or target another replica changed
        if figures_due:
            for code, figure in figures:
                if self.workforce.put(code, figure):
                    moved.add(code)
            self.workforce.since = since or self.workforce.since
            for code, target in targets:
                if self.targets.put(code, target):
                    moved.add(code)
            self.targets.since = targets_since or self.targets.since
            self._figures_read_at = time.monotonic()
        changed = self.view.take_changes() | self.figures_moved(moved)
        if changed:
            self.hub.publish(changed)
        self.last_read = time.monotonic()
        self.ready.set()
