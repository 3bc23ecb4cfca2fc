"""When a region reaches its UCJ target at the pace of its last 90 days: pure arithmetic over
two snapshots of its active workers (history.py takes them; live_coverage.py caches the pace
per region and dates it at each read, so a read costs a division)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

BASIS_DAYS = 90

# Why `reaches_target_on` is what it is.
ForecastReason = Literal["reached", "at_this_pace", "not_at_this_pace", "not_enough_history",
                         "no_workforce"]


@dataclass(frozen=True, slots=True)
class Pace:
    """Net growth of active workers per day over `basis_days` (new active − lost active)."""

    per_day: float
    basis_days: int


@dataclass(frozen=True, slots=True)
class Forecast:
    reaches_target_on: date | None
    per_day: float
    basis_days: int
    reason: ForecastReason


def pace_between(earlier_active: int, earlier_day: date, latest_active: int,
                 today: date) -> Pace:
    """The change in active workers from the snapshot of `earlier_day` to now, per day. The
    latest snapshot holds until the counters change, so the pace is measured up to today."""
    days = max(0, (today - earlier_day).days)
    if days == 0:
        return Pace(per_day=0.0, basis_days=0)
    return Pace(per_day=round((latest_active - earlier_active) / days, 6), basis_days=days)


def forecast_of(gap_people: int | None, pace: Pace, today: date) -> Forecast:
    """The day the gap closes at this pace: today + ceil(gap / per_day); none when the region
    does not grow (`not_at_this_pace`), has no history yet or no workforce figure."""
    def answer(on: date | None, reason: ForecastReason) -> Forecast:
        return Forecast(on, pace.per_day, pace.basis_days, reason)

    if gap_people is None:
        return answer(None, "no_workforce")
    if gap_people == 0:
        return answer(today, "reached")
    if pace.basis_days == 0:
        return answer(None, "not_enough_history")
    if pace.per_day <= 0:
        return answer(None, "not_at_this_pace")
    days = math.ceil(gap_people / pace.per_day)
    if days > (date.max - today).days:
        return answer(None, "not_at_this_pace")
    return answer(today + timedelta(days=days), "at_this_pace")
