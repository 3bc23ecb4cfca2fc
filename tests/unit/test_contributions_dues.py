"""Contribution dues, one rule per test (DOMAIN.md "Monthly dues", CONTRACT.md "Contributions").

Amounts are worked out by hand from the percentages in DOMAIN.md, not from the rate table, so
a wrong figure in rates.py fails here.
"""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from services.contributions import rates
from services.contributions.dues import (
    Member,
    dues_for,
    dues_on,
    late_charge,
    monthly_dues,
    months_late,
)
from services.contributions.payments import (
    check_months,
    check_payer,
    check_payment,
    paid_through_after,
)
from services.contributions.rates import RATE_TABLE, NoRatesError, rates_on
from shared.field_errors import FieldError
from shared.membership import Period, Status, due_date

NOV = Period(2026, 11)
REGISTERED = date(2026, 11, 3)


def member(segment="BPU", income=1_000_000, programs=("JKK", "JKM"), risk_class=None,
           registered_on=REGISTERED) -> Member:
    return Member(segment, income, tuple(programs), registered_on, risk_class)


def lines(m: Member, period: Period = NOV, **kw) -> dict[str, int]:
    return {line.program: line.amount for line in monthly_dues(m, period, **kw)}


def total(m: Member, period: Period = NOV) -> int:
    return sum(lines(m, period).values())


# --- BPU --------------------------------------------------------------------------------------


def test_bpu_on_one_million_pays_jkk_10000_and_jkm_6800_a_month():
    assert lines(member()) == {"JKK": 10_000, "JKM": 6_800}
    assert total(member()) == 16_800


def test_bpu_with_jht_pays_2_percent_more_36800_a_month():
    m = member(programs=("JKK", "JKM", "JHT"))
    assert lines(m) == {"JKK": 10_000, "JKM": 6_800, "JHT": 20_000}
    assert total(m) == 36_800


def test_bpu_jkk_is_1_percent_of_declared_income():
    assert lines(member(income=2_500_000))["JKK"] == 25_000


def test_bpu_jkm_is_flat_whatever_the_income():
    assert lines(member(income=15_000_000))["JKM"] == 6_800


def test_bpu_income_below_the_floor_is_charged_on_the_floor():
    m = member(income=600_000, programs=("JKK", "JKM", "JHT"))
    assert lines(m) == {"JKK": 10_000, "JKM": 6_800, "JHT": 20_000}


def test_bpu_income_above_the_cap_is_charged_on_the_cap_jkk_at_most_207000():
    assert lines(member(income=50_000_000))["JKK"] == 207_000
    assert lines(member(income=20_700_000))["JKK"] == 207_000


def test_bpu_pays_nothing_for_programmes_its_segment_has_no_rate_for():
    assert set(lines(member(programs=("JKK", "JKM", "JP", "JKP")))) == {"JKK", "JKM"}


# --- PU ---------------------------------------------------------------------------------------
WAGE = 5_000_000


@pytest.mark.parametrize(
    ("risk_class", "jkk"),
    [(1, 12_000), (2, 27_000), (3, 44_500), (4, 63_500), (5, 87_000)],
    # 0.24%, 0.54%, 0.89%, 1.27%, 1.74% of Rp 5,000,000
)
def test_pu_jkk_by_the_employers_risk_class(risk_class, jkk):
    assert lines(member("PU", WAGE, risk_class=risk_class))["JKK"] == jkk


@pytest.mark.parametrize(
    ("risk_class", "jkk"),
    [(1, 5_000), (2, 20_000), (3, 37_500), (4, 56_500), (5, 80_000)],
    # 0.10%, 0.40%, 0.75%, 1.13%, 1.60% of Rp 5,000,000
)
def test_pu_jkp_member_pays_jkk_0_14_points_lower(risk_class, jkk):
    m = member("PU", WAGE, programs=("JKK", "JKM", "JKP"), risk_class=risk_class)
    assert lines(m)["JKK"] == jkk


def test_pu_without_a_risk_class_is_charged_at_class_1():
    assert lines(member("PU", WAGE))["JKK"] == 12_000


def test_pu_jkm_is_0_30_percent_of_wage():
    assert lines(member("PU", WAGE))["JKM"] == 15_000


def test_pu_jht_is_5_7_percent_when_enrolled_and_absent_otherwise():
    assert lines(member("PU", WAGE, programs=("JKK", "JKM", "JHT")))["JHT"] == 285_000
    assert "JHT" not in lines(member("PU", WAGE))


