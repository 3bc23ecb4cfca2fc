"""Claims rules, one test per rule (DOMAIN.md "Claims and eligibility"), at their edges.

Payments are made on their due dates (shared.membership.due_date) unless a test says
otherwise, so a member is active until the first unpaid month falls overdue.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from services.claims import benefit_tables as tables
from services.claims.rules import (
    JHT_CAUSES,
    Claim,
    Judgement,
    Member,
    Payment,
    active_on,
    add_months,
    judge,
    paid_months_on,
    paid_through_on,
    problem_with,
)
from shared.membership import Period, due_date

ONE_DAY = timedelta(days=1)
EVERY_PROGRAM = frozenset({"JKK", "JKM", "JHT", "JP", "JKP"})
BASIC = frozenset({"JKK", "JKM"})


def on_time(segment: str, first: Period, count: int, jht: int = 0, jp: int = 0) -> tuple[
        Payment, ...]:
    """`count` monthly payments from `first`, each made on its due date."""
    return tuple(
        Payment(first + i, first + i, due_date(segment, first + i), jht_amount=jht, jp_amount=jp)
        for i in range(count)
    )


def pu(registered_on: date = date(2020, 1, 6), *, income: int = 6_000_000,
       born_in: Period | None = Period(1970, 5), payments: tuple[Payment, ...] = (),
       programs: frozenset[str] = EVERY_PROGRAM, terminated_on: date | None = None) -> Member:
    return Member("PU", programs, registered_on, income, born_in, payments, terminated_on)


def bpu(registered_on: date = date(2026, 1, 5), *, payments: tuple[Payment, ...] = (),
        programs: frozenset[str] = BASIC, income: int = 1_000_000) -> Member:
    return Member("BPU", programs, registered_on, income, Period(1990, 8), payments)


# --- payments on a day -------------------------------------------------------------------------
def test_paid_through_counts_payments_made_by_the_day_contiguously_from_registration() -> None:
    jan, feb, apr = Period(2026, 1), Period(2026, 2), Period(2026, 4)
    member = bpu(payments=(
        Payment(jan, jan, date(2026, 1, 5)),
        Payment(feb, feb, date(2026, 2, 10)),
        Payment(apr, apr, date(2026, 2, 11)),  # a gap at March: not counted as paid through
    ))
    assert paid_through_on(member, date(2026, 1, 4)) is None
    assert paid_through_on(member, date(2026, 1, 5)) == jan
    assert paid_through_on(member, date(2026, 2, 9)) == jan
    assert paid_through_on(member, date(2026, 3, 1)) == feb


def test_paid_months_counts_distinct_months_paid_by_the_day() -> None:
    jan = Period(2026, 1)
    member = bpu(payments=(
        Payment(jan, jan + 2, date(2026, 1, 5)),
        Payment(jan + 2, jan + 3, date(2026, 1, 6)),  # March twice counts once
        Payment(jan + 4, jan + 4, date(2026, 5, 1)),
    ))
    assert paid_months_on(member, date(2026, 1, 4)) == 0
    assert paid_months_on(member, date(2026, 1, 5)) == 3
    assert paid_months_on(member, date(2026, 4, 30)) == 4
    assert paid_months_on(member, date(2026, 5, 1)) == 5


def test_active_on_needs_registration_no_termination_and_no_overdue_month() -> None:
    member = pu(date(2026, 1, 6), payments=on_time("PU", Period(2026, 1), 2))
    assert not active_on(member, date(2026, 1, 5))  # not yet registered
    assert not active_on(member, date(2026, 1, 6))  # nothing paid yet
    assert active_on(member, date(2026, 2, 15))  # January paid on its due date
    ended = pu(date(2026, 1, 6), payments=member.payments, terminated_on=date(2026, 3, 1))
    assert active_on(ended, date(2026, 2, 28))
    assert not active_on(ended, date(2026, 3, 1))


# --- problem_with: bad input -------------------------------------------------------------------
FILED = date(2026, 3, 1)


@pytest.mark.parametrize("member, claim, field, words", [
    (pu(), Claim("JKN", FILED, FILED), "program", "unknown program 'JKN'"),
    (bpu(), Claim("JHT", FILED, FILED, "age"), "program", "not enrolled in JHT"),
    (bpu(), Claim("JP", FILED, FILED), "program", "not enrolled in JP"),
    (pu(), Claim("JKK", FILED + ONE_DAY, FILED), "incident_date", "in the future"),
    (pu(date(2026, 2, 2)), Claim("JKK", date(2026, 2, 1), FILED), "incident_date",
     "before the member registered on 2026-02-02"),
    (pu(), Claim("JHT", FILED, FILED), "cause", "needs a cause"),
    (pu(), Claim("JHT", FILED, FILED, "resigned"), "cause", "not 'resigned'"),
    (pu(), Claim("JKK", FILED, FILED, "age"), "cause", "a JKK claim takes no cause"),
    (pu(), Claim("JKM", FILED, FILED, "death"), "cause", "a JKM claim takes no cause"),
    (pu(), Claim("JKP", FILED, FILED, "stopped_work"), "cause", "a JKP claim takes no cause"),
    (pu(), Claim("JP", FILED, FILED, "stopped_work"), "cause", "a JP cause is one of"),
], ids=["unknown program", "not enrolled JHT", "not enrolled JP", "future incident",
        "before registration", "JHT without cause", "JHT bad cause", "JKK with cause",
        "JKM with cause", "JKP with cause", "JP bad cause"])
def test_problem_with_names_the_field_of_each_bad_input(
        member: Member, claim: Claim, field: str, words: str) -> None:
    problem = problem_with(member, claim)
    assert problem is not None
    assert problem[0] == field
    assert words in problem[1]
    with pytest.raises(ValueError, match=field):
        judge(member, claim)


@pytest.mark.parametrize("claim", [
    Claim("JKK", FILED, FILED), Claim("JP", FILED, FILED), Claim("JP", FILED, FILED, "death"),
    *(Claim("JHT", date(2020, 1, 6), FILED, cause) for cause in JHT_CAUSES),
])
def test_a_well_formed_claim_has_no_problem(claim: Claim) -> None:
    assert problem_with(pu(), claim) is None


# --- JKK: active on the incident date ----------------------------------------------------------
def test_jkk_active_on_incident_date_the_day_before_on_and_after_the_due_date() -> None:
    member = bpu(payments=on_time("BPU", Period(2026, 1), 1))  # January only
    due = due_date("BPU", Period(2026, 2))
    assert due == date(2026, 2, 15)
    before, on, after = (judge(member, Claim("JKK", day, FILED))
                         for day in (due - ONE_DAY, due, due + ONE_DAY))
    assert before.eligible and on.eligible
    assert not after.eligible
    assert after.rule == "jkk.active_on_incident_date"
    assert after.reason is not None and "2026-02 was due on 2026-02-15" in after.reason
    assert after.benefit is None and after.terminates is None


def test_jkk_benefit_is_care_and_full_wage_for_12_months_then_half() -> None:
    member = pu(date(2026, 1, 6), income=5_000_001, payments=on_time("PU", Period(2026, 1), 1))
    verdict = judge(member, Claim("JKK", date(2026, 2, 20), FILED))
    assert verdict == Judgement(True, "jkk.active_on_incident_date", None, {
        "care": "as medically needed",
        "income_replacement": [
            {"months": 12, "percent": 100, "monthly": 5_000_001},
            {"after_months": 12, "percent": 50, "monthly": 2_500_001},  # half up
        ],
    }, None)


# --- JKM: active on the date of death ----------------------------------------------------------
def test_jkm_active_on_date_of_death_pays_42m_in_parts_and_ends_the_membership() -> None:
    member = bpu(payments=on_time("BPU", Period(2026, 1), 1))
    verdict = judge(member, Claim("JKM", date(2026, 2, 15), FILED))
    assert verdict.eligible and verdict.rule == "jkm.active_on_date_of_death"
    assert verdict.terminates == "death"
    assert verdict.benefit == {
        "amount": 42_000_000, "lump_sum": 20_000_000, "periodic": 12_000_000,
        "funeral": 10_000_000, "paid_months": 1, "education_benefit_eligible": False,
    }
    late = judge(member, Claim("JKM", date(2026, 2, 16), FILED))
    assert not late.eligible and late.terminates is None and late.benefit is None


def test_jkm_a_payment_made_after_the_death_does_not_count() -> None:
    paid = on_time("PU", Period(2025, 1), 10)  # Jan..Oct 2025; November due 2025-12-15
    death = date(2025, 12, 20)
    november = Period(2025, 11)
    after_death = pu(date(2025, 1, 6), payments=(*paid, Payment(november, november,
                                                                death + 2 * ONE_DAY)))
    verdict = judge(after_death, Claim("JKM", death, FILED))
    assert not verdict.eligible
    assert verdict.rule == "jkm.active_on_date_of_death"
    assert verdict.reason is not None
    assert "2025-11 was due on 2025-12-15" in verdict.reason
    assert "after that day do not count" in verdict.reason
    late_but_before = pu(date(2025, 1, 6), payments=(*paid, Payment(november, november,
                                                                    death - 2 * ONE_DAY)))
    assert judge(late_but_before, Claim("JKM", death, FILED)).eligible


def test_jkm_education_benefit_needs_36_months_paid_by_the_date_of_death() -> None:
    death = date(2025, 12, 20)  # December 2025 paid on 2025-12-15 when paid
    for months, eligible in ((35, False), (36, True)):
        first = Period(2025, 12) - (months - 1)
        member = bpu(first.first_day, payments=on_time("BPU", first, months))
        benefit = judge(member, Claim("JKM", death, FILED)).benefit
        assert benefit is not None
        assert benefit["paid_months"] == months
        assert benefit["education_benefit_eligible"] is eligible
        assert benefit.get("education_benefit_max") == (174_000_000 if eligible else None)


# --- JHT ---------------------------------------------------------------------------------------
def test_jht_age_reached_at_56_by_month_55y11m_is_not() -> None:
    member = pu(born_in=Period(1970, 5))
    young = judge(member, Claim("JHT", date(2026, 4, 30), FILED + timedelta(days=90), "age"))
    assert not young.eligible and young.rule == "jht.age_reached"
    assert young.reason is not None and "turns 56 in 2026-05" in young.reason
    of_age = judge(member, Claim("JHT", date(2026, 5, 1), FILED + timedelta(days=90), "age"))
    assert of_age.eligible and of_age.rule == "jht.age_reached"
    assert of_age.terminates is None


def test_jht_age_needs_a_known_birth_month() -> None:
    verdict = judge(pu(born_in=None), Claim("JHT", FILED, FILED, "age"))
    assert not verdict.eligible and verdict.rule == "jht.birth_month_known"
    assert verdict.reason is not None and "birth month is not known" in verdict.reason


def test_jht_waiting_month_passed_30_days_is_not_a_month() -> None:
    member = pu()
    stopped = date(2026, 3, 1)
    thirty_days = judge(member, Claim("JHT", stopped, stopped + timedelta(days=30),
                                      "stopped_work"))
    assert not thirty_days.eligible
    assert thirty_days.rule == "jht.waiting_month_passed"
    assert thirty_days.reason is not None and "from 2026-04-01" in thirty_days.reason
    a_month = judge(member, Claim("JHT", stopped, date(2026, 4, 1), "stopped_work"))
    assert a_month.eligible and a_month.terminates == "jht_withdrawn"


def test_jht_waiting_month_ends_on_the_last_day_of_a_shorter_month() -> None:
    stopped = date(2026, 1, 31)
    assert add_months(stopped, 1) == date(2026, 2, 28)
    assert not judge(pu(), Claim("JHT", stopped, date(2026, 2, 27), "stopped_work")).eligible
    assert judge(pu(), Claim("JHT", stopped, date(2026, 2, 28), "stopped_work")).eligible


@pytest.mark.parametrize("cause", ["disability", "death", "emigration"])
def test_jht_paid_on_disability_death_or_emigration_without_more(cause: str) -> None:
    verdict = judge(pu(born_in=None), Claim("JHT", FILED, FILED, cause))
    assert verdict.eligible and verdict.rule == f"jht.{cause}"
    assert verdict.terminates is None


def test_jht_balance_develops_yearly_at_the_declared_rates_by_hand() -> None:
    m = Period(2016, 1)
    member = pu(date(2016, 1, 4), payments=(
        Payment(m, m, date(2016, 5, 10), jht_amount=1_000_000),
        Payment(m + 1, m + 1, date(2017, 5, 10), jht_amount=1_000_000),
        Payment(m + 2, m + 2, date(2018, 2, 1), jht_amount=500_000),  # the filing year
        Payment(m + 3, m + 3, date(2018, 3, 2), jht_amount=700_000),  # after filing
    ))
    verdict = judge(member, Claim("JHT", date(2018, 1, 31), date(2018, 3, 1), "stopped_work"))
    # 2016: 1,000,000 x 1.0719 = 1,071,900
    # 2017: (1,071,900 + 1,000,000) x 1.0783 = 2,234,129.77 -> 2,234,130
    # 2018, the filing year, earns nothing: + 500,000
    assert verdict.benefit == {
        "amount": 2_734_130, "contributions": 2_500_000, "development": 234_130,
        "rates": [{"year": 2016, "percent": "7.19", "figure_of": 2016},
                  {"year": 2017, "percent": "7.83", "figure_of": 2017}],
        "cause": "stopped_work",
    }


def test_jht_years_outside_the_rate_table_earn_the_nearest_declared_rate() -> None:
    early = pu(date(2015, 6, 1), payments=(
        Payment(Period(2015, 6), Period(2015, 6), date(2015, 6, 1), jht_amount=1_000_000),))
    benefit = judge(early, Claim("JHT", date(2016, 1, 10), date(2016, 1, 10), "death")).benefit
    assert benefit is not None
    assert benefit["amount"] == 1_071_900
    assert benefit["rates"] == [{"year": 2015, "percent": "7.19", "figure_of": 2016}]
    late = pu(date(2021, 1, 5), payments=(
        Payment(Period(2021, 1), Period(2021, 1), date(2021, 1, 5), jht_amount=1_000_000),))
    benefit = judge(late, Claim("JHT", date(2022, 2, 1), date(2022, 2, 1), "death")).benefit
    assert benefit is not None
    assert benefit["amount"] == 1_056_300
    assert benefit["rates"] == [{"year": 2021, "percent": "5.63", "figure_of": 2020}]


# --- JP ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("year, age", [
    (2018, 56), (2019, 57), (2021, 57), (2022, 58), (2024, 58), (2025, 59), (2042, 64),
    (2043, 65), (2050, 65),
])
def test_jp_pension_age_by_the_incident_year(year: int, age: int) -> None:
    for day in (date(year, 1, 1), date(year, 12, 31)):
        assert tables.in_force(tables.JP_PENSION_AGES, day).age_years == age


def test_jp_pension_age_reached_by_month() -> None:
    member = pu(born_in=Period(1966, 6))  # 59, the 2025 pension age, from June 2025
    young = judge(member, Claim("JP", date(2025, 5, 31), date(2025, 7, 1)))
    assert not young.eligible and young.rule == "jp.pension_age_reached"
    assert young.reason is not None and "pension age 59" in young.reason
    of_age = judge(member, Claim("JP", date(2025, 6, 1), date(2025, 7, 1), "age"))
    assert of_age.eligible and of_age.benefit is not None
    assert of_age.benefit["pension_age"] == 59
    assert not judge(pu(born_in=None), Claim("JP", FILED, FILED)).eligible


@pytest.mark.parametrize("cause", ["death", "disability"])
def test_jp_death_or_disability_has_no_age_rule(cause: str) -> None:
    verdict = judge(pu(born_in=Period(2000, 1)), Claim("JP", FILED, FILED, cause))
    assert verdict.eligible and verdict.rule == f"jp.{cause}"


def _jp_member(months: int) -> Member:
    first = Period(2010, 1)
    return pu(date(2010, 1, 5), payments=(
        Payment(first, first + (months - 1), date(2025, 1, 2), jp_amount=months * 100_000),))


def test_jp_monthly_pension_needs_180_paid_months_else_a_lump_sum() -> None:
    claim = Claim("JP", date(2025, 3, 1), date(2025, 6, 2), "death")
    assert judge(_jp_member(180), claim).benefit == {
        "kind": "monthly_pension", "paid_months": 180, "monthly": 900_000,  # 1% x 15 x 6m
    }
    assert judge(_jp_member(179), claim).benefit == {
        "kind": "lump_sum", "paid_months": 179, "amount": 17_900_000,
        "contributions": 17_900_000, "development": 0, "rates": [],  # paid in the filing year
    }


# --- JKP ---------------------------------------------------------------------------------------
def test_jkp_filed_within_claim_window_exactly_6_months_vs_a_day_later() -> None:
    for layoff, last_day in ((date(2025, 9, 15), date(2026, 3, 15)),
                             (date(2025, 8, 31), date(2026, 2, 28))):  # month-end clamped
        on_time_ = judge(pu(), Claim("JKP", layoff, last_day))
        assert on_time_.eligible and on_time_.rule == "jkp.filed_within_claim_window"
        late = judge(pu(), Claim("JKP", layoff, last_day + ONE_DAY))
        assert not late.eligible and late.rule == "jkp.filed_within_claim_window"
        assert late.reason is not None and f"last day to file was {last_day}" in late.reason


@pytest.mark.parametrize("wage, used, monthly", [
    (4_000_000, 4_000_000, 2_400_000),
    (5_000_000, 5_000_000, 3_000_000),
    (8_000_000, 5_000_000, 3_000_000),
    (3_333_333, 3_333_333, 2_000_000),  # 1,999,999.8 rounded half up
])
def test_jkp_pays_60_percent_of_the_wage_capped_at_5m_for_6_months(
        wage: int, used: int, monthly: int) -> None:
    verdict = judge(pu(income=wage), Claim("JKP", date(2026, 1, 10), FILED))
    assert verdict.benefit == {"percent": 60, "wage_used": used, "monthly": monthly,
                               "months": 6, "amount": monthly * 6}
    assert verdict.terminates is None


def test_jkp_wage_earners_only() -> None:
    member = Member("BPU", frozenset({"JKK", "JKM", "JKP"}), date(2025, 1, 6), 4_000_000, None)
    verdict = judge(member, Claim("JKP", date(2026, 1, 10), FILED))
    assert not verdict.eligible and verdict.rule == "jkp.wage_earners_only"
    assert verdict.reason is not None and "PU" in verdict.reason


# --- the tables --------------------------------------------------------------------------------
def test_every_benefit_table_row_has_a_source_and_the_first_row_stands_in_before_it() -> None:
    for table in tables.ALL_TABLES:
        assert table, "an empty table"
        assert all(getattr(row, "source", "").strip() for row in table)
        first = min(table, key=lambda row: row.effective_from)
        assert tables.in_force(table, date(2000, 1, 1)) is first
    assert all(row.percent > 0 for row in tables.JHT_DEVELOPMENT_RATES)
    assert tables.jht_rate_for(2017).percent == Decimal("7.83")
