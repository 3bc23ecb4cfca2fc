"""Payment checks: whether a payment may be booked on a day, and who may pay with which
funding code.

Pure: the standard library, dues.py and shared/ only; no I/O, no pydantic. Facts from
../shared/DOMAIN.md ("Monthly dues": BPU prepays 1, 3, 6 or 12 months; "Due dates, arrears,
status": a lapsed membership pays no more; "Universal Coverage Jamsostek": funding codes).

v1 simplification: payments are contiguous from the registration month, so a payment must
start at the first unpaid month (`check_payment`) and moves `paid_through` to its last month
(`paid_through_after`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Literal

from services.contributions.dues import Dues, Member, dues_on
from services.contributions.rates import NoRatesError, Rates
from shared.field_errors import FieldError
from shared.membership import MAX_OVERDUE_MONTHS, Period, Status, next_unpaid_period, status_on

Payer = Literal["self", "employer", "government", "csr"]

# --- what one payment may cover ----------------------------------------------------------------
MIN_MONTHS_PER_PAYMENT = 1
MAX_MONTHS_PER_PAYMENT = 12
# The last month paid for may be at most this many months after the current month: prepaying
# a year ahead is normal, further is almost surely a typing error in first_period or months.
MAX_MONTHS_PAID_AHEAD = 12


# How many months one payment may cover, per segment (DOMAIN.md: BPU "may prepay 1, 3, 6 or
# 12 months"). One month is always among them, so overdue months can always be paid one by one.
# Segments not listed pay any count from MIN_MONTHS_PER_PAYMENT to MAX_MONTHS_PER_PAYMENT.
MONTHS_PER_PAYMENT: dict[str, tuple[int, ...]] = {"BPU": (1, 3, 6, 12)}


def check_months(member: Member, months: int) -> FieldError | None:
    """Whether one payment may cover `months` months in the member's segment."""
    allowed = MONTHS_PER_PAYMENT.get(member.segment)
    if allowed is None or months in allowed:
        return None
    words = [str(n) for n in allowed]
    choices = f"{', '.join(words[:-1])} or {words[-1]}"
    return FieldError("months", f"{member.segment} contributions are paid {choices} months at a "
                                f"time, not {months}")


def paid_through_after(
    paid_through: Period | None, first_period: Period, months: int
) -> Period:
    """The last month paid once `months` months from `first_period` are paid (contiguous)."""
    if months < 1:
        raise ValueError(f"months must be at least 1, not {months}")
    if paid_through is not None and first_period != paid_through + 1:
        raise ValueError(
            f"payments are contiguous: after {paid_through} the next is {paid_through + 1}, "
            f"not {first_period}"
        )
    return first_period + (months - 1)


def _rupiah(amount: int) -> str:
    return f"Rp {amount:,}"