def test_pu_jp_is_3_percent_below_the_ceiling():
    assert lines(member("PU", WAGE, programs=("JKK", "JKM", "JP")))["JP"] == 150_000


def test_pu_jp_is_capped_at_the_ceiling_of_10547400_from_march_2025():
    m = member("PU", 25_000_000, programs=("JKK", "JKM", "JP"))
    assert lines(m)["JP"] == 316_422  # 3% of 10,547,400
    assert lines(m)["JKM"] == 75_000  # the other programmes are not capped


def test_pu_jp_was_capped_at_the_ceiling_of_10042300_until_february_2025():
    m = member("PU", 25_000_000, programs=("JKK", "JKM", "JP"))
    assert lines(m, Period(2025, 2))["JP"] == 301_269  # 3% of 10,042,300
    assert lines(m, Period(2025, 3))["JP"] == 316_422


def test_jkp_is_not_in_the_payers_dues():
    m = member("PU", WAGE, programs=("JKK", "JKM", "JHT", "JP", "JKP"))
    assert list(lines(m)) == ["JKK", "JKM", "JHT", "JP"]
    assert total(m) == 5_000 + 15_000 + 285_000 + 150_000


def test_each_line_is_rounded_to_whole_rupiah_half_up():
    assert lines(member("PU", 1_012_708))["JKK"] == 2_430  # 0.24% = 2,430.4992
    assert lines(member("PU", 1_000_005))["JKM"] == 3_000  # 0.30% = 3,000.015
    assert lines(member("PU", 1_001_875))["JKK"] == 2_405  # 2,404.5: half up, not to even
    assert lines(member("PU", 1_000_625))["JKK"] == 2_402  # 2,401.5


# --- JAKON and PMI ----------------------------------------------------------------------------


def test_jakon_pays_jkk_and_jkm_at_pu_rates_risk_class_5_unless_stated():
    assert lines(member("JAKON", 4_000_000)) == {"JKK": 69_600, "JKM": 12_000}
    assert lines(member("JAKON", 4_000_000, risk_class=2))["JKK"] == 21_600


def test_jakon_pays_only_jkk_and_jkm():
    m = member("JAKON", 4_000_000, programs=("JKK", "JKM", "JHT", "JP", "JKP"))
    assert lines(m) == {"JKK": 69_600, "JKM": 12_000}  # no JKP reduction either


def test_pmi_pays_13500_a_month_whatever_the_income():
    assert total(member("PMI", 8_000_000)) == 13_500
    assert total(member("PMI", 2_000_000, programs=("JKK", "JKM", "JHT"))) == 13_500


# --- several months, dated rates ----------------------------------------------------------------


def test_several_months_cost_the_sum_of_the_months_per_programme():
    dues = dues_for(member(programs=("JKK", "JKM", "JHT")), NOV, 3)
    assert dues.first_period == NOV and dues.months == 3 and dues.last_period == Period(2027, 1)
    assert [(x.program, x.amount) for x in dues.lines] == [
        ("JKK", 30_000), ("JKM", 20_400), ("JHT", 60_000)
    ]
    assert dues.amount == 3 * 36_800


def test_twelve_months_of_bpu_basic_cost_twelve_times_16800():
    assert dues_for(member(), NOV, 12).amount == 201_600


def test_dues_answer_in_the_contract_shape():
    assert dues_for(member(), NOV, 1).as_dict() == {
        "first_period": "2026-11", "months": 1, "amount": 16_800, "late_charge": 0,
        "lines": [{"program": "JKK", "amount": 10_000}, {"program": "JKM", "amount": 6_800}],
    }


def test_dues_for_zero_months_is_refused():
    with pytest.raises(ValueError):
        dues_for(member(), NOV, 0)


CEILING_2027 = dataclasses.replace(
    rates.RATES_2024_03, effective_from=date(2027, 3, 1), jp_wage_ceiling=11_000_000
)
TABLE_WITH_2027 = (*RATE_TABLE, CEILING_2027)
HIGH_WAGE_JP = member("PU", 25_000_000, programs=("JKK", "JKM", "JP"))


def test_rates_are_those_in_force_on_the_first_day_of_the_month():
    assert lines(HIGH_WAGE_JP, Period(2027, 2), table=TABLE_WITH_2027)["JP"] == 316_422
    assert lines(HIGH_WAGE_JP, Period(2027, 3), table=TABLE_WITH_2027)["JP"] == 330_000


