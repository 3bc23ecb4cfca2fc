"""Funded programmes: a local government or a company pays the dues of a quota of informal
workers of its region for some months, from a budget (DOMAIN.md, "Universal Coverage
Jamsostek": Binjai funds 5,000 vulnerable BPU workers from the city budget).

Pure: the standard library, payments.py and shared/ only; no I/O, no pydantic. The rules:
- a programme funds `months` months (1-12) from its first month (January of its year unless
  told), its `programs` among the BPU ones, JKK and JKM always (`programme_errors`);
- a worker may be enrolled when BPU, living in the funder's region, with a membership not
  terminated, in no other programme for an overlapping month, and while places are left
  (`enrolment_refusal`); the enrolment covers the programme's months from the current month on
  (`enrolment_months`);
- a payment naming a programme is a government or CSR payment under the programme's funding
  code, for months the worker is enrolled in, within what is left of the budget
  (`programme_payment_refusals`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from services.contributions.payments import FUNDING_CODES_BY_PAYER
from shared.field_errors import FieldError
from shared.membership import Period, due_date
from shared.vocabulary import FundingCode, Program

# Who may be enrolled: informal (non-wage) workers, the ones local budgets fund.
FUNDED_SEGMENTS: frozenset[str] = frozenset({"BPU"})
# What a programme may fund: the BPU programmes (DOMAIN.md), JKK and JKM always.
FUNDABLE_PROGRAMS: tuple[Program, ...] = ("JKK", "JKM", "JHT")
REQUIRED_PROGRAMS: tuple[Program, ...] = ("JKK", "JKM")
MIN_MONTHS, MAX_MONTHS = 1, 12
# Who pays under each funding code: the government or CSR payer that carries it.
PAYER_OF_FUNDING_CODE: dict[str, str] = {code: payer for payer, codes in
                                         FUNDING_CODES_BY_PAYER.items() for code in codes}
FUNDER_LEVELS = ("province", "regency", "district", "village")

# Refusals that conflict with the programme's state rather than with the request itself.
CONFLICT = 409
INVALID = 422


@dataclass(frozen=True, slots=True)
class Programme:
    """A funded programme: who funds it (region, funding code), how many workers (quota), how
    much money (budget, rupiah), which programmes and months."""

    programme_id: uuid.UUID
    name: str
    funder_region: str
    year: int
    quota: int
    budget_rupiah: int
    funding_code: FundingCode
    programs: tuple[Program, ...]
    first_period: Period
    last_period: Period

    @property
    def months(self) -> int:
        return self.first_period.months_until(self.last_period) + 1


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A worker enrolled in a programme for the months first..last."""

    programme_id: uuid.UUID
    participant_id: uuid.UUID
    first_period: Period
    last_period: Period

    def covers(self, first: Period, last: Period) -> bool:
        return self.first_period <= first and last <= self.last_period


@dataclass(frozen=True, slots=True)
class Worker:
    """What enrolment depends on, as learnt from registration events and payments."""

    participant_id: uuid.UUID
    segment: str
    region_code: str
    terminated: bool


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why something is refused: the HTTP status it answers with, and what is wrong."""

    status: int
    error: FieldError


# --- the programme ----------------------------------------------------------------------------


def programme_period(year: int, months: int, first_period: str | None
                     ) -> tuple[tuple[Period, Period] | None, list[FieldError]]:
    """The months a programme funds: `months` months from `first_period` (January of `year`
    when not given), starting within `year`."""
    errors: list[FieldError] = []
    if not MIN_MONTHS <= months <= MAX_MONTHS:
        errors.append(FieldError("months", f"must be {MIN_MONTHS} to {MAX_MONTHS}, not {months}"))
    try:
        first = Period.parse(first_period) if first_period is not None else Period(year, 1)
    except ValueError as exc:
        return None, [*errors, FieldError("first_period", str(exc))]
    if first.year != year:
        errors.append(FieldError("first_period", f"must be a month of {year}, not {first}"))
    if errors:
        return None, errors
    return (first, first + (months - 1)), []


def programme_errors(funder_level: str | None, programs: Sequence[str]) -> list[FieldError]:
    """What is wrong with a programme besides its months: the funder's region (its level, as
    the region directory says; None: no such region) and the programmes funded."""
    errors: list[FieldError] = []
    if funder_level not in FUNDER_LEVELS:
        errors.append(FieldError("funder_region", "must be a province, regency, district or "
                                                  "village code of the Kemendagri list"))
    unknown = [p for p in programs if p not in FUNDABLE_PROGRAMS]
    if unknown:
        errors.append(FieldError("programs", f"a programme funds only {' '.join(FUNDABLE_PROGRAMS)}"
                                             f" (BPU programmes), not {' '.join(unknown)}"))
    missing = [p for p in REQUIRED_PROGRAMS if p not in programs]
    if missing:
        errors.append(FieldError("programs", f"must include {' and '.join(REQUIRED_PROGRAMS)}"))
    if len(set(programs)) != len(programs):
        errors.append(FieldError("programs", "names a programme twice"))
    return errors


def within_region(region_code: str, funder_region: str) -> bool:
    """Whether a worker's village lies in the funder's region (the region or below it)."""
    return region_code == funder_region or region_code.startswith(funder_region + ".")


def paid_for_active(today: date, segment: str = "BPU") -> Period:
    """The month a worker must be paid through to be active on `today`: the latest month
    whose due date has passed, or the one before it (shared.membership.status_on)."""
    this_month = Period.of(today)
    return this_month if due_date(segment, this_month) < today else this_month - 1


def change_refusals(programme: Programme, *, quota: int, budget_rupiah: int, enrolled: int,
                    spent: int) -> list[Refusal]:
    """A programme's quota and budget may change, but never below the workers enrolled or the
    money already paid."""
    refusals: list[Refusal] = []
    if quota < enrolled:
        refusals.append(Refusal(CONFLICT, FieldError(
            "quota", f"{enrolled} workers are enrolled; the quota may not go below that")))
    if budget_rupiah < spent:
        refusals.append(Refusal(CONFLICT, FieldError(
            "budget_rupiah", f"Rp {spent:,} is spent already; the budget may not go below "
                             f"that")))
    return refusals


# --- enrolment --------------------------------------------------------------------------------


def enrolment_months(programme: Programme, today: date) -> tuple[Period, Period] | None:
    """The months an enrolment made on `today` covers: the programme's months from the current
    month on (a programme does not pay back months before the worker joined it); None when the
    programme's months are over."""
    first = max(programme.first_period, Period.of(today))
    if first > programme.last_period:
        return None
    return first, programme.last_period


