"""What the coverage API serves, all from memory: the counters of every region, the workforce
figures and the change hub, kept up to date by the follower of the coverage database
(counters_feed.py). Answers keep being served while the database is away, marked `stale`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from services.coverage.change_hub import ChangeHub
from services.coverage.counters_feed import CountersFollower, WorkforceCache
from services.coverage.counters_view import RegionCountersView
from services.coverage.region_coverage import coverage_of
from services.coverage.schemas import RegionCoverage
from shared.problems import Problem
from shared.regions import Level, Region, RegionDirectory, directory, level_of


class LiveCoverage:
    """The coverage of every region as last read, and who to tell when it changes."""

    def __init__(self, regions: RegionDirectory | None = None) -> None:
        self.regions = regions or directory()
        self.view = RegionCountersView(self.regions)
        self.hub = ChangeHub()
        self.workforce = WorkforceCache()
        self.feed = CountersFollower(self.view, self.hub, self.workforce)
        self._level_lists: dict[Level, list[Region]] = {}

    @asynccontextmanager
    async def following(self, pool: asyncpg.Pool) -> AsyncIterator[None]:
        """Follow the coverage database while in the block, which is entered once the counters
        have been read (an outage before that is waited out). Leaving it ends every stream."""
        task = asyncio.create_task(self.feed.run(pool), name="counters-follower")
        try:
            await self.feed.ready.wait()
            yield
        finally:
            self.hub.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def at_level(self, level: Level) -> list[Region]:
        if level not in self._level_lists:
            self._level_lists[level] = self.regions.at_level(level)
        return self._level_lists[level]

    def known_region(self, code: str) -> Region:
        """The region of a code, or 404 saying what a region code looks like."""
        region = self.regions.get(code)
        if region is not None:
            return region
        shown = code if len(code) <= 40 else code[:40] + "…"
        if level_of(code) is None:
            raise Problem(404, "Not found", f"{shown!r} is not a region code: use ID, a province "
                          "(12), regency (12.75), district (12.75.01) or village (12.75.01.1001)")
        raise Problem(404, "Not found", f"no region has the code {shown!r}")

    def coverage(self, regions: Sequence[Region], target: float | None = None
                 ) -> list[RegionCoverage]:
        """From memory only: served while the database is away, marked stale."""
        figures, view, stale = self.workforce.figures, self.view, self.feed.stale
        return [RegionCoverage.model_validate(
                    {**coverage_of(r.public(), view.counters(r.code), view.updated_at(r.code),
                                   figures.get(r.code), target=target), "stale": stale})
                for r in regions]