def test_months_spanning_a_rate_change_are_each_charged_at_their_own_rates():
    dues = dues_for(HIGH_WAGE_JP, Period(2027, 1), 4, table=TABLE_WITH_2027)
    assert dict((x.program, x.amount) for x in dues.lines)["JP"] == 2 * 316_422 + 2 * 330_000


def test_the_module_rate_table_is_read_when_dues_are_computed(monkeypatch):
    monkeypatch.setattr(rates, "RATE_TABLE", TABLE_WITH_2027)
    assert lines(HIGH_WAGE_JP, Period(2027, 3))["JP"] == 330_000


def test_rates_on_takes_the_newest_entry_in_force_in_any_order():
    shuffled = (CEILING_2027, *RATE_TABLE)
    assert rates_on(date(2027, 2, 28), shuffled) == rates.RATES_2025_03
    assert rates_on(date(2027, 3, 1), shuffled) is CEILING_2027


def test_rates_on_a_day_before_the_table_starts_is_an_error():
    with pytest.raises(NoRatesError, match="2024-03-01"):
        rates_on(date(2024, 2, 29))


def test_jp_ceiling_is_re_indexed_each_march():
    assert rates_on(date(2024, 3, 1)).jp_wage_ceiling == 10_042_300
    assert rates_on(date(2025, 2, 28)).jp_wage_ceiling == 10_042_300
    assert rates_on(date(2025, 3, 1)).jp_wage_ceiling == 10_547_400
    assert rates_on(date(2026, 11, 1)).jp_wage_ceiling == 10_547_400


def test_rate_entries_have_distinct_effective_days():
    days = [r.effective_from for r in RATE_TABLE]
    assert len(days) == len(set(days))


def test_a_rate_table_with_a_reduction_above_a_jkk_rate_is_refused():
    with pytest.raises(ValueError):
        dataclasses.replace(rates.RATES_2024_03, jkp_jkk_reduction=rates.percent("0.30"))


def test_a_member_with_an_unknown_risk_class_is_refused():
    with pytest.raises(ValueError):
        member("PU", WAGE, risk_class=6)


# --- periods ----------------------------------------------------------------------------------


def test_period_parses_and_prints_yyyy_mm():
    assert Period.parse("2026-11") == Period(2026, 11)
    assert str(Period(2026, 1)) == "2026-01"


@pytest.mark.parametrize(
    "text",
    ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "2026-11-01", " 2026-11", "2026-11\n",
     "", "２０２６-11", "0000-05", "abcd-ef"],
)
def test_period_parsing_refuses_anything_but_yyyy_mm_with_a_month_01_to_12(text):
    with pytest.raises(ValueError, match="(YYYY-MM|01 to 12|0001)"):
        Period.parse(text)


def test_period_names_the_bad_month():
    with pytest.raises(ValueError, match="month 13"):
        Period.parse("2026-13")


def test_periods_add_months_across_years():
    assert NOV + 2 == Period(2027, 1)
    assert NOV.next() == Period(2026, 12)
    assert Period(2027, 1) - 1 == Period(2026, 12)
    assert NOV + 0 == NOV


def test_months_until_counts_forward_and_backward():
    assert NOV.months_until(Period(2027, 2)) == 3
    assert Period(2027, 2).months_until(NOV) == -3


def test_periods_are_ordered_by_time():
    assert Period(2026, 12) < Period(2027, 1) < Period(2027, 2)


def test_period_of_a_day_and_its_first_day():
    assert Period.of(date(2026, 11, 30)) == NOV
    assert NOV.first_day == date(2026, 11, 1)


# --- due dates --------------------------------------------------------------------------------


@pytest.mark.parametrize("segment", ["BPU", "PMI"])
def test_bpu_and_pmi_month_is_due_on_the_15th_of_the_month(segment):
    assert due_date(segment, NOV) == date(2026, 11, 15)


@pytest.mark.parametrize("segment", ["PU", "JAKON"])
def test_pu_and_jakon_month_is_due_on_the_15th_of_the_next_month(segment):
    assert due_date(segment, NOV) == date(2026, 12, 15)
    assert due_date(segment, Period(2026, 12)) == date(2027, 1, 15)


# --- checking a payment -----------------------------------------------------------------------
ACTIVE = Status("active")
NEW = Status("inactive", "no_payment_yet")
TODAY = date(2026, 11, 10)
PU_BASIC_MONTH = 12_000 + 15_000  # JKK class 1 and JKM on Rp 5,000,000


