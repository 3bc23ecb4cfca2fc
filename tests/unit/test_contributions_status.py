"""Membership status with the calendar (DOMAIN.md "Due dates, arrears, status").

The day is moved one by one through a simulated year, payments are made on chosen days (each
checked by check_payment first, as the service would), and the status is read every day.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import date, timedelta

import pytest

from services.contributions.dues import Member, dues_on
from services.contributions.payments import check_months, check_payment, paid_through_after
from shared.membership import (
    Period,
    Status,
    next_status_change,
    next_unpaid_period,
    overdue_months,
    status_on,
)

ONE_DAY = timedelta(days=1)
BASIC = ("JKK", "JKM")


def days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += ONE_DAY


def bpu(registered_on=date(2026, 1, 5)) -> Member:
    return Member("BPU", 1_000_000, BASIC, registered_on)


Payments = Callable[[date, Period | None], int]  # months paid on that day (0: none)


def simulate(
    member: Member, last: date, pays: Payments, paid_through: Period | None = None
) -> dict[date, tuple[Status, Period | None]]:
    """Walk from the registration day to `last`; on each day first pay what `pays` says (the
    payment, for what dues_on asks that day, late charge included, must pass check_payment),
    then read the status."""
    seen: dict[date, tuple[Status, Period | None]] = {}
    for day in days(member.registered_on, last):
        months = pays(day, paid_through)
        if months:
            before = status_on(member, paid_through, day)
            first = next_unpaid_period(member, paid_through)
            amount = dues_on(member, paid_through, months, today=day).amount
            _, errors = check_payment(member, paid_through, before, first, months, amount,
                                      today=day)
            assert errors == [], (day, errors)
            paid_through = paid_through_after(paid_through, first, months)
        seen[day] = (status_on(member, paid_through, day), paid_through)
    return seen


def statuses(seen: dict[date, tuple[Status, Period | None]]) -> dict[date, str]:
    return {day: status.status for day, (status, _) in seen.items()}


def on_the_10th_for_the_month(skip: frozenset[Period] = frozenset()) -> Payments:
    """A BPU worker paying each month's dues on the 10th of that month."""
    def pays(day: date, paid_through: Period | None) -> int:
        return int(day.day == 10 and Period.of(day) not in skip)
    return pays


def runs(by_day: dict[date, str]) -> list[tuple[date, str]]:
    """(first day, status) of each run of equal statuses, in order."""
    out: list[tuple[date, str]] = []
    for day, status in by_day.items():
        if not out or out[-1][1] != status:
            out.append((day, status))
    return out


# --- BPU --------------------------------------------------------------------------------------


def test_bpu_paying_monthly_on_the_10th_stays_active_all_year():
    seen = statuses(simulate(bpu(), date(2026, 12, 31), on_the_10th_for_the_month()))
    assert runs(seen) == [(date(2026, 1, 5), "inactive"), (date(2026, 1, 10), "active")]


def test_bpu_missing_a_month_is_inactive_from_the_16th_and_active_again_when_paid():
    skip_march = on_the_10th_for_the_month(frozenset({Period(2026, 3)}))

    def pays(day: date, paid_through: Period | None) -> int:
        return 1 if day == date(2026, 3, 20) else skip_march(day, paid_through)

    seen = statuses(simulate(bpu(), date(2026, 12, 31), pays))
    assert runs(seen) == [
        (date(2026, 1, 5), "inactive"),
        (date(2026, 1, 10), "active"),
        (date(2026, 3, 16), "inactive"),  # March was due on the 15th
        (date(2026, 3, 20), "active"),
    ]


def test_bpu_missing_four_months_is_terminated_as_lapsed_on_the_16th_of_the_fourth():
    stop_after_february = on_the_10th_for_the_month(
        frozenset(Period(2026, m) for m in range(3, 13))
    )
    seen = simulate(bpu(), date(2026, 12, 31), stop_after_february)
    assert runs(statuses(seen)) == [
        (date(2026, 1, 5), "inactive"),
        (date(2026, 1, 10), "active"),
        (date(2026, 3, 16), "inactive"),  # March overdue
        (date(2026, 6, 16), "terminated"),  # March, April, May, June overdue: more than 3
    ]
    assert seen[date(2026, 6, 16)][0] == Status("terminated", "lapsed", 4)
    assert seen[date(2026, 6, 15)][0] == Status("inactive", "arrears", 3)


def test_bpu_three_months_behind_may_catch_up_on_the_due_day_of_the_fourth():
    stop_after_february = on_the_10th_for_the_month(
        frozenset(Period(2026, m) for m in range(3, 13))
    )

    def pays(day: date, paid_through: Period | None) -> int:
        if day == date(2026, 6, 15):
            return 6  # March to August: the arrears and a prepayment, one BPU count
        return 1 if day.day == 10 and day >= date(2026, 7, 1) else stop_after_february(
            day, paid_through)

    seen = statuses(simulate(bpu(), date(2026, 12, 31), pays))
    assert seen[date(2026, 6, 14)] == "inactive"
    assert all(seen[d] == "active" for d in days(date(2026, 6, 15), date(2026, 12, 31)))


