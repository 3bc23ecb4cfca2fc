"""Contribution rates, dated: the one place where regulated percentages and ceilings live.

Rates change by regulation (the JP wage ceiling is re-indexed every year), so each set of
figures carries the day it took effect and dues for a month are computed with the figures in
force on that month's first day (see `rates_on`). Add a new `Rates` entry to RATE_TABLE when a
regulation changes a figure; never write a rate as a literal anywhere else.

Pure: standard library only. Percentages are exact Decimals (fractions of 1, not percents);
rupiah amounts are integers. Facts from ../shared/DOMAIN.md "Monthly dues".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

RISK_CLASSES = (1, 2, 3, 4, 5)  # the employer's work-accident risk class (PP 44/2015)


def percent(text: str) -> Decimal:
    """'0.24' → Decimal('0.0024'): written as the regulations print them, stored as fractions."""
    return Decimal(text) / 100


@dataclass(frozen=True, slots=True)
class Rates:
    """Every figure dues depend on, as in force from `effective_from`."""

    effective_from: date
    # PU (and JAKON, v1) JKK by the employer's risk class 1..5, index 0 = class 1.
    pu_jkk_by_risk_class: tuple[Decimal, ...]
    # JKK is this much lower for a worker enrolled in JKP: the JKP recomposition.
    jkp_jkk_reduction: Decimal
    pu_jkm: Decimal
    pu_jht: Decimal  # employer + worker share: the payer's dues are the whole
    pu_jp: Decimal  # employer + worker share, on the wage up to jp_wage_ceiling
    jp_wage_ceiling: int
    # PU arrears: this much of a month's dues for each month it is paid late (dues.late_charge).
    pu_late_charge_per_month: Decimal
    bpu_jkk: Decimal
    bpu_jkm_flat: int
    bpu_jht: Decimal
    bpu_min_income: int  # dues are never computed on less (the floor)
    bpu_max_income: int  # nor on more (JKK reaches its cap here)
    pmi_monthly: int
    jakon_default_risk_class: int
    pu_default_risk_class: int

    def __post_init__(self) -> None:
        if len(self.pu_jkk_by_risk_class) != len(RISK_CLASSES):
            raise ValueError(f"pu_jkk_by_risk_class needs one rate per class {RISK_CLASSES}")
        if min(self.pu_jkk_by_risk_class) < self.jkp_jkk_reduction:
            raise ValueError("jkp_jkk_reduction is larger than a JKK rate")
        for name in ("jakon_default_risk_class", "pu_default_risk_class"):
            if getattr(self, name) not in RISK_CLASSES:
                raise ValueError(f"{name} must be one of {RISK_CLASSES}")
        if self.pu_late_charge_per_month < 0:
            raise ValueError("pu_late_charge_per_month may not be negative")
        if not 0 < self.bpu_min_income <= self.bpu_max_income:
            raise ValueError("bpu_min_income must be positive and at most bpu_max_income")

    def pu_jkk(self, risk_class: int, *, with_jkp: bool) -> Decimal:
        """JKK for a wage earner in `risk_class`, lowered when the worker is in JKP."""
        if risk_class not in RISK_CLASSES:
            raise ValueError(f"risk class must be one of {RISK_CLASSES}, not {risk_class!r}")
        rate = self.pu_jkk_by_risk_class[risk_class - 1]
        return rate - self.jkp_jkk_reduction if with_jkp else rate


# --- the table --------------------------------------------------------------------------------
# One entry per change of any figure, effective from the day the regulation applies.
#
# From 1 March 2024 (JP wage ceiling Rp 10,042,300, the yearly re-index under PP 45/2015; the
# earlier ceiling is not recorded here, so dues before March 2024 cannot be computed and
# rates_on says so):
# - PU JKK 0.24/0.54/0.89/1.27/1.74% by risk class, JKM 0.30% (PP 44/2015);
#   JKK 0.14 points lower for JKP members, JKP itself funded by government and by that
#   recomposition, so not in the payer's dues (PP 37/2021 as amended by PP 6/2025 and
#   PP 49/2023 Art. 16A, DOMAIN.md).
#   v1 simplification: the JKP recomposition is applied as DOMAIN.md states it (0.36% JKP, JKK
#   only) for the whole entry, although PP 6/2025 took effect in February 2025.
# - PU JHT 5.7% (3.7 employer + 2 worker, PP 46/2015); JP 3% (2 + 1, PP 45/2015) on the
#   wage up to the ceiling.
# - PU late charge 2% of a month's dues for each month it is paid late, paid with the next
#   dues (DOMAIN.md; the Covid relief of PP 49/2020 lowered it to 0.5% for a time, the kind of
#   change a new entry records). BPU has no late penalty; JAKON and PMI have none in v1.
# - BPU JKK 1% of declared income (at least Rp 1,000,000; JKK at most Rp 207,000, hence at
#   most Rp 20,700,000), JKM flat Rp 6,800, JHT 2% (Permenaker 5/2021).
# - PMI v1 simplification: Rp 13,500 a month, the per-extra-month price of the PMI package
#   (Permenaker 4/2023); the real pre-placement and 6/12/24-month packages are not modelled.
# - JAKON v1 simplification: PU rates on the declared wage, risk class 5 unless stated
#   (the real per-project dues on contract value are not modelled).
# - PU default risk class 1, v1 simplification: the registration contract carries no risk
#   class for PU employers, so a PU member without one is charged at the lowest class.
RATES_2024_03 = Rates(
    effective_from=date(2024, 3, 1),
    pu_jkk_by_risk_class=(
        percent("0.24"), percent("0.54"), percent("0.89"), percent("1.27"), percent("1.74"),
    ),
    jkp_jkk_reduction=percent("0.14"),
    pu_jkm=percent("0.30"),
    pu_jht=percent("5.7"),
    pu_jp=percent("3"),
    jp_wage_ceiling=10_042_300,
    pu_late_charge_per_month=percent("2"),
    bpu_jkk=percent("1"),
    bpu_jkm_flat=6_800,
    bpu_jht=percent("2"),
    bpu_min_income=1_000_000,
    bpu_max_income=20_700_000,
    pmi_monthly=13_500,
    jakon_default_risk_class=5,
    pu_default_risk_class=1,
)

# From 1 March 2025: the JP wage ceiling re-indexed by 2024's GDP growth (5.03%, BPS release
# 17/02/Th. XXVIII) to Rp 10,547,400 (BPJS Ketenagakerjaan notification B/91/022025 under
# PP 45/2015 Art. 29). Every other figure as before.
# The March 2026 re-index is not recorded: no published figure was found when this entry was
# written, so months from March 2026 are charged at the 2025 ceiling until an entry is added.
RATES_2025_03 = replace(RATES_2024_03, effective_from=date(2025, 3, 1), jp_wage_ceiling=10_547_400)

RATE_TABLE: tuple[Rates, ...] = (RATES_2024_03, RATES_2025_03)


class NoRatesError(LookupError):
    """No entry of the rate table is in force on the day asked about."""


def rates_on(day: date, table: Sequence[Rates] | None = None) -> Rates:
    """The rates in force on `day`: the newest entry effective on or before it.

    `table` defaults to RATE_TABLE, read at call time (so tests may substitute it); entries
    need not be sorted. Raises NoRatesError when every entry starts after `day`.
    """
    entries = RATE_TABLE if table is None else table
    in_force = [r for r in entries if r.effective_from <= day]
    if not in_force:
        earliest = min((r.effective_from for r in entries), default=None)
        since = f"; the rate table starts on {earliest.isoformat()}" if earliest else ""
        raise NoRatesError(f"no contribution rates are known for {day.isoformat()}{since}")
    return max(in_force, key=lambda r: r.effective_from)