def check(m=None, paid_through=None, status=NEW, first=NOV, months=1, amount=16_800,
          today=TODAY):
    return check_payment(m or member(), paid_through, status, first, months, amount,
                         today=today)


def fields(errors: list[FieldError]) -> list[str]:
    return [e.field for e in errors]


def test_the_first_payment_starts_in_the_registration_month():
    dues, errors = check()
    assert errors == [] and dues is not None and dues.amount == 16_800


def test_a_payment_must_start_at_the_first_unpaid_month():
    _, errors = check(paid_through=Period(2026, 12), status=ACTIVE, first=Period(2027, 2))
    assert fields(errors) == ["first_period"]
    assert "must be 2027-01" in errors[0].message


def test_a_first_payment_for_a_later_month_names_the_registration_month():
    _, errors = check(first=Period(2026, 12))
    assert fields(errors) == ["first_period"] and "must be 2026-11" in errors[0].message


def test_an_amount_other_than_the_dues_is_refused_naming_the_expected_amount():
    dues, errors = check(months=3, amount=16_800 * 3 - 1)
    assert fields(errors) == ["amount"]
    assert "Rp 50,400" in errors[0].message
    assert dues is not None and dues.amount == 50_400


@pytest.mark.parametrize("months", [0, 13, -1])
def test_a_payment_covers_1_to_12_months(months):
    dues, errors = check(months=months)
    assert dues is None and fields(errors) == ["months"]


def test_a_payment_of_12_months_is_accepted():
    assert check(months=12, amount=12 * 16_800)[1] == []


def test_prepaying_beyond_12_months_ahead_of_today_is_refused():
    paid = Period(2027, 10)  # 11 months ahead of November 2026
    wage_earner = member("PU", WAGE)
    _, ok = check(wage_earner, paid_through=paid, status=ACTIVE, first=paid + 1, months=1,
                  amount=PU_BASIC_MONTH)
    _, too_far = check(wage_earner, paid_through=paid, status=ACTIVE, first=paid + 1, months=2,
                       amount=2 * PU_BASIC_MONTH)
    assert ok == []
    assert fields(too_far) == ["months"] and "through 2027-11" in too_far[0].message


# BPU "may prepay 1, 3, 6 or 12 months" (DOMAIN.md): a BPU payment covers one of those counts.
@pytest.mark.parametrize("months", [1, 3, 6, 12])
def test_bpu_pays_1_3_6_or_12_months_at_a_time(months):
    assert check(months=months, amount=months * 16_800)[1] == []


@pytest.mark.parametrize("months", [2, 4, 5, 7, 8, 9, 10, 11])
def test_bpu_paying_another_count_is_refused_naming_the_counts_allowed(months):
    _, errors = check(months=months, amount=months * 16_800)
    assert fields(errors) == ["months"]
    assert errors[0].message == f"BPU contributions are paid 1, 3, 6 or 12 months at a time, " \
                                f"not {months}"


def test_bpu_arrears_can_always_be_paid_a_month_at_a_time():
    today = date(2027, 1, 20)  # November, December and January overdue
    paid_through = None
    for first in (NOV, Period(2026, 12), Period(2027, 1)):
        _, errors = check(paid_through=paid_through, first=first, today=today)
        assert errors == []
        paid_through = first


@pytest.mark.parametrize("segment", ["PU", "JAKON", "PMI"])
@pytest.mark.parametrize("months", [2, 5, 7])
def test_other_segments_pay_any_count_of_months(segment, months):
    assert check_months(pu(segment), months) is None


def test_a_terminated_membership_takes_no_payment():
    dues, errors = check(status=Status("terminated", "death"))
    assert dues is None and fields(errors) == ["participant_id"]
    assert "death" in errors[0].message


def test_a_lapsed_history_takes_no_payment_even_before_the_stored_status_catches_up():
    # registered in November, nothing paid: 4 months overdue on 16 February
    dues, errors = check(today=date(2027, 2, 16), months=4, amount=4 * 16_800)
    assert dues is None and fields(errors) == ["participant_id"]
    assert "lapsed" in errors[0].message


def test_arrears_of_three_months_may_still_be_paid():
    # November, December and January overdue on 15 February; February is due that day
    dues, errors = check(today=date(2027, 2, 15), months=3, amount=3 * 16_800)
    assert errors == []


def test_a_month_without_rates_is_an_error_not_a_crash():
    old = member(registered_on=date(2023, 5, 2))
    dues, errors = check(old, first=Period(2023, 5), today=date(2023, 5, 3))
    assert dues is None and fields(errors) == ["first_period"]
    assert "2024-03-01" in errors[0].message


