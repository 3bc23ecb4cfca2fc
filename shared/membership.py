"""The membership calendar: months, due dates, and a membership's status on a day.

One rule for the two services that need it: contributions, which decides and publishes status,
and claims, which judges eligibility on past dates from the payments it learnt. Pure: the
standard library only. Facts from ../shared/DOMAIN.md ("Due dates, arrears, status").

v1 simplification: payments are contiguous from the registration month, so a member's whole
payment history is one `paid_through` period (None before the first payment), see
`next_unpaid_period`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Protocol

from shared.vocabulary import MembershipStatus


class Enrolled(Protocol):
    """What the calendar needs of a member: its segment and the first month it owes."""

    @property
    def segment(self) -> str: ...

    @property
    def first_owed(self) -> Period: ...


# --- periods ----------------------------------------------------------------------------------
_PERIOD_PATTERN = re.compile(r"([0-9]{4})-([0-9]{2})")  # ASCII digits only, nothing around
MIN_YEAR, MAX_YEAR = 1, 9999  # what datetime.date can hold


@dataclass(frozen=True, order=True, slots=True)
class Period:
    """A calendar month, the unit dues are owed and paid in. Ordered by time."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not MIN_YEAR <= self.year <= MAX_YEAR:
            raise ValueError(f"year must be {MIN_YEAR} to {MAX_YEAR}, not {self.year}")
        if not 1 <= self.month <= 12:
            raise ValueError(f"month must be 01 to 12, not {self.month}")

    @classmethod
    def parse(cls, text: str) -> Period:
        """Strictly `YYYY-MM` ("2026-11"): four digits, a hyphen, a two-digit month 01–12."""
        match = _PERIOD_PATTERN.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"period must be YYYY-MM (e.g. 2026-11), not {text!r}")
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12:
            raise ValueError(f"period {text!r} has month {match[2]}; months are 01 to 12")
        if year < MIN_YEAR:
            raise ValueError(f"period {text!r} has year 0000; years start at 0001")
        return cls(year, month)

    @classmethod
    def of(cls, day: date) -> Period:
        """The month `day` falls in."""
        return cls(day.year, day.month)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    def _index(self) -> int:
        return self.year * 12 + self.month - 1

    @classmethod
    def _from_index(cls, index: int) -> Period:
        return cls(index // 12, index % 12 + 1)

    def __add__(self, months: int) -> Period:
        if not isinstance(months, int) or isinstance(months, bool):
            return NotImplemented
        return Period._from_index(self._index() + months)

    def __sub__(self, months: int) -> Period:
        if not isinstance(months, int) or isinstance(months, bool):
            return NotImplemented
        return Period._from_index(self._index() - months)

    def next(self) -> Period:
        return self + 1

    def months_until(self, other: Period) -> int:
        """How many months from this period to `other`: 2026-11 → 2027-02 is 3; negative if
        `other` is earlier."""
        return other._index() - self._index()

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


# --- due dates and status ---------------------------------------------------------------------
DUE_DAY = 15  # dues for a month are due on the 15th ...
# ... of the month itself (0) or of the next month (1), by segment.
DUE_MONTH_OFFSET: dict[str, int] = {"BPU": 0, "PMI": 0, "PU": 1, "JAKON": 1}
# BPU and PMI: after more than this many consecutive overdue months the membership ends
# (Perdir 22/PERDIR.02/072022). PU and JAKON memberships never end by arrears.
MAX_OVERDUE_MONTHS = 3
SEGMENTS_LAPSING: frozenset[str] = frozenset({"BPU", "PMI"})

REASON_NO_PAYMENT = "no_payment_yet"  # inactive: registered, nothing paid yet
REASON_ARREARS = "arrears"  # inactive: paid before, now a month is overdue
REASON_LAPSED = "lapsed"  # terminated: more than MAX_OVERDUE_MONTHS overdue (BPU, PMI)


@dataclass(frozen=True, slots=True)
class Status:
    """A membership's status on one day. `reason` says why it is not active (None when
    active); `overdue_months` counts the unpaid months whose due date has passed."""

    status: MembershipStatus
    reason: str | None = None
    overdue_months: int = 0


def due_date(segment: str, period: Period) -> date:
    """The 15th of the month itself for BPU and PMI, of the next month for PU and JAKON."""
    return (period + DUE_MONTH_OFFSET[segment]).first_day.replace(day=DUE_DAY)


def next_unpaid_period(member: Enrolled, paid_through: Period | None) -> Period:
    """The first month not yet paid. v1: payments are contiguous from the registration month,
    so a history is just the last month paid (None: nothing paid yet)."""
    if paid_through is None:
        return member.first_owed
    if paid_through < member.first_owed:
        raise ValueError(
            f"paid_through {paid_through} is before the registration month {member.first_owed}"
        )
    return paid_through + 1


def _last_overdue_period(segment: str, day: date) -> Period:
    """The latest month whose due date is before `day` (it falls overdue on the 16th)."""
    this_month = Period.of(day)
    newest_due = this_month if day.day > DUE_DAY else this_month - 1
    return newest_due - DUE_MONTH_OFFSET[segment]


def overdue_months(member: Enrolled, paid_through: Period | None, day: date) -> int:
    """Unpaid months, from the first unpaid one, whose due date is before `day`."""
    first_unpaid = next_unpaid_period(member, paid_through)
    return max(0, first_unpaid.months_until(_last_overdue_period(member.segment, day)) + 1)


def status_on(member: Enrolled, paid_through: Period | None, day: date) -> Status:
    """Active when at least one month is paid and no month is overdue; otherwise inactive;
    BPU and PMI terminated (lapsed) past MAX_OVERDUE_MONTHS overdue months.

    A member who never paid lapses by the same count from the registration month: the first
    months are owed like any other, so a BPU registrant who never pays is terminated on the
    16th of the third month after the registration month (registered in January: 16 April).
    A BPU or PMI worker registering after the 15th starts with that month already overdue.
    Termination for other reasons (death, JHT withdrawal) is recorded by the service, not
    derived here.
    """
    overdue = overdue_months(member, paid_through, day)
    if member.segment in SEGMENTS_LAPSING and overdue > MAX_OVERDUE_MONTHS:
        return Status("terminated", REASON_LAPSED, overdue)
    if paid_through is None:
        return Status("inactive", REASON_NO_PAYMENT, overdue)
    if overdue:
        return Status("inactive", REASON_ARREARS, overdue)
    return Status("active", None, 0)


def next_status_change(member: Enrolled, paid_through: Period | None, day: date) -> date | None:
    """The first day after `day` on which `status_on(...).status` differs, if nothing is paid
    meanwhile; None when no such day comes (terminated, or a PU/JAKON member already
    inactive, who stays so until paid).

    A change happens only the day after a due date: an active member turns inactive when the
    first unpaid month falls overdue; a BPU/PMI member is terminated when the first unpaid
    month + MAX_OVERDUE_MONTHS (the 4th overdue) falls overdue. The reason only moves with
    the status, so the day is also the first on which (status, reason) differs.
    """
    current = status_on(member, paid_through, day)
    if current.status == "terminated":
        return None
    first_unpaid = next_unpaid_period(member, paid_through)
    if current.status == "active":
        return due_date(member.segment, first_unpaid) + timedelta(days=1)
    if member.segment in SEGMENTS_LAPSING:
        lapsing_month = first_unpaid + MAX_OVERDUE_MONTHS
        return due_date(member.segment, lapsing_month) + timedelta(days=1)
    return None
