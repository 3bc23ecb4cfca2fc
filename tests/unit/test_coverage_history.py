"""History points, net growth, snapshot moments and the forecast: pure arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.coverage.forecast import Pace, forecast_of, pace_between
from services.coverage.history import (
    Snapshot,
    day_of,
    end_of_day,
    history_points,
    period_end,
    period_start,
    range_problem,
)
from services.coverage.snapshots import RegionState, next_moment
from shared.clock import WIB

TODAY = date(2026, 12, 2)


def snap(day: date, active: int, hour: int = 12, workforce: int | None = 1000) -> Snapshot:
    return Snapshot(datetime(day.year, day.month, day.day, hour, tzinfo=WIB), registered=active,
                    active=active, inactive=0, terminated=0, workforce=workforce)


def test_a_snapshot_at_midnight_wib_holds_the_day_before():
    assert day_of(datetime(2026, 12, 2, 0, 0, tzinfo=WIB)) == date(2026, 12, 1)
    assert day_of(datetime(2026, 12, 2, 0, 0, 1, tzinfo=WIB)) == date(2026, 12, 2)
    assert day_of(datetime(2026, 12, 1, 17, 0, tzinfo=UTC)) == date(2026, 12, 1)  # 00:00 WIB
    assert end_of_day(date(2026, 12, 1)) == datetime(2026, 12, 2, tzinfo=WIB)


def test_weeks_start_on_monday_and_months_on_the_first():
    assert period_start(date(2026, 12, 2), "week") == date(2026, 11, 30)
    assert period_end(date(2026, 11, 30), "week") == date(2026, 12, 6)
    assert period_start(date(2024, 2, 15), "month") == date(2024, 2, 1)
    assert period_end(date(2024, 2, 1), "month") == date(2024, 2, 29)


def test_each_day_shows_its_last_snapshot_and_the_growth_since_the_day_before():
    snaps = [snap(date(2026, 11, 1), 10, 8), snap(date(2026, 11, 1), 12, 20),
             snap(date(2026, 11, 3), 9)]
    points = history_points(snaps, None, date(2026, 11, 1), date(2026, 11, 4), "day")
    assert [(p.period, p.snapshot.active, p.net_growth) for p in points] == [
        (date(2026, 11, 1), 12, None), (date(2026, 11, 2), 12, 0),
        (date(2026, 11, 3), 9, -3), (date(2026, 11, 4), 9, 0)]
    assert points[0].ucj == 0.012


def test_growth_of_the_first_point_is_measured_from_the_snapshot_before_the_range():
    before = snap(date(2026, 10, 20), 100)
    points = history_points([snap(date(2026, 11, 10), 130)], before, date(2026, 11, 1),
                            date(2026, 12, 31), "month")
    assert [(p.period, p.period_end, p.snapshot.active, p.net_growth) for p in points] == [
        (date(2026, 11, 1), date(2026, 11, 30), 130, 30),
        (date(2026, 12, 1), date(2026, 12, 31), 130, 0)]


def test_periods_before_the_first_snapshot_are_left_out():
    points = history_points([snap(date(2026, 11, 18), 5)], None, date(2026, 11, 1),
                            date(2026, 11, 30), "week")
    assert [p.period for p in points] == [date(2026, 11, 16), date(2026, 11, 23),
                                          date(2026, 11, 30)]
    assert points[-1].period_end == date(2026, 11, 30)  # the range ends inside the week


@pytest.mark.parametrize(("start", "end", "why"), [
    (date(2026, 11, 2), date(2026, 11, 1), "after"),
    (date(2020, 1, 1), date(2026, 1, 2), "five years"),
    (date(2026, 12, 3), date(2026, 12, 4), "future"),
])
def test_ranges_that_cannot_be_answered_say_why(start, end, why):
    assert why in (range_problem(start, end, TODAY) or "")


def test_five_years_is_a_range_that_can_be_answered():
    assert range_problem(date(2021, 12, 2), TODAY, TODAY) is None


def test_snapshot_moments_are_the_same_for_every_process_and_include_the_days_end():
    now = datetime(2026, 12, 2, 10, 17, 5, tzinfo=WIB)
    assert next_moment(now, 3600) == datetime(2026, 12, 2, 11, 0, tzinfo=WIB)
    assert next_moment(now, 86400 * 2) == datetime(2026, 12, 3, 0, 0, tzinfo=WIB)
    assert next_moment(now, 0.5) == now + timedelta(seconds=0.5)


def test_a_region_state_compares_by_its_counters_and_workforce():
    assert RegionState({"active": 1, "registered": 2}, 5).key() == \
        RegionState({"registered": 2, "active": 1}, 5).key()
    assert RegionState({"active": 1}, 5).key() != RegionState({"active": 1}, 6).key()


def test_pace_is_the_net_growth_of_active_workers_per_day():
    assert pace_between(1000, TODAY - timedelta(days=90), 1450, TODAY) == Pace(5.0, 90)
    assert pace_between(1000, TODAY - timedelta(days=10), 980, TODAY) == Pace(-2.0, 10)
    assert pace_between(1000, TODAY, 1200, TODAY) == Pace(0.0, 0)


def test_the_target_is_reached_on_the_day_the_gap_closes_at_this_pace():
    forecast = forecast_of(5446, Pace(per_day=10.0, basis_days=90), TODAY)
    assert forecast.reaches_target_on == TODAY + timedelta(days=545)  # ceil(544.6)
    assert forecast.reason == "at_this_pace"


def test_no_date_when_active_workers_do_not_grow():
    for per_day in (0.0, -3.5):
        forecast = forecast_of(100, Pace(per_day=per_day, basis_days=90), TODAY)
        assert (forecast.reaches_target_on, forecast.reason) == (None, "not_at_this_pace")


def test_a_region_at_its_target_has_reached_it_today():
    forecast = forecast_of(0, Pace(per_day=-1.0, basis_days=90), TODAY)
    assert (forecast.reaches_target_on, forecast.reason) == (TODAY, "reached")


def test_no_date_without_history_or_workforce():
    assert forecast_of(10, Pace(0.0, 0), TODAY).reason == "not_enough_history"
    assert forecast_of(None, Pace(3.0, 90), TODAY).reason == "no_workforce"


def test_a_pace_too_slow_for_the_calendar_is_not_at_this_pace():
    assert forecast_of(10**9, Pace(1e-6, 90), TODAY).reason == "not_at_this_pace"


async def test_a_run_sends_only_the_regions_that_changed_and_those_fallen_to_zero(monkeypatch):
    from services.coverage import snapshots

    sent: list[dict[str, RegionState]] = []

    async def write(pool, taken_at, states):
        sent.append(dict(states))
        return len(states)

    monkeypatch.setattr(snapshots, "write_snapshot", write)
    held = {"12.75": RegionState({"active": 3}, None), "12.76": RegionState({"active": 1}, 9)}

    async def states(day, also):
        for code in set(held) | also:
            yield code, held.get(code, RegionState({"active": 0}, None))

    snapshotter = snapshots.Snapshotter(states, lambda: datetime.now(WIB), list,
                                        lambda paces: None)
    moment = datetime(2026, 12, 2, 10, tzinfo=WIB)
    assert await snapshotter.take(None, moment) == 2
    assert await snapshotter.take(None, moment + timedelta(hours=1)) == 0  # nothing changed
    held["12.75"] = RegionState({"active": 4}, None)
    del held["12.76"]
    await snapshotter.take(None, moment + timedelta(hours=2))
    assert sent[-1] == {"12.75": RegionState({"active": 4}, None),
                        "12.76": RegionState({"active": 0}, None)}