def test_paid_through_moves_to_the_last_month_paid():
    assert paid_through_after(None, NOV, 1) == NOV
    assert paid_through_after(NOV, Period(2026, 12), 3) == Period(2027, 2)


def test_paid_through_refuses_a_gap():
    with pytest.raises(ValueError):
        paid_through_after(NOV, Period(2027, 1), 1)


# --- who pays ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["SG", "SD", "SA", "SL"])
def test_government_payments_carry_a_government_funding_code(code):
    assert check_payer("government", code) == []


@pytest.mark.parametrize("code", ["SC", "SB"])
def test_csr_payments_carry_a_corporate_or_bank_funding_code(code):
    assert check_payer("csr", code) == []


def test_government_without_a_funding_code_is_refused():
    assert fields(check_payer("government", None)) == ["funding_code"]


def test_government_with_a_corporate_code_is_refused():
    [error] = check_payer("government", "SC")
    assert error.field == "funding_code" and "SG SD SA SL" in error.message


def test_csr_with_a_government_code_is_refused():
    assert fields(check_payer("csr", "SG")) == ["funding_code"]


@pytest.mark.parametrize("payer", ["self", "employer"])
def test_self_and_employer_payments_carry_no_funding_code(payer):
    assert check_payer(payer, None) == []
    assert fields(check_payer(payer, "SG")) == ["funding_code"]


def test_an_unknown_payer_is_refused():
    assert fields(check_payer("pemda", None)) == ["payer"]


# --- the PU late charge -----------------------------------------------------------------------
# DOMAIN.md: "PU arrears cost 2% a month, paid with the next dues." A PU worker on Rp 5,000,000
# in JKK (class 1), JKM, JHT and JP owes 12,000 + 15,000 + 285,000 + 150,000 = Rp 462,000 a
# month, so each month late costs 2% of that: Rp 9,240.
OCT = Period(2026, 10)  # due 15 November 2026 for PU
PU_MONTH = 462_000
PU_LATE_MONTH = 9_240


def pu(segment="PU") -> Member:
    return member(segment, WAGE, programs=("JKK", "JKM", "JHT", "JP"),
                  registered_on=date(2026, 10, 5))


@pytest.mark.parametrize(
    ("day", "late"),
    [(date(2026, 12, 15), 0), (date(2026, 12, 16), 1), (date(2027, 1, 15), 1),
     (date(2027, 1, 16), 2), (date(2027, 2, 15), 2), (date(2027, 2, 16), 3)],
)
def test_a_month_due_15_december_is_one_month_late_more_on_each_16th(day, late):
    assert months_late(date(2026, 12, 15), day) == late


def test_pu_paying_october_on_15_november_pays_no_late_charge():
    assert late_charge(pu(), OCT, 1, today=date(2026, 11, 15)) == 0


def test_pu_paying_october_on_16_november_pays_2_percent_of_its_dues():
    assert late_charge(pu(), OCT, 1, today=date(2026, 11, 16)) == PU_LATE_MONTH


def test_pu_paying_a_month_two_months_late_pays_4_percent():
    assert late_charge(pu(), OCT, 1, today=date(2026, 12, 15)) == PU_LATE_MONTH  # still 1
    assert late_charge(pu(), OCT, 1, today=date(2026, 12, 16)) == 2 * PU_LATE_MONTH


def test_pu_paying_several_overdue_months_pays_each_by_its_own_lateness():
    # on 20 January 2027: October 3 months late (6%), November 2 (4%), December 1 (2%),
    # January not yet due (15 February)
    charge = late_charge(pu(), OCT, 4, today=date(2027, 1, 20))
    assert charge == (3 + 2 + 1 + 0) * PU_LATE_MONTH


def test_pu_late_charge_is_rounded_half_up_to_whole_rupiah_per_month():
    # Rp 5,004,500: JKK 12,010.8 → 12,011, JKM 15,013.5 → 15,014; 2% of 27,025 = 540.5
    m = member("PU", 5_004_500, registered_on=date(2026, 10, 5))
    assert late_charge(m, OCT, 1, today=date(2026, 11, 16)) == 541


@pytest.mark.parametrize("segment", ["BPU", "PMI", "JAKON"])
def test_bpu_pmi_and_jakon_never_pay_a_late_charge(segment):
    m = pu(segment)
    today = date(2026, 12, 20)  # October and November overdue in every segment
    assert late_charge(m, OCT, 3, today=today) == 0
    owed = dues_on(m, None, 3, today=today)
    assert owed.late_charge == 0 and owed.amount == dues_for(m, OCT, 3).amount
    _, errors = check_payment(m, None, NEW, OCT, 3, owed.amount, today=today)
    assert errors == []