def check_payment(
    member: Member,
    paid_through: Period | None,
    status: Status,
    first_period: Period,
    months: int,
    amount: int,
    *,
    today: date,
    table: Sequence[Rates] | None = None,
) -> tuple[Dues | None, list[FieldError]]:
    """Whether a payment may be booked on `today`: (the dues it must match, problems).

    `status` is the membership as stored (it may be terminated for death or JHT withdrawal);
    a lapse is also derived from the payment history on `today`, in case the stored status
    has not caught up yet. The dues are None when they cannot be computed (months out of
    range, a terminated membership, or a month without rates); otherwise they are
    `dues.dues_on(...)`: the dues for `months` months from the first unpaid month plus the
    late charge on those overdue on `today`, which is what `amount` must equal.
    """
    if status.status == "terminated":
        reason = f" ({status.reason})" if status.reason else ""
        return None, [FieldError(
            "participant_id",
            f"the membership is terminated{reason}; no contributions can be paid for it",
        )]
    derived = status_on(member, paid_through, today)
    if derived.status == "terminated":
        return None, [FieldError(
            "participant_id",
            f"the membership lapsed: {derived.overdue_months} months are overdue, more than "
            f"the {MAX_OVERDUE_MONTHS} that may be paid late; the worker must register anew",
        )]
    errors: list[FieldError] = []
    if not MIN_MONTHS_PER_PAYMENT <= months <= MAX_MONTHS_PER_PAYMENT:
        errors.append(FieldError(
            "months", f"must be {MIN_MONTHS_PER_PAYMENT} to {MAX_MONTHS_PER_PAYMENT}, not {months}"
        ))
    expected_first = next_unpaid_period(member, paid_through)
    if first_period != expected_first:
        why = (
            f"paid through {paid_through}" if paid_through is not None
            else "nothing paid yet; dues start in the registration month"
        )
        errors.append(FieldError(
            "first_period",
            f"must be {expected_first}, the first unpaid month ({why}), not {first_period}",
        ))
    if not MIN_MONTHS_PER_PAYMENT <= months <= MAX_MONTHS_PER_PAYMENT:
        return None, errors  # no dues to compare the amount with
    count = check_months(member, months)
    if count is not None:
        errors.append(count)
    latest_allowed = Period.of(today) + MAX_MONTHS_PAID_AHEAD
    last = expected_first + (months - 1)
    if last > latest_allowed:
        errors.append(FieldError(
            "months",
            f"would pay through {last}; contributions may be paid at most "
            f"{MAX_MONTHS_PAID_AHEAD} months ahead (through {latest_allowed})",
        ))
    try:
        dues = dues_on(member, paid_through, months, today=today, table=table)
    except NoRatesError as exc:
        return None, [*errors, FieldError("first_period", str(exc))]
    if amount != dues.amount:
        span = f"{months} month{'s' if months != 1 else ''} from {expected_first}"
        expected = (
            f"{_rupiah(dues.amount)} (dues {_rupiah(dues.programme_dues)} + late charge "
            f"{_rupiah(dues.late_charge)} for months paid after their due date) for {span}"
            if dues.late_charge else f"{_rupiah(dues.amount)}, the dues for {span}"
        )
        errors.append(FieldError("amount", f"must be {expected}, not {_rupiah(amount)}"))
    return dues, errors


# --- who pays ---------------------------------------------------------------------------------
PAYERS: tuple[Payer, ...] = ("self", "employer", "government", "csr")
# Funding codes tag the intermediary a local government or company funds workers through
# (DOMAIN.md "Universal Coverage Jamsostek").
FUNDING_CODES: dict[str, str] = {
    "SG": "government",
    "SD": "village fund (Dana Desa)",
    "SA": "village via the regional budget (APBD)",
    "SL": "other",
    "SC": "corporate",
    "SB": "bank",
}
# Which codes each payer may carry. Self and employer payments are not funded through an
# intermediary, so they carry none (a code there is refused, not silently dropped).
FUNDING_CODES_BY_PAYER: dict[str, tuple[str, ...]] = {
    "self": (),
    "employer": (),
    "government": ("SG", "SD", "SA", "SL"),
    "csr": ("SC", "SB"),
}


def check_payer(payer: str, funding_code: str | None) -> list[FieldError]:
    """Government payments need a government funding code, CSR a corporate or bank one;
    self and employer payments carry none."""
    allowed = FUNDING_CODES_BY_PAYER.get(payer)
    if allowed is None:
        return [FieldError("payer", f"must be one of {' '.join(PAYERS)}, not {payer!r}")]
    if not allowed:
        if funding_code is None:
            return []
        return [FieldError("funding_code", f"must be null when payer is {payer}")]
    choices = " ".join(allowed)
    if funding_code is None:
        return [FieldError("funding_code", f"is required when payer is {payer}: one of {choices}")]
    if funding_code not in allowed:
        known = f"{funding_code!r} is not a funding code" if funding_code not in FUNDING_CODES \
            else f"{funding_code} ({FUNDING_CODES[funding_code]}) is not for payer {payer}"
        return [FieldError("funding_code", f"{known}; use one of {choices}")]
    return []
