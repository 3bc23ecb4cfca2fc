"""What the coverage API serves, all from memory: the counters of every region, the workforce
figures and targets of every year and the change hub, kept up to date by the follower of the
coverage database (counters_feed.py). Answers keep being served while the database is away,
marked `stale`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

import asyncpg

from services.coverage.change_hub import ChangeHub
from services.coverage.counters_feed import CountersFollower, TargetCache, WorkforceCache
from services.coverage.counters_view import RegionCountersView
from services.coverage.forecast import Pace, forecast_of
from services.coverage.region_coverage import (
    WorkforceFigure,
    coverage_of,
    target_in_force,
    ucj_missing_reason,
    workforce_for,
)
from services.coverage.schemas import RegionCoverage
from services.coverage.snapshots import RegionState, Snapshotter, StateAsOf
from shared.problems import Problem
from shared.regions import Level, Region, RegionDirectory, directory, level_of

MAX_REMEMBERED = 256
STATES_CHUNK = 200  # regions between two yields of a snapshot run (a few ms of work)


class LiveCoverage:
    """The coverage of every region as last read, and who to tell when it changes."""

    def __init__(self, regions: RegionDirectory | None = None) -> None:
        self.regions = regions or directory()
        self.view = RegionCountersView(self.regions)
        self.hub = ChangeHub()
        self.workforce = WorkforceCache()
        self.targets = TargetCache()
        self.feed = CountersFollower(self.view, self.hub, self.workforce, self.targets)
        # The date whose year picks the workforce figure and the target: the service's clock
        # once it runs (create_app), so tests can move it.
        self.today: Callable[[], date] = date.today
        self._level_lists: dict[Level, list[Region]] = {}
        # Each region's net growth of active workers per day, read from the snapshots after
        # each run (snapshots.py): a read only dates it.
        self.paces: dict[str, Pace] = {}
        self._paces_generation = 0
        # Lists as last answered (JSON), by request and the state they were built from: the
        # list of 514 regencies costs tens of ms to build and is asked for far more often
        # than the counters move.
        self._answers: dict[tuple[Any, ...], bytes] = {}

    @asynccontextmanager
    async def snapshotting(self, pool: asyncpg.Pool, now: Callable[[], datetime],
                           every: float) -> AsyncIterator[Snapshotter]:
        """Snapshot the counters into the database every `every` seconds and at each WIB
        day's end while in the block."""
        snapshotter = Snapshotter(self.states, now, lambda: list(self.targets.figures),
                                  self._take_paces, every=every)
        task = asyncio.create_task(snapshotter.run(pool), name="coverage-snapshots")
        try:
            yield snapshotter
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _take_paces(self, paces: dict[str, Pace]) -> None:
        self.paces.update(paces)
        self._paces_generation += 1

    def state_key(self) -> tuple[Any, ...]:
        """What every answer is built from: it moves whenever an answer could change."""
        return (self.view.generation, self.workforce.generation, self.targets.generation,
                self._paces_generation, self.feed.stale, self.today())

    def remembered(self, request: tuple[Any, ...], build: Callable[[], bytes]) -> bytes:
        """The answer to `request` in the current state: built once, then served as is."""
        key = (request, self.state_key())
        answer = self._answers.get(key)
        if answer is None:
            if len(self._answers) >= MAX_REMEMBERED:
                self._answers.clear()  # older states' answers: none is served again
            answer = self._answers[key] = build()
        return answer

    async def states(self, day: date, also: set[str]
                     ) -> AsyncIterator[tuple[str, RegionState]]:
        """Every region with counters or a workforce figure, and `also`: its counters now and
        its workforce in the year of `day` (what a snapshot holds). Some 90,000 regions take
        a couple of seconds: the reads are let in every STATES_CHUNK regions."""
        known: dict[str, WorkforceFigure | None] = {}
        codes = self.view.regions() | set(self.workforce.figures) | also
        for i, code in enumerate(codes):
            if i and not i % STATES_CHUNK:
                await asyncio.sleep(0)
            if code not in self.regions:
                continue
            figure = workforce_for(code, day.year, self.workforce.of, self._child_codes, known)
            yield code, RegionState(self.view.counters(code),
                                    figure.workforce if figure else None)

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
        """From memory only: served while the database is away, marked stale. `target` (a
        fraction, ?target=) overrides each region's target for the year."""
        year, view, stale = self.today().year, self.view, self.feed.stale
        known: dict[str, WorkforceFigure | None] = {}
        out = []
        for r in regions:
            workforce = workforce_for(r.code, year, self.workforce.of, self._child_codes, known)
            ucj_target = target_in_force(self.targets.of(r.code) or {}, year)
            body = coverage_of(r.public(), view.counters(r.code), view.updated_at(r.code),
                               workforce, target=target, ucj_target=ucj_target,
                               missing_reason=ucj_missing_reason(
                                   workforce, bool(self._child_codes(r.code))))
            pace = self.paces.get(r.code)
            if pace is not None and "gap_people" in body:  # a target and a history
                body["forecast"] = _forecast(body["gap_people"], pace, self.today())
            out.append(RegionCoverage.model_validate({**body, "stale": stale}))
        return out

    def coverage_as_of(self, region: Region, day: date, state: StateAsOf,
                       target: float | None = None) -> RegionCoverage:
        """The region at the end of `day`, from its snapshot: the workforce figure and target
        of that year (or `target`, from ?target=), no forecast."""
        workforce = workforce_for(region.code, day.year, self.workforce.of, self._child_codes,
                                  {})
        in_force = target_in_force(self.targets.of(region.code) or {}, day.year)
        body = coverage_of(region.public(), state.counters, state.taken_at, workforce,
                           target=target, ucj_target=in_force,
                           missing_reason=ucj_missing_reason(
                               workforce, bool(self._child_codes(region.code))))
        return RegionCoverage.model_validate({**body, "stale": False, "as_of": day})

    def _child_codes(self, code: str) -> list[str]:
        return [child.code for child in self.regions.children(code)]


def _forecast(gap: int | None, pace: Pace, today: date) -> dict[str, Any]:
    f = forecast_of(gap, pace, today)
    return {"reaches_target_on": f.reaches_target_on, "per_day": f.per_day,
            "basis_days": f.basis_days, "reason": f.reason}
