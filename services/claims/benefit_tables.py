"""Benefit figures, dated: the one place where the claims rules' regulated numbers live.

Every figure the claims rules use (JKM's Rp 42,000,000 and its parts, the education benefit,
the months and ages that gate a benefit, JKP's percent, wage cap and windows, the JP pension
ages, the JHT development rates) is a field of a row here, with the day the row took effect
and its public source. rules.py looks figures up by the claim's incident date (`in_force`)
and never writes one as a literal. When a regulation changes a figure, add a row.

Pure: standard library only. Rupiah are integers; percents are exact Decimals written as
the regulations print them ("7.19" means 7.19%). Facts from ../../shared/DOMAIN.md
("Claims and eligibility").

v1 simplifications (named, each in one place):
- EARLIEST_ROW_STANDS_IN: a date before a table's first row is judged by that first row;
  the older regulations (PP 44/2015 benefits, PP 37/2021 JKP) are not recorded.
- JHT development rates: a year before the first declared year earns the earliest declared
  rate; a year after the last year found earns the last rate found (`jht_rate_for`). The
  benefit lists, for each year, whose figure was used ("figure_of").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol, TypeVar


class Dated(Protocol):
    @property
    def effective_from(self) -> date: ...


Row = TypeVar("Row", bound=Dated)

EARLIEST_ROW_STANDS_IN = True  # v1: see the module docstring


def in_force(table: Sequence[Row], day: date) -> Row:
    """The row in force on `day`: the newest row effective on or before it; before the first
    row, the first row (EARLIEST_ROW_STANDS_IN)."""
    if not table:
        raise ValueError("an empty benefit table")
    rows = sorted(table, key=lambda row: row.effective_from)
    current = rows[0]
    for row in rows:
        if row.effective_from <= day:
            current = row
    return current


# --- JKK: work accident ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JkkBenefit:
    effective_from: date
    source: str
    full_months: int  # income replacement at full_percent for this many months ...
    full_percent: int
    later_percent: int  # ... then this percent until recovery


JKK_BENEFITS: tuple[JkkBenefit, ...] = (
    # PP 82/2019 (amending PP 44/2015), Lampiran: "santunan sementara tidak mampu bekerja"
    # 100% of the wage for the first 12 months, 50% afterwards until recovered; in force
    # from its promulgation in December 2019 (2 Dec 2019).
    JkkBenefit(date(2019, 12, 2), "PP 82/2019 Lampiran (STMB)", 12, 100, 50),
)


# --- JKM: death ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JkmBenefit:
    effective_from: date
    source: str
    lump_sum: int  # santunan sekaligus
    periodic: int  # santunan berkala, paid at once
    funeral: int  # biaya pemakaman
    education_max: int  # beasiswa, for all the children together
    education_children: int  # at most this many children
    education_min_paid_months: int  # paid by the date of death

    @property
    def amount(self) -> int:
        return self.lump_sum + self.periodic + self.funeral


JKM_BENEFITS: tuple[JkmBenefit, ...] = (
    # PP 82/2019: JKM Rp 42,000,000 = Rp 20m lump sum + Rp 12m periodic (24 x Rp 500,000,
    # paid at once) + Rp 10m funeral; education benefit up to Rp 174m for at most two
    # children, for a participant with at least 3 years (36 months) of dues. Reported by
    # BPJAMSOSTEK and the Minister of Manpower, Jan 2020 (pasundan.jabarekspres.com
    # 2020-01-18: "Rp12 juta untuk satu orang anak ... menjadi maksimal Rp174 juta untuk dua
    # orang anak"; "total manfaat santunan JKM ... menjadi Rp42 juta").
    JkmBenefit(
        date(2019, 12, 2), "PP 82/2019", 20_000_000, 12_000_000, 10_000_000,
        174_000_000, 2, 36,
    ),
)


# --- JHT: old-age savings ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JhtRule:
    effective_from: date
    source: str
    age_years: int  # the whole balance is paid at this age
    waiting_months: int  # after resigning or being laid off, before it may be claimed


JHT_RULES: tuple[JhtRule, ...] = (
    # Age 56: PP 46/2015 as amended by PP 60/2015 (JHT), Permenaker 4/2022 Art. 3-4. One
    # month's waiting after stopping work: Permenaker 19/2015, restored by Permenaker 4/2022
    # ("masa tunggu 1 (satu) bulan"). JHT under BPJS Ketenagakerjaan from 1 July 2015.
    JhtRule(date(2015, 7, 1), "PP 46/2015 jo. PP 60/2015; Permenaker 4/2022", 56, 1),
)


@dataclass(frozen=True, slots=True)
class JhtRate:
    """The JHT development rate ("hasil pengembangan JHT") BPJS Ketenagakerjaan credited to
    balances for one calendar year, in percent."""

    year: int
    percent: Decimal
    source: str

    @property
    def effective_from(self) -> date:
        return date(self.year, 1, 1)


# Searched in public reporting; BPJS Ketenagakerjaan's own yearly announcements were found for
# 2016, 2017 and 2020. Later years (2021 on) were NOT found: they are not recorded, and the
# 2020 figure stands in for them (jht_rate_for) until someone adds the declared rates.
JHT_DEVELOPMENT_RATES: tuple[JhtRate, ...] = (
    JhtRate(2016, Decimal("7.19"),
            "BPJS Ketenagakerjaan President Director Agus Susanto, Investor Gathering "
            "7 Feb 2017 (pasardana.id 2017-02-08; semarak.co)"),
    JhtRate(2017, Decimal("7.83"),
            "BPJS Ketenagakerjaan 2017 results release, 30 Jan 2018 (liputan6.com "
            "3243627); BPJS Watch later quoted 7.82"),
    JhtRate(2018, Decimal("6.26"),
            "BPJS Watch (Timboel Siregar), jagatbisnis.com 2021-02-15; kontan.co.id "
            "(Feb 2022, from the audited statements) agrees; no BPJS release found"),
    JhtRate(2019, Decimal("6.06"),
            "BPJS Watch (Timboel Siregar), jagatbisnis.com 2021-02-15; UNCONFIRMED: "
            "kontan.co.id (Feb 2022, from the statements) says 6.08; no BPJS release found"),
    JhtRate(2020, Decimal("5.63"),
            "BPJAMSOSTEK (branch head Seto Tjahjono), kabarpriangan.pikiran-rakyat.com "
            "2021-01-28; BPJS Watch agrees; kontan.co.id says 5.59"),
)


def jht_rate_for(year: int, table: Sequence[JhtRate] = JHT_DEVELOPMENT_RATES) -> JhtRate:
    """The rate credited for `year`: its own declared row; before the first row the earliest
    row; after the last row the last row (both v1, see the module docstring)."""
    rows = sorted(table, key=lambda row: row.year)
    if not rows:
        raise ValueError("an empty JHT rate table")
    for row in rows:
        if row.year == year:
            return row
    return rows[0] if year < rows[0].year else rows[-1]


# --- JP: pension -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JpPensionAge:
    effective_from: date
    source: str
    age_years: int


_PP_45_2015_ART_15 = "PP 45/2015 Art. 15"
# Art. 15: 56 at first (JP began 1 July 2015); 57 from 1 January 2019; then one year more
# every three years until 65 (reached in 2043). Written out year by year, not as a formula.
JP_PENSION_AGES: tuple[JpPensionAge, ...] = (
    JpPensionAge(date(2015, 7, 1), _PP_45_2015_ART_15 + "(1)", 56),
    JpPensionAge(date(2019, 1, 1), _PP_45_2015_ART_15 + "(2)", 57),
    JpPensionAge(date(2022, 1, 1), _PP_45_2015_ART_15 + "(3)", 58),
    JpPensionAge(date(2025, 1, 1), _PP_45_2015_ART_15 + "(3)", 59),
    JpPensionAge(date(2028, 1, 1), _PP_45_2015_ART_15 + "(3)", 60),
    JpPensionAge(date(2031, 1, 1), _PP_45_2015_ART_15 + "(3)", 61),
    JpPensionAge(date(2034, 1, 1), _PP_45_2015_ART_15 + "(3)", 62),
    JpPensionAge(date(2037, 1, 1), _PP_45_2015_ART_15 + "(3)", 63),
    JpPensionAge(date(2040, 1, 1), _PP_45_2015_ART_15 + "(3)", 64),
    JpPensionAge(date(2043, 1, 1), _PP_45_2015_ART_15 + "(3), the cap", 65),
)


@dataclass(frozen=True, slots=True)
class JpBenefit:
    effective_from: date
    source: str
    pension_min_paid_months: int  # a monthly pension needs this many paid months
    accrual_percent_per_year: Decimal  # of the wage, per year of dues


JP_BENEFITS: tuple[JpBenefit, ...] = (
    # PP 45/2015: a monthly old-age pension needs a contribution period of at least 15 years
    # (180 months), otherwise contributions plus development are paid at once; the formula is
    # 1% x contribution years x the average indexed wage (Art. 17(2)).
    JpBenefit(date(2015, 7, 1), "PP 45/2015 Art. 17", 180, Decimal("1")),
)


# --- JKP: job loss -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class JkpBenefit:
    effective_from: date
    source: str
    percent: int  # of the last reported wage ...
    wage_cap: int  # ... capped at this
    months: int  # paid for at most this many months
    filing_window_months: int  # the claim must be filed within this many months of the layoff


JKP_BENEFITS: tuple[JkpBenefit, ...] = (
    # PP 6/2025 (amending PP 37/2021), in force on promulgation 7 Feb 2025: Art. 21 60% of
    # the last reported wage, capped at Rp 5,000,000, for at most 6 months; Art. 40 the right
    # lapses if not claimed within 6 months of the layoff (was 3 months, and 45%/25%, under
    # PP 37/2021). Reported by okezone.com 2025-02-16 and wahananews.co, quoting Art. 21.
    JkpBenefit(date(2025, 2, 7), "PP 6/2025 Art. 21 and 40", 60, 5_000_000, 6, 6),
)

ALL_TABLES: tuple[Sequence[Dated], ...] = (
    JKK_BENEFITS, JKM_BENEFITS, JHT_RULES, JHT_DEVELOPMENT_RATES, JP_PENSION_AGES,
    JP_BENEFITS, JKP_BENEFITS,
)