def test_a_lapsed_bpu_membership_takes_no_more_payments():
    m = bpu()
    day = date(2026, 6, 16)
    _, errors = check_payment(m, Period(2026, 2), status_on(m, Period(2026, 2), day),
                              Period(2026, 3), 4, 4 * 16_800, today=day)
    assert [e.field for e in errors] == ["participant_id"]


def test_bpu_prepaying_a_year_stays_active_until_the_16th_of_the_next_years_first_month():
    seen = statuses(simulate(bpu(), date(2027, 3, 1), lambda d, _: 12 * (d == date(2026, 1, 6))))
    assert runs(seen) == [
        (date(2026, 1, 5), "inactive"),
        (date(2026, 1, 6), "active"),
        (date(2027, 1, 16), "inactive"),  # January 2027 was due on 15 January 2027
    ]


@pytest.mark.parametrize("segment", ["BPU", "PMI"])
def test_bpu_and_pmi_registrant_who_never_pays_lapses_from_the_registration_month(segment):
    m = Member(segment, 1_000_000, BASIC, date(2026, 1, 5))
    seen = statuses(simulate(m, date(2026, 12, 31), lambda d, _: 0))
    assert runs(seen) == [(date(2026, 1, 5), "inactive"), (date(2026, 4, 16), "terminated")]


def test_bpu_registering_after_the_15th_owes_that_month_at_once():
    m = bpu(date(2026, 1, 20))
    assert status_on(m, None, m.registered_on) == Status("inactive", "no_payment_yet", 1)


# --- PU and JAKON -----------------------------------------------------------------------------


@pytest.mark.parametrize("segment", ["PU", "JAKON"])
def test_pu_paid_through_october_is_active_until_15_december_and_never_terminated(segment):
    m = Member(segment, 5_000_000, BASIC, date(2026, 1, 5))
    seen = simulate(m, date(2027, 12, 31), lambda d, _: 0, paid_through=Period(2026, 10))
    assert runs(statuses(seen)) == [(date(2026, 1, 5), "active"), (date(2026, 12, 16), "inactive")]
    assert seen[date(2026, 12, 15)][0] == Status("active", None, 0)
    assert seen[date(2026, 12, 16)][0] == Status("inactive", "arrears", 1)
    assert seen[date(2027, 12, 31)][0].overdue_months == 13


@pytest.mark.parametrize("segment", ["PU", "JAKON"])
def test_pu_month_is_paid_in_time_until_the_15th_of_the_next_month(segment):
    m = Member(segment, 5_000_000, BASIC, date(2026, 1, 5))
    pays_for_last_month = lambda day, _: int(day.day == 15 and day >= date(2026, 2, 1))  # noqa: E731
    seen = statuses(simulate(m, date(2026, 12, 31), pays_for_last_month))
    assert runs(seen) == [(date(2026, 1, 5), "inactive"), (date(2026, 2, 15), "active")]


def test_pu_registrant_who_never_pays_stays_inactive_and_is_never_terminated():
    m = Member("PU", 5_000_000, BASIC, date(2026, 1, 5))
    seen = statuses(simulate(m, date(2028, 1, 1), lambda d, _: 0))
    assert set(seen.values()) == {"inactive"}


# --- new registrants --------------------------------------------------------------------------


@pytest.mark.parametrize("segment", ["PU", "BPU", "JAKON", "PMI"])
def test_a_new_registrant_is_inactive_until_the_first_payment(segment):
    m = Member(segment, 2_000_000, BASIC, date(2026, 11, 3))
    assert status_on(m, None, m.registered_on) == Status("inactive", "no_payment_yet", 0)
    assert status_on(m, Period(2026, 11), m.registered_on) == Status("active", None, 0)


def test_owed_months_start_in_the_registration_month_not_before():
    m = bpu(date(2026, 11, 28))
    assert overdue_months(m, None, date(2026, 11, 28)) == 1  # November, due 15 November
    assert overdue_months(m, None, date(2026, 12, 15)) == 1
    assert overdue_months(m, None, date(2026, 12, 16)) == 2


def test_a_history_paid_before_registration_is_an_error():
    with pytest.raises(ValueError):
        status_on(bpu(), Period(2025, 12), date(2026, 1, 10))


# --- next_status_change -----------------------------------------------------------------------


def test_next_change_of_a_paid_up_bpu_member_is_the_16th_of_the_first_unpaid_month():
    assert next_status_change(bpu(), Period(2026, 3), date(2026, 3, 20)) == date(2026, 4, 16)