def overlaps(a_first: Period, a_last: Period, b_first: Period, b_last: Period) -> bool:
    return a_first <= b_last and b_first <= a_last


def enrolment_refusal(worker: Worker, programme: Programme, today: date,
                      others: Iterable[Enrolment], enrolled: int) -> Refusal | None:
    """Why `worker` may not be enrolled in `programme` on `today` (None: it may). `others`:
    the worker's enrolments in other programmes; `enrolled`: the programme's enrolments now."""
    field = "participant_id"
    if worker.segment not in FUNDED_SEGMENTS:
        return Refusal(INVALID, FieldError(
            field, f"only BPU (informal) workers may be enrolled; this worker is "
                   f"{worker.segment}"))
    if not within_region(worker.region_code, programme.funder_region):
        return Refusal(INVALID, FieldError(
            field, f"the worker does not live in the funder's region {programme.funder_region}"))
    if worker.terminated:
        return Refusal(INVALID, FieldError(field, "the worker's membership is terminated"))
    months = enrolment_months(programme, today)
    if months is None:
        return Refusal(INVALID, FieldError(
            "programme_id", f"the programme's months ended with {programme.last_period}"))
    for other in others:
        if other.programme_id != programme.programme_id and overlaps(
                *months, other.first_period, other.last_period):
            return Refusal(CONFLICT, FieldError(
                field, f"the worker is enrolled in programme {other.programme_id} for "
                       f"{other.first_period}..{other.last_period}; one programme at a time"))
    if enrolled >= programme.quota:
        return Refusal(CONFLICT, FieldError(
            "programme_id", f"the programme is full: {programme.quota} workers enrolled"))
    return None


# --- payments naming a programme --------------------------------------------------------------


def programme_payment_refusals(programme: Programme | None, enrolment: Enrolment | None, *,
                               payer: str, funding_code: str | None, first: Period,
                               last: Period, programs: Sequence[str] = ()) -> list[FieldError]:
    """What makes a payment naming a programme wrong, besides the budget (all 422): the
    programme must exist, pay as its funder (payer and funding code), for months the worker is
    enrolled in, and only for programmes it funds (`programs`: those the dues are for)."""
    if programme is None:
        return [FieldError("programme_id", "no programme has this id")]
    errors: list[FieldError] = []
    unfunded = [p for p in programs if p not in programme.programs]
    if unfunded:
        errors.append(FieldError(
            "programme_id", f"the programme funds {' '.join(programme.programs)}; this worker's "
                            f"dues also hold {' '.join(unfunded)}"))
    funder = PAYER_OF_FUNDING_CODE[programme.funding_code]
    if payer != funder:
        errors.append(FieldError("payer", f"the programme pays as {funder}, not {payer}"))
    elif funding_code != programme.funding_code:
        errors.append(FieldError("funding_code", f"the programme's funding code is "
                                                 f"{programme.funding_code}, not {funding_code}"))
    if enrolment is None:
        errors.append(FieldError("participant_id", "the worker is not enrolled in this programme"))
    elif not enrolment.covers(first, last):
        errors.append(FieldError(
            "months", f"the worker is enrolled in this programme for {enrolment.first_period}.."
                      f"{enrolment.last_period}, not for all of {first}..{last}"))
    return errors


def budget_refusal(programme: Programme, spent: int, amount: int) -> Refusal | None:
    """A payment may not take the programme beyond its budget."""
    left = programme.budget_rupiah - spent
    if amount <= left:
        return None
    return Refusal(CONFLICT, FieldError(
        "amount", f"beyond the programme's budget: Rp {left:,} left of Rp "
                  f"{programme.budget_rupiah:,}, this payment is Rp {amount:,}"))


def months_paid(first_owed: Period, paid_through: Period | None) -> int:
    """How many months of a membership are paid in all (v1: contiguous from the registration
    month)."""
    return 0 if paid_through is None else first_owed.months_until(paid_through) + 1