LATE_1_PERCENT_2027 = dataclasses.replace(
    rates.RATES_2024_03, effective_from=date(2027, 1, 1),
    pu_late_charge_per_month=rates.percent("1"),
)


def test_pu_late_charge_rate_is_2_percent_in_the_rate_table():
    assert rates_on(date(2026, 11, 1)).pu_late_charge_per_month == rates.percent("2")


def test_pu_late_charge_uses_the_rate_in_force_for_the_months_dues():
    table = (*RATE_TABLE, LATE_1_PERCENT_2027)
    # paid 20 February 2027: December 2026 (2%) 2 months late, January 2027 (1%) 1 month late
    charge = late_charge(pu(), Period(2026, 12), 2, today=date(2027, 2, 20), table=table)
    assert charge == 2 * PU_LATE_MONTH + 4_620


def test_pu_late_charge_reads_the_module_rate_table(monkeypatch):
    monkeypatch.setattr(rates, "RATE_TABLE", (*RATE_TABLE, LATE_1_PERCENT_2027))
    assert late_charge(pu(), Period(2027, 1), 1, today=date(2027, 2, 16)) == 4_620


def test_a_negative_late_charge_rate_is_refused():
    with pytest.raises(ValueError):
        dataclasses.replace(rates.RATES_2024_03, pu_late_charge_per_month=rates.percent("-2"))


def test_dues_for_stays_the_programme_dues_without_a_late_charge():
    dues = dues_for(pu(), OCT, 2)
    assert dues.late_charge == 0 and dues.amount == 2 * PU_MONTH


def test_dues_on_adds_the_late_charge_to_the_amount_not_to_the_lines():
    owed = dues_on(pu(), None, 2, today=date(2026, 12, 16))  # October 2 late, November 1
    assert owed.first_period == OCT and owed.months == 2
    assert owed.lines == dues_for(pu(), OCT, 2).lines
    assert owed.late_charge == 3 * PU_LATE_MONTH
    assert owed.amount == 2 * PU_MONTH + 3 * PU_LATE_MONTH
    assert owed.as_dict()["late_charge"] == 27_720 and owed.as_dict()["amount"] == 951_720


def test_dues_on_starts_at_the_first_unpaid_month():
    owed = dues_on(pu(), OCT, 1, today=date(2026, 12, 16))  # November, 1 month late
    assert owed.first_period == Period(2026, 11) and owed.late_charge == PU_LATE_MONTH


def test_a_pu_payment_of_overdue_months_without_the_late_charge_is_refused():
    today = date(2026, 12, 16)
    dues, errors = check(pu(), first=OCT, months=2, amount=2 * PU_MONTH, today=today)
    assert fields(errors) == ["amount"]
    assert errors[0].message.startswith(
        "must be Rp 951,720 (dues Rp 924,000 + late charge Rp 27,720 for months paid after "
        "their due date)"
    )
    assert dues is not None and dues.amount == 951_720 and dues.late_charge == 27_720


def test_a_pu_payment_of_overdue_months_with_the_late_charge_is_accepted():
    today = date(2026, 12, 16)
    dues, errors = check(pu(), first=OCT, months=2, amount=951_720, today=today)
    assert errors == [] and dues is not None and dues.late_charge == 27_720


def test_a_pu_payment_on_time_asks_for_the_dues_alone():
    dues, errors = check(pu(), first=OCT, months=1, amount=PU_MONTH, today=date(2026, 11, 15))
    assert errors == [] and dues is not None and dues.late_charge == 0


@pytest.mark.parametrize("segment", ["PU", "BPU", "JAKON", "PMI"])
@pytest.mark.parametrize(
    "today", [date(2026, 11, 15), date(2026, 11, 16), date(2026, 12, 16), date(2027, 1, 10)]
)
def test_dues_on_asks_for_what_check_payment_accepts(segment, today):
    m = pu(segment)
    for paid_through, months in [(None, 1), (None, 3), (OCT, 3), (OCT, 6)]:
        owed = dues_on(m, paid_through, months, today=today)
        status = NEW if paid_through is None else ACTIVE
        dues, errors = check_payment(m, paid_through, status, owed.first_period, months,
                                     owed.amount, today=today)
        assert dues == owed and errors == []