def test_next_change_of_a_bpu_member_in_arrears_is_the_lapse():
    assert next_status_change(bpu(), Period(2026, 2), date(2026, 3, 20)) == date(2026, 6, 16)


def test_next_change_of_a_pu_member_in_arrears_never_comes():
    m = Member("PU", 5_000_000, BASIC, date(2026, 1, 5))
    assert next_status_change(m, Period(2026, 1), date(2026, 4, 1)) is None


def test_next_change_of_a_terminated_membership_never_comes():
    assert next_status_change(bpu(), None, date(2026, 4, 16)) is None


SIMULATED_HISTORIES = 60
HORIZON = timedelta(days=450)  # longer than any wait for a change (a year prepaid + 2 months)


def random_member(rng: random.Random) -> Member:
    segment = rng.choice(["PU", "BPU", "JAKON", "PMI"])
    registered_on = date(2025, 3, 1) + timedelta(days=rng.randrange(0, 700))
    programs = BASIC + (("JHT",) if rng.random() < 0.5 and segment != "JAKON" else ())
    return Member(segment, rng.choice([1_000_000, 3_500_000, 12_000_000]), programs,
                  registered_on, rng.choice([None, 1, 3, 5]))


def random_payer(rng: random.Random, member: Member) -> Payments:
    """Pays on random days, sometimes several months, sometimes falling behind; never what
    check_payment would refuse (too far ahead, a count of months BPU does not pay, or after
    a lapse)."""
    chance = rng.choice([1 / 8, 1 / 30, 1 / 70])

    def pays(day: date, paid_through: Period | None) -> int:
        if rng.random() >= chance or status_on(member, paid_through, day).status == "terminated":
            return 0
        first = next_unpaid_period(member, paid_through)
        room = first.months_until(Period.of(day) + 12) + 1
        payable = [n for n in (1, 1, 1, 2, 3, 4, 6, 7, 12)
                   if n <= room and check_months(member, n) is None]
        return rng.choice(payable) if payable else 0

    return pays


def first_changes(member: Member, paid_through: Period | None, first: date, last: date
                  ) -> dict[date, date | None]:
    """By brute force: for each day, the first later day whose status differs (None when none
    comes before `last`)."""
    span = list(days(first, last))
    status = [status_on(member, paid_through, d).status for d in span]
    found: dict[date, date | None] = {span[-1]: None}
    for i in range(len(span) - 2, -1, -1):
        found[span[i]] = span[i + 1] if status[i + 1] != status[i] else found[span[i + 1]]
    return found


def test_next_status_change_agrees_with_status_on_day_by_day_over_random_histories():
    rng = random.Random(20261115)
    checked = 0
    kinds: set[tuple[str, str]] = set()
    for _ in range(SIMULATED_HISTORIES):
        member = random_member(rng)
        end = member.registered_on + timedelta(days=365)
        seen = simulate(member, end, random_payer(rng, member))
        brute: dict[Period | None, dict[date, date | None]] = {}
        for day, (_, paid_through) in seen.items():
            if paid_through not in brute:
                brute[paid_through] = first_changes(member, paid_through, day, end + HORIZON)
            predicted = next_status_change(member, paid_through, day)
            actual = brute[paid_through][day]
            if actual is None:  # no change within the horizon: none at all, or after it
                assert predicted is None or predicted > end + HORIZON, (member, day)
            else:
                assert predicted == actual, (member, paid_through, day)
                kinds.add((member.segment, status_on(member, paid_through, actual).status))
            checked += 1
    assert checked > 300 * SIMULATED_HISTORIES
    # the histories reach every kind of change: falling behind, and lapsing (BPU, PMI)
    assert {(s, "inactive") for s in ("PU", "BPU", "JAKON", "PMI")} <= kinds
    assert {("BPU", "terminated"), ("PMI", "terminated")} <= kinds


def test_a_scheduler_waking_only_on_next_change_days_sees_every_change():
    """What the service's scheduler does: recompute a member's status only on payment or when
    the stored next-change day has come. It must never miss (or be late for) a change."""
    rng = random.Random(4217)
    for _ in range(SIMULATED_HISTORIES):
        member = random_member(rng)
        end = member.registered_on + timedelta(days=500)
        pays = random_payer(rng, member)
        paid_through: Period | None = None
        stored = status_on(member, None, member.registered_on)
        wake = next_status_change(member, None, member.registered_on)
        for day in days(member.registered_on, end):
            months = pays(day, paid_through)
            if months:
                paid_through = paid_through_after(
                    paid_through, next_unpaid_period(member, paid_through), months)
            if months or (wake is not None and day >= wake):
                stored = status_on(member, paid_through, day)
                wake = next_status_change(member, paid_through, day)
            assert stored.status == status_on(member, paid_through, day).status, (member, day)
