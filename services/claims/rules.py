"""Claims rules: is a claim well formed, is it eligible, and what does it pay.

Pure: the standard library, shared.membership (the calendar contributions uses too) and
./benefit_tables.py (every regulated figure, dated). No I/O, no pydantic. Money is integer
rupiah, rounded half up; days are dates. Facts from ../../shared/DOMAIN.md ("Claims and
eligibility", "Due dates, arrears, status").

Two questions, kept apart: `problem_with` finds BAD INPUT (the API answers 422 and writes
nothing); `judge` decides ELIGIBILITY of a well-formed claim (a failed rule is a rejection
that is kept, with the rule's name and a reason an officer reads).

v1 simplifications, each named and in one place so the full rule can replace it:
- payments are contiguous from the registration month (shared.membership); a gap ends the
  months counted as paid through (`paid_through_on`);
- age is counted in months from the birth month (events carry no birth day): the age is
  reached in the month of the birthday (`age_reached`);
- `jht_development`: the balance at the end of each calendar year is (balance at its start
  + contributions paid that year) x (1 + that year's declared rate), rounded to the rupiah;
  the year of filing earns nothing yet; rates come from benefit_tables.jht_rate_for;
- JHT and JP count payments made on or before the filing day (dues for the last months worked
  arrive after the last working day); JKK and JKM count payments on or before the incident;
- `jp_monthly_pension`: 1% x paid years x the declared monthly income, not the indexed
  average wage; no minimum, maximum or yearly indexation;
- `jp_lump_sum`: JP contributions paid plus development at the JHT rates;
- JP: the 180-month rule decides pension or lump sum for death and disability too, and every
  payment of a JP member counts as a JP month;
- JKP: only enrolment, segment and the filing window are checked, not the contribution
  period (12 months in 24, 6 in a row), citizenship or the cause of the layoff;
- the rules know nothing of earlier claims: refusing a second JHT or JP payout is the
  service's job.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from services.claims import benefit_tables as tables
from shared.membership import (
    REASON_NO_PAYMENT,
    Period,
    due_date,
    next_unpaid_period,
    status_on,
)
from shared.vocabulary import PROGRAMS

JHT_CAUSES = ("age", "stopped_work", "disability", "death", "emigration")
JP_CAUSES = ("age", "death", "disability")
JP_DEFAULT_CAUSE = "age"
PROGRAMS_WITHOUT_CAUSE = ("JKK", "JKM", "JKP")
JKP_SEGMENT = "PU"  # only wage earners have JKP

TERMINATES_DEATH = "death"
TERMINATES_JHT_WITHDRAWN = "jht_withdrawn"


# --- what claims knows -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Payment:
    """One payment as contributions published it: months first..last, paid on paid_on."""

    first: Period
    last: Period
    paid_on: date
    jht_amount: int = 0  # rupiah of JHT dues in this payment (all its months)
    jp_amount: int = 0  # rupiah of JP dues in this payment

    def months(self) -> Iterable[Period]:
        month = self.first
        while month <= self.last:
            yield month
            month += 1


@dataclass(frozen=True, slots=True)
class Member:
    """What claims learnt of a participant from events."""

    segment: str  # "PU" | "BPU" | "JAKON" | "PMI"
    programs: frozenset[str]  # subset of JKK JKM JHT JP JKP
    registered_on: date
    monthly_income: int  # the declared wage/income, rupiah
    born_in: Period | None  # birth month (events carry month and year only; None = unknown)
    payments: tuple[Payment, ...] = ()
    terminated_on: date | None = None

    @property
    def first_owed(self) -> Period:
        return Period.of(self.registered_on)


@dataclass(frozen=True, slots=True)
class Claim:
    program: str  # "JKK" | "JKM" | "JHT" | "JP" | "JKP"
    incident_date: date  # accident / death / stopping work / layoff / the day claimed from
    filed_on: date  # the day the claim is filed (today)
    # JHT: one of JHT_CAUSES (required); JP: one of JP_CAUSES (default "age"); others None
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    eligible: bool
    rule: str  # the rule that decided, e.g. "jkm.active_on_date_of_death"
    reason: str | None  # for the claims officer when not eligible; None when eligible
    benefit: dict[str, object] | None  # JSON-ready; None when not eligible
    # the membership end reason an APPROVAL of this claim causes: "death", "jht_withdrawn"
    terminates: str | None


def _approve(rule: str, benefit: dict[str, object], terminates: str | None = None) -> Judgement:
    return Judgement(True, rule, None, benefit, terminates)


def _reject(rule: str, reason: str) -> Judgement:
    return Judgement(False, rule, reason, None, None)


# --- small arithmetic ------------------------------------------------------------------------
def round_half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percent_of(amount: int, percent: int | Decimal) -> int:
    """`percent`% of `amount`, rounded half up to the rupiah."""
    return round_half_up(Decimal(amount) * Decimal(percent) / 100)


def add_months(day: date, months: int) -> date:
    """The same day of the month `months` later, clamped to the month's end (31 Jan + 1 month
    is 28 or 29 Feb)."""
    month = Period.of(day) + months
    last_day = calendar.monthrange(month.year, month.month)[1]
    return date(month.year, month.month, min(day.day, last_day))


def age_reached(born_in: Period, day: date, years: int) -> bool:
    """v1: age by month. `years` old in the month of the birthday and after."""
    return Period.of(day) >= born_in + 12 * years


# --- payments and status on a day ------------------------------------------------------------
def _payments_by(member: Member, day: date) -> list[Payment]:
    return [p for p in member.payments if p.paid_on <= day]


def paid_through_on(member: Member, day: date) -> Period | None:
    """The last month paid by payments made on or before `day`, counted contiguously from the
    registration month (v1): a gap stops the count. None when nothing counts."""
    through = member.first_owed - 1
    for payment in sorted(_payments_by(member, day), key=lambda p: p.first):
        if payment.first > through + 1:
            break
        through = max(through, payment.last)
    return through if through >= member.first_owed else None


def paid_months_on(member: Member, day: date) -> int:
    """Distinct months paid by payments made on or before `day`."""
    return len({month for p in _payments_by(member, day) for month in p.months()})


def active_on(member: Member, day: date) -> bool:
    """Registered by `day`, not terminated on or before it, and active on the membership
    calendar with the payments made by then."""
    if member.registered_on > day:
        return False
    if member.terminated_on is not None and member.terminated_on <= day:
        return False
    return status_on(member, paid_through_on(member, day), day).status == "active"


def why_not_active(member: Member, day: date) -> str:
    """A sentence saying why `member` was not active on `day` (call when not active_on)."""
    if member.registered_on > day:
        return f"the member was not yet registered on {day} (registered {member.registered_on})"
    if member.terminated_on is not None and member.terminated_on <= day:
        return f"the membership ended on {member.terminated_on}"
    paid_through = paid_through_on(member, day)
    status = status_on(member, paid_through, day)
    later = " Payments made after that day do not count."
    if status.status == "active":
        return "the member was active"  # not reached when called as documented
    if status.reason == REASON_NO_PAYMENT and not status.overdue_months:
        return f"nothing had been paid by {day}.{later}"
    first_unpaid = next_unpaid_period(member, paid_through)
    due = due_date(member.segment, first_unpaid)
    months = "month was" if status.overdue_months == 1 else "months were"
    arrears = (
        f"{status.overdue_months} {months} overdue on {day}: {first_unpaid} was due on {due} "
        f"and unpaid"
    )
    if status.status == "terminated":
        return f"the membership had lapsed: {arrears}.{later}"
    return f"{arrears}.{later}"


# --- bad input ---------------------------------------------------------------------------------
def problem_with(member: Member, claim: Claim) -> tuple[str, str] | None:
    """What makes the claim BAD INPUT, as (field, message); None when it may be judged."""
    program = claim.program
    if program not in PROGRAMS:
        return "program", f"unknown program {program!r}; one of {', '.join(PROGRAMS)}"
    if program not in member.programs:
        return "program", f"not enrolled in {program}"
    if claim.incident_date > claim.filed_on:
        return "incident_date", (
            f"{claim.incident_date} is in the future: after the filing day {claim.filed_on}"
        )
    if claim.incident_date < member.registered_on:
        return "incident_date", (
            f"{claim.incident_date} is before the member registered on {member.registered_on}"
        )
    if program == "JHT" and claim.cause not in JHT_CAUSES:
        given = "none given" if claim.cause is None else f"not {claim.cause!r}"
        return "cause", f"a JHT claim needs a cause, one of {', '.join(JHT_CAUSES)} ({given})"
    if program == "JP" and claim.cause is not None and claim.cause not in JP_CAUSES:
        return "cause", f"a JP cause is one of {', '.join(JP_CAUSES)}, not {claim.cause!r}"
    if program in PROGRAMS_WITHOUT_CAUSE and claim.cause is not None:
        return "cause", f"a {program} claim takes no cause (given {claim.cause!r})"
    return None


# --- JKK: work accident ----------------------------------------------------------------------
def jkk_benefit(member: Member, day: date) -> dict[str, object]:
    row = tables.in_force(tables.JKK_BENEFITS, day)
    wage = member.monthly_income
    return {
        "care": "as medically needed",
        "income_replacement": [
            {"months": row.full_months, "percent": row.full_percent,
             "monthly": percent_of(wage, row.full_percent)},
            {"after_months": row.full_months, "percent": row.later_percent,
             "monthly": percent_of(wage, row.later_percent)},
        ],
    }


def jkk_active_on_incident_date(member: Member, claim: Claim) -> Judgement:
    rule = "jkk.active_on_incident_date"
    day = claim.incident_date
    if not active_on(member, day):
        return _reject(rule, f"Not active on the accident date {day}: "
                             f"{why_not_active(member, day)}")
    return _approve(rule, jkk_benefit(member, day))


# --- JKM: death --------------------------------------------------------------------------------
def jkm_benefit(member: Member, death: date) -> dict[str, object]:
    row = tables.in_force(tables.JKM_BENEFITS, death)
    paid = paid_months_on(member, death)
    education = paid >= row.education_min_paid_months
    benefit: dict[str, object] = {
        "amount": row.amount,
        "lump_sum": row.lump_sum,
        "periodic": row.periodic,
        "funeral": row.funeral,
        "paid_months": paid,
        "education_benefit_eligible": education,
    }
    if education:
        benefit["education_benefit_max"] = row.education_max
        benefit["education_children_max"] = row.education_children
    return benefit


def jkm_active_on_date_of_death(member: Member, claim: Claim) -> Judgement:
    rule = "jkm.active_on_date_of_death"
    death = claim.incident_date
    if not active_on(member, death):
        return _reject(rule, f"Not active on the date of death {death}: "
                             f"{why_not_active(member, death)}")
    return _approve(rule, jkm_benefit(member, death), TERMINATES_DEATH)


# --- development of savings (JHT, and the JP lump sum) --------------------------------------
def jht_development(
    contributions: Iterable[tuple[date, int]], filed_on: date
) -> tuple[int, list[dict[str, object]]]:
    """v1: the balance, and the yearly rates used, of `contributions` (paid_on, rupiah).

    The balance at the end of each calendar year = (balance at its start + contributions paid
    that year) x (1 + that year's rate), rounded half up to the rupiah. The year of filing
    earns nothing yet: its contributions are added as paid. Rates: benefit_tables.jht_rate_for.
    """
    by_year: dict[int, int] = {}
    for paid_on, amount in contributions:
        if paid_on <= filed_on:
            by_year[paid_on.year] = by_year.get(paid_on.year, 0) + amount
    if not by_year:
        return 0, []
    balance = 0
    rates: list[dict[str, object]] = []
    for year in range(min(by_year), filed_on.year):
        rate = tables.jht_rate_for(year)
        balance = round_half_up(
            Decimal(balance + by_year.get(year, 0)) * (100 + rate.percent) / 100
        )
        rates.append({"year": year, "percent": str(rate.percent), "figure_of": rate.year})
    return balance + by_year.get(filed_on.year, 0), rates


def _savings(
    member: Member, filed_on: date, amount_of: Callable[[Payment], int]
) -> dict[str, object]:
    paid = [(p.paid_on, amount_of(p)) for p in _payments_by(member, filed_on)]
    balance, rates = jht_development(paid, filed_on)
    contributions = sum(amount for _, amount in paid)
    return {
        "amount": balance,
        "contributions": contributions,
        "development": balance - contributions,
        "rates": rates,
    }


# --- JHT: old-age savings ----------------------------------------------------------------------
def jht_benefit(member: Member, claim: Claim) -> dict[str, object]:
    return {**_savings(member, claim.filed_on, lambda p: p.jht_amount), "cause": claim.cause}


def _unknown_birth_month(program: str, years: int) -> str:
    return (f"The birth month is not known, so age {years} cannot be checked; a {program} "
            f"claim for age needs the participant's birth month on record.")


def jht_age_reached(member: Member, claim: Claim) -> Judgement:
    row = tables.in_force(tables.JHT_RULES, claim.incident_date)
    if member.born_in is None:
        return _reject("jht.birth_month_known", _unknown_birth_month("JHT", row.age_years))
    rule = "jht.age_reached"
    if not age_reached(member.born_in, claim.incident_date, row.age_years):
        reached = member.born_in + 12 * row.age_years
        return _reject(rule, f"Not yet {row.age_years} on {claim.incident_date}: born in "
                             f"{member.born_in}, the participant turns {row.age_years} in "
                             f"{reached}.")
    return _approve(rule, jht_benefit(member, claim))


def jht_waiting_month_passed(member: Member, claim: Claim) -> Judgement:
    rule = "jht.waiting_month_passed"
    row = tables.in_force(tables.JHT_RULES, claim.incident_date)
    earliest = add_months(claim.incident_date, row.waiting_months)
    if claim.filed_on < earliest:
        return _reject(rule, f"Filed on {claim.filed_on}, within the waiting period after "
                             f"stopping work on {claim.incident_date}: a JHT withdrawal for "
                             f"stopping work may be filed from {earliest}.")
    return _approve(rule, jht_benefit(member, claim), TERMINATES_JHT_WITHDRAWN)


def jht_paid_on_cause(member: Member, claim: Claim) -> Judgement:
    """Permanent total disability, death, leaving Indonesia for good: paid without more."""
    return _approve(f"jht.{claim.cause}", jht_benefit(member, claim))


def judge_jht(member: Member, claim: Claim) -> Judgement:
    if claim.cause == "age":
        return jht_age_reached(member, claim)
    if claim.cause == "stopped_work":
        return jht_waiting_month_passed(member, claim)
    return jht_paid_on_cause(member, claim)


# --- JP: pension -------------------------------------------------------------------------------
def jp_monthly_pension(member: Member, paid_months: int, day: date) -> int:
    """v1: accrual% x paid years x the declared monthly income, rounded half up (the full rule
    uses the average indexed wage over the contribution period)."""
    row = tables.in_force(tables.JP_BENEFITS, day)
    return round_half_up(
        row.accrual_percent_per_year * paid_months * member.monthly_income / (12 * 100)
    )


def jp_lump_sum(member: Member, filed_on: date) -> dict[str, object]:
    """v1: JP contributions paid plus development at the JHT rates."""
    return _savings(member, filed_on, lambda p: p.jp_amount)


def jp_benefit(member: Member, claim: Claim) -> dict[str, object]:
    row = tables.in_force(tables.JP_BENEFITS, claim.incident_date)
    paid = paid_months_on(member, claim.filed_on)
    if paid >= row.pension_min_paid_months:
        return {"kind": "monthly_pension", "paid_months": paid,
                "monthly": jp_monthly_pension(member, paid, claim.incident_date)}
    return {"kind": "lump_sum", "paid_months": paid, **jp_lump_sum(member, claim.filed_on)}


def jp_pension_age_reached(member: Member, claim: Claim) -> Judgement:
    age = tables.in_force(tables.JP_PENSION_AGES, claim.incident_date).age_years
    if member.born_in is None:
        return _reject("jp.birth_month_known", _unknown_birth_month("JP", age))
    rule = "jp.pension_age_reached"
    if not age_reached(member.born_in, claim.incident_date, age):
        return _reject(rule, f"Not yet at the pension age {age} (in force in "
                             f"{claim.incident_date.year}) on {claim.incident_date}: born in "
                             f"{member.born_in}, the participant turns {age} in "
                             f"{member.born_in + 12 * age}.")
    return _approve(rule, {**jp_benefit(member, claim), "pension_age": age})


def judge_jp(member: Member, claim: Claim) -> Judgement:
    cause = claim.cause or JP_DEFAULT_CAUSE
    if cause == "age":
        return jp_pension_age_reached(member, claim)
    return _approve(f"jp.{cause}", jp_benefit(member, claim))  # death, disability: no age


# --- JKP: job loss -----------------------------------------------------------------------------
def jkp_benefit(member: Member, layoff: date) -> dict[str, object]:
    row = tables.in_force(tables.JKP_BENEFITS, layoff)
    wage_used = min(member.monthly_income, row.wage_cap)
    monthly = percent_of(wage_used, row.percent)
    return {"percent": row.percent, "wage_used": wage_used, "monthly": monthly,
            "months": row.months, "amount": monthly * row.months}


def jkp_wage_earners_only(member: Member, claim: Claim) -> Judgement | None:
    if member.segment != JKP_SEGMENT:
        return _reject("jkp.wage_earners_only",
                       f"JKP covers wage earners (PU) only; this member is {member.segment}, "
                       f"so the JKP enrolment on record is inconsistent.")
    return None


def jkp_filed_within_claim_window(member: Member, claim: Claim) -> Judgement:
    rule = "jkp.filed_within_claim_window"
    row = tables.in_force(tables.JKP_BENEFITS, claim.incident_date)
    last_day = add_months(claim.incident_date, row.filing_window_months)
    if claim.filed_on > last_day:
        return _reject(rule, f"Filed on {claim.filed_on}, more than {row.filing_window_months} "
                             f"months after the layoff on {claim.incident_date}: the last "
                             f"day to file was {last_day}.")
    return _approve(rule, jkp_benefit(member, claim.incident_date))


def judge_jkp(member: Member, claim: Claim) -> Judgement:
    return jkp_wage_earners_only(member, claim) or jkp_filed_within_claim_window(member, claim)


# --- eligibility -------------------------------------------------------------------------------
JUDGES: dict[str, Callable[[Member, Claim], Judgement]] = {
    "JKK": jkk_active_on_incident_date,
    "JKM": jkm_active_on_date_of_death,
    "JHT": judge_jht,
    "JP": judge_jp,
    "JKP": judge_jkp,
}


def judge(member: Member, claim: Claim) -> Judgement:
    """ELIGIBILITY of a well-formed claim (problem_with is None): a failed rule gives
    eligible False with the rule's name and a reason."""
    problem = problem_with(member, claim)
    if problem is not None:
        field, message = problem
        raise ValueError(f"not a claim to judge: {field}: {message}")
    return JUDGES[claim.program](member, claim)
