"""A region's history from its snapshots (snapshots.py writes them): the last snapshot of each
day, week or month, and the net growth of active workers from one point to the next (new active
− lost active). Pure: the API reads the snapshots and renders what this returns.

Days are WIB days. A snapshot taken at 00:00 WIB holds the counters at the end of the day
before, so it belongs to that day: a day is (00:00, 24:00]."""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from services.coverage.region_coverage import ucj_ratio
from shared.clock import WIB

Step = Literal["day", "week", "month"]
MAX_RANGE_DAYS = 5 * 366  # five years, leap days included
_JUST_BEFORE = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A region's counters as written at `taken_at`."""

    taken_at: datetime
    registered: int
    active: int
    inactive: int
    terminated: int
    workforce: int | None


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    period: date  # the first day of the day, week (Monday) or month
    period_end: date  # its last day, or `to` when the range ends inside it
    snapshot: Snapshot
    net_growth: int | None  # active − the previous point's active; None for the very first

    @property
    def ucj(self) -> float | None:
        return ucj_ratio(self.snapshot.active, self.snapshot.workforce)


def day_of(taken_at: datetime) -> date:
    """The WIB day whose counters the snapshot holds (00:00 closes the day before)."""
    return (taken_at.astimezone(WIB) - _JUST_BEFORE).date()


def end_of_day(day: date) -> datetime:
    """The moment a WIB day ends: a snapshot at or before it holds that day's counters."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=WIB)


def start_of_day(day: date) -> datetime:
    """Snapshots after this moment belong to `day` or later."""
    return datetime.combine(day, time(), tzinfo=WIB)


def period_start(day: date, step: Step) -> date:
    if step == "week":
        return day - timedelta(days=day.weekday())
    if step == "month":
        return day.replace(day=1)
    return day


def period_end(start: date, step: Step) -> date:
    if step == "week":
        return start + timedelta(days=6)
    if step == "month":
        return start.replace(day=calendar.monthrange(start.year, start.month)[1])
    return start


def range_problem(start: date, end: date, today: date) -> str | None:
    """Why `from`..`to` cannot be answered, or None."""
    if start > end:
        return "`from` is after `to`"
    if (end - start).days > MAX_RANGE_DAYS:
        return "at most five years at once"
    if start > today:
        return "`from` is in the future"
    return None


def history_points(snapshots: Sequence[Snapshot], before: Snapshot | None, start: date,
                   end: date, step: Step) -> list[HistoryPoint]:
    """One point per period from `start` to `end` (inclusive): the last snapshot up to the
    period's end. A region is snapshotted only when it changes, so a period without a snapshot
    carries the last one; periods before the first snapshot are left out. `before` is the last
    snapshot before `start` (the first point's growth is measured from it); `snapshots` are
    those of the range, oldest first."""
    points: list[HistoryPoint] = []
    held, previous_active = before, (before.active if before else None)
    i, period = 0, period_start(start, step)
    while period <= end:
        last_day = min(period_end(period, step), end)
        while i < len(snapshots) and day_of(snapshots[i].taken_at) <= last_day:
            held = snapshots[i]
            i += 1
        if held is not None:
            growth = None if previous_active is None else held.active - previous_active
            points.append(HistoryPoint(period, last_day, held, growth))
            previous_active = held.active
        period = period_end(period, step) + timedelta(days=1)
    return points
