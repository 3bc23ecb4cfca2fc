"""Dues: what a month costs a member, and the PU late charge on months paid after their due date.

Pure: the standard library, ./rates.py and shared/ only; no I/O, no pydantic. Money is integer
rupiah, periods are calendar months, days are dates in WIB (the caller's clock decides
"today"). Facts from ../shared/DOMAIN.md "Monthly dues" and "Due dates, arrears, status"; every
figure is in the dated rate table (rates.py) or a named constant here. The calendar (periods,
due dates, status) is shared/membership.py; whether a payment may be booked is payments.py.

v1 simplifications, each in one place so the full rule can replace it:
- payments are contiguous from the registration month: a member's whole payment history is
  one `paid_through` period (None before the first payment), see
  shared.membership.next_unpaid_period;
- PMI pays a flat monthly amount booked on one JKK line (`PMI_PACKAGE_PROGRAM`);
- JAKON pays JKK + JKM at PU rates on the declared wage (rates.py);
- the PU late charge (2% a month, paid with the next dues) is charged on each month paid
  after its due date, by whole months late, at the rate in force for that month's dues;
  see `late_charge`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from services.contributions.rates import RISK_CLASSES, Rates, rates_on
from shared.membership import Period, due_date, next_unpaid_period
from shared.vocabulary import PROGRAMS, SEGMENTS, Program, Segment

# --- members ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """What dues and status depend on, as registration recorded it.

    `risk_class` is the employer's JKK risk class (1–5) for PU and JAKON; None takes the
    segment's default from the rate table. It is ignored for BPU and PMI.
    """

    segment: Segment
    monthly_income: int
    programs: tuple[Program, ...]
    registered_on: date
    risk_class: int | None = None

    def __post_init__(self) -> None:
        if self.segment not in SEGMENTS:
            raise ValueError(f"segment must be one of {' '.join(SEGMENTS)}, not {self.segment!r}")
        if self.monthly_income < 0:
            raise ValueError("monthly_income may not be negative")
        if self.risk_class is not None and self.risk_class not in RISK_CLASSES:
            raise ValueError(f"risk_class must be one of {RISK_CLASSES} or None")
        object.__setattr__(self, "programs", tuple(self.programs))  # a list would be mutable

    @property
    def first_owed(self) -> Period:
        """Dues are owed from the month of registration, whatever its day."""
        return Period.of(self.registered_on)


# --- dues -------------------------------------------------------------------------------------
# Each line, each month, rounded to whole rupiah, half up (Rp 0.5 → Rp 1): the amount a
# member paying monthly pays, so N months cost exactly N monthly bills.
RUPIAH = Decimal(1)
ROUNDING = ROUND_HALF_UP

# PMI v1 pays one flat amount for its JKK and JKM protection together (the package price has
# no regulated split between them). It is booked as one line on JKK rather than split by an
# invented ratio; the line does not mean JKM is unpaid.
PMI_PACKAGE_PROGRAM: Program = "JKK"


@dataclass(frozen=True, slots=True)
class DuesLine:
    """What one programme costs (for one month, or summed over several)."""

    program: Program
    amount: int

    def as_dict(self) -> dict[str, object]:
        return {"program": self.program, "amount": self.amount}


@dataclass(frozen=True, slots=True)
class Dues:
    """What `months` months from `first_period` cost, per programme and in total.

    `lines` are the programme dues only; `late_charge` is the PU late charge on top of them
    (0 when none is due), and `amount` is everything to pay: the lines plus the late charge.
    """

    first_period: Period
    months: int
    amount: int
    lines: tuple[DuesLine, ...]
    late_charge: int = 0

    @property
    def last_period(self) -> Period:
        return self.first_period + (self.months - 1)

    @property
    def programme_dues(self) -> int:
        """The amount without the late charge: the sum of the lines."""
        return self.amount - self.late_charge

    def as_dict(self) -> dict[str, object]:
        return {
            "first_period": str(self.first_period),
            "months": self.months,
            "amount": self.amount,
            "late_charge": self.late_charge,
            "lines": [line.as_dict() for line in self.lines],
        }


def round_rupiah(amount: Decimal) -> int:
    return int(amount.quantize(RUPIAH, rounding=ROUNDING))


def _on(base: int, rate: Decimal) -> int:
    return round_rupiah(Decimal(base) * rate)


def _pu_lines(
    rates: Rates, wage: int, risk_class: int, programs: Iterable[str], *, wage_earner: bool
) -> list[DuesLine]:
    """JKK + JKM at PU rates; for wage earners (not JAKON) also JHT and JP when enrolled.

    JKP is never a line: it is funded by government and by the JKK recomposition, which is
    why JKK is lower for a JKP member."""
    enrolled = set(programs)
    with_jkp = wage_earner and "JKP" in enrolled
    lines = [
        DuesLine("JKK", _on(wage, rates.pu_jkk(risk_class, with_jkp=with_jkp))),
        DuesLine("JKM", _on(wage, rates.pu_jkm)),
    ]
    if wage_earner and "JHT" in enrolled:
        lines.append(DuesLine("JHT", _on(wage, rates.pu_jht)))
    if wage_earner and "JP" in enrolled:
        lines.append(DuesLine("JP", _on(min(wage, rates.jp_wage_ceiling), rates.pu_jp)))
    return lines


def _bpu_lines(rates: Rates, income: int, programs: Iterable[str]) -> list[DuesLine]:
    """On the declared income held within the floor and the cap (registration refuses
    incomes outside them; a record from before a rate change is still charged within)."""
    base = min(max(income, rates.bpu_min_income), rates.bpu_max_income)
    lines = [DuesLine("JKK", _on(base, rates.bpu_jkk)), DuesLine("JKM", rates.bpu_jkm_flat)]
    if "JHT" in set(programs):
        lines.append(DuesLine("JHT", _on(base, rates.bpu_jht)))
    return lines


def monthly_dues(
    member: Member, period: Period, *, table: Sequence[Rates] | None = None
) -> list[DuesLine]:
    """The lines one month costs, with the rates in force on the month's first day.

    JKK and JKM are charged for every member (every segment requires them); optional
    programmes only when enrolled, and only where the segment has a rate for them.
    Raises rates.NoRatesError when the table has no entry for the month.
    """
    rates = rates_on(period.first_day, table)
    if member.segment == "PU":
        risk_class = member.risk_class or rates.pu_default_risk_class
        return _pu_lines(
            rates, member.monthly_income, risk_class, member.programs, wage_earner=True
        )
    if member.segment == "JAKON":
        risk_class = member.risk_class or rates.jakon_default_risk_class
        return _pu_lines(
            rates, member.monthly_income, risk_class, member.programs, wage_earner=False
        )
    if member.segment == "BPU":
        return _bpu_lines(rates, member.monthly_income, member.programs)
    # PMI v1: the flat monthly price; PMI JHT has no rate in v1 and is not charged.
    return [DuesLine(PMI_PACKAGE_PROGRAM, rates.pmi_monthly)]


def dues_for(
    member: Member, first_period: Period, months: int, *, table: Sequence[Rates] | None = None
) -> Dues:
    """`months` consecutive months from `first_period`, each at its own month's rates, summed
    per programme (lines in programme order)."""
    if months < 1:
        raise ValueError(f"months must be at least 1, not {months}")
    totals: dict[str, int] = {}
    for offset in range(months):
        for line in monthly_dues(member, first_period + offset, table=table):
            totals[line.program] = totals.get(line.program, 0) + line.amount
    lines = tuple(DuesLine(p, totals[p]) for p in PROGRAMS if p in totals)
    return Dues(first_period, months, sum(totals.values()), lines)


# --- the PU late charge -----------------------------------------------------------------------
# v1 rule, DOMAIN.md "PU arrears cost 2% a month, paid with the next dues": a month paid after
# its due date costs, on top of its dues, its dues total x the rate (rates.py,
# pu_late_charge_per_month) x the months it is late, rounded half up to whole rupiah per month.
# Only PU is charged: BPU has no late penalty (DOMAIN.md); JAKON and PMI have none in v1.
SEGMENTS_LATE_CHARGED: frozenset[str] = frozenset({"PU"})


def months_late(due: date, day: date) -> int:
    """How many months a month due on `due` is late when paid on `day`: 0 when not overdue
    (`day` on or before the due date, as in `status_on`), else one for each month-long span
    started by `day`, the first beginning the day after the due date. Due 15 December: paid
    16 December to 15 January is 1, 16 January to 15 February is 2.

    Counts by calendar months, so it needs a due day every month has (DUE_DAY is the 15th).
    """
    if day <= due:
        return 0
    late = (day.year - due.year) * 12 + day.month - due.month
    return late + 1 if day.day > due.day else late


def late_charge(
    member: Member,
    first_period: Period,
    months: int,
    *,
    today: date,
    table: Sequence[Rates] | None = None,
) -> int:
    """The late charge on paying `months` months from `first_period` on `today`: the sum over
    the months whose due date is before `today` of (that month's dues total x the rate x
    `months_late`), each rounded half up to whole rupiah. 0 for segments without one.

    The rate is the one in force for the month's dues (its first day), like every figure of
    that month. Raises rates.NoRatesError when an overdue month has no rates.
    """
    if months < 1:
        raise ValueError(f"months must be at least 1, not {months}")
    if member.segment not in SEGMENTS_LATE_CHARGED:
        return 0
    charge = 0
    for offset in range(months):
        period = first_period + offset
        late = months_late(due_date(member.segment, period), today)
        if not late:
            break  # later months fall due later still: none of them is late either
        month_dues = sum(line.amount for line in monthly_dues(member, period, table=table))
        rate = rates_on(period.first_day, table).pu_late_charge_per_month
        charge += round_rupiah(Decimal(month_dues) * rate * late)
    return charge


def dues_on(
    member: Member,
    paid_through: Period | None,
    months: int,
    *,
    today: date,
    table: Sequence[Rates] | None = None,
) -> Dues:
    """What the next `months` unpaid months cost if paid on `today`: their programme dues
    (`dues_for`) plus the late charge on those already overdue. What a payment must match
    (payments.check_payment).
    """
    first = next_unpaid_period(member, paid_through)
    dues = dues_for(member, first, months, table=table)
    charge = late_charge(member, first, months, today=today, table=table)
    return Dues(dues.first_period, dues.months, dues.amount + charge, dues.lines, charge)
