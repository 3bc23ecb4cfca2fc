"""One region's coverage, as the contract shapes it: its counters, its workforce figure, UCJ,
its target, the gap to it in people, its band and its claims per programme. Pure: the API
renders what this returns.

Units: `ucj` and `target` in an answer are fractions (0.371); a stored target (`ucj_target`,
PUT /v1/targets) is a percent (37.10), as the plans publish it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Protocol, TypeVar, get_args

from shared.vocabulary import PROGRAMS, SEGMENTS, ClaimStatus

CLAIM_STATUSES: tuple[ClaimStatus, ...] = get_args(ClaimStatus)
BENEFIT_PAID = "benefit_paid"
CLAIM_COUNTERS = "claims."  # the prefix of every claim counter


@dataclass(frozen=True, slots=True)
class WorkforceFigure:
    """The working population of a region (BPS Sakernas, once a year), with year and source."""

    workforce: int
    year: int
    source: str


@dataclass(frozen=True, slots=True)
class UcjTarget:
    """A region's UCJ target for a year (RPJMN, RKP, a regional plan), in percent: 37.10."""

    ucj_target: Decimal
    year: int
    source: str


class _Yearly(Protocol):
    @property
    def year(self) -> int: ...


Y = TypeVar("Y", bound=_Yearly)

# Why a region has no UCJ (`ucj_missing_reason`).
NO_WORKFORCE = "no_workforce"  # no figure of its own for the year or before, and no children
CHILDREN_INCOMPLETE = "children_incomplete"  # no figure of its own, and a child region lacks one

# UCJ bands. DOMAIN.md calls 30–49% "low" (Padang Lawas Utara, 33.07%); the others are ours.
Band = Literal["very_low", "low", "medium", "high"]
BANDS: tuple[tuple[Decimal, Band], ...] = (  # (lowest UCJ of the band, as a fraction, band)
    (Decimal("0.75"), "high"), (Decimal("0.50"), "medium"), (Decimal("0.30"), "low"),
    (Decimal("0"), "very_low"),
)


def band_of(ucj: float | None) -> Band | None:
    """very_low below 30%, low 30% to under 50%, medium 50% to under 75%, high from 75%;
    None without a UCJ."""
    if ucj is None:
        return None
    value = Decimal(str(ucj))
    return next(band for lowest, band in BANDS if value >= lowest)


def latest_for(figures: Mapping[int, Y] | None, year: int) -> Y | None:
    """The figure of the latest year at or before `year` (a survey not yet made doesn't count)."""
    if not figures:
        return None
    years = [y for y in figures if y <= year]
    return figures[max(years)] if years else None


def workforce_for(
    code: str,
    year: int,
    figures_of: Callable[[str], Mapping[int, WorkforceFigure] | None],
    children_of: Callable[[str], Sequence[str]],
    known: dict[str, WorkforceFigure | None] | None = None,
) -> WorkforceFigure | None:
    """The region's workforce in `year`: its own latest figure at or before the year, else the
    sum of its children's when every child has one (their own or summed in turn), else None.
    `known` remembers the answers of one request's regions."""
    if known is not None and code in known:
        return known[code]
    figure = latest_for(figures_of(code), year)
    if figure is None:
        children = children_of(code)
        parts: list[WorkforceFigure] = []
        for child in children:
            part = workforce_for(child, year, figures_of, children_of, known)
            if part is None:
                break
            parts.append(part)
        if children and len(parts) == len(children):
            figure = WorkforceFigure(
                workforce=sum(p.workforce for p in parts), year=max(p.year for p in parts),
                source=f"sum of the figures of its {len(parts)} regions")
    if known is not None:
        known[code] = figure
    return figure


def ucj_missing_reason(workforce: WorkforceFigure | None, has_children: bool) -> str | None:
    if workforce is not None:
        return None
    return CHILDREN_INCOMPLETE if has_children else NO_WORKFORCE


def ucj_ratio(active: int, workforce: int | None) -> float | None:
    """UCJ = active participants / working population; None without a workforce figure."""
    if not workforce:
        return None
    return round(active / workforce, 6)


def gap_to_target(active: int, workforce: int | None, target: float) -> int | None:
    """How many more active workers the region needs to reach `target` (a fraction, 0.5115).

    Decimal, not float: 0.3 * 10 must need 3 workers, not 4.
    """
    return gap_people(active, workforce, Decimal(str(target)))


def gap_people(active: int, workforce: int | None, target: Decimal | None) -> int | None:
    """Active workers still needed to reach `target` (a fraction): ceil(target × workforce) −
    active, never negative; None without a workforce figure or a target."""
    if not workforce or target is None:
        return None
    return max(0, math.ceil(target * workforce) - active)


def target_fraction(target: UcjTarget) -> Decimal:
    """37.10 (percent) → 0.371."""
    return target.ucj_target / 100


def claim_counter(program: str, name: str) -> str:
    """The counter the coverage workers keep for a programme's claims: `claims.JKK.approved`
    (claims whose current status it is) or `claims.JKK.benefit_paid` (rupiah)."""
    return f"{CLAIM_COUNTERS}{program}.{name}"


_CLAIM_NAMES = {program: {name: claim_counter(program, name)
                          for name in (*CLAIM_STATUSES, BENEFIT_PAID)} for program in PROGRAMS}


def claims_of(counters: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Every programme's claims by status, and the benefits paid on them; zeros when none."""
    return {program: {name: counters.get(counter, 0) for name, counter in names.items()}
            for program, names in _CLAIM_NAMES.items()}


def coverage_of(
    region: Mapping[str, str],
    counters: Mapping[str, int],
    updated_at: datetime | None,
    workforce: WorkforceFigure | None,
    *,
    target: float | None = None,
    ucj_target: UcjTarget | None = None,
    missing_reason: str | None = NO_WORKFORCE,
) -> dict[str, Any]:
    """`target` (a fraction, from ?target=) overrides the region's `ucj_target` for the year;
    `missing_reason` says why there is no UCJ when `workforce` is None."""
    active = counters.get("active", 0)
    figure = workforce.workforce if workforce else None
    ucj = ucj_ratio(active, figure)
    fraction: Decimal | None = None
    if target is not None:
        fraction = Decimal(str(target))
    elif ucj_target is not None:
        fraction = target_fraction(ucj_target)
    body: dict[str, Any] = {
        "region": dict(region),
        "workforce": figure,
        "workforce_year": workforce.year if workforce else None,
        "workforce_source": workforce.source if workforce else None,
        "registered": counters.get("registered", 0),
        "active": active,
        "inactive": counters.get("inactive", 0),
        "terminated": counters.get("terminated", 0),
        "kpi_active": counters.get("kpi_active", 0),
        "by_segment": {
            segment: {"registered": counters.get(f"{segment}.registered", 0),
                      "active": counters.get(f"{segment}.active", 0)}
            for segment in SEGMENTS
        },
        "claims": claims_of(counters),
        "ucj": ucj,
        "ucj_missing_reason": None if ucj is not None else missing_reason or NO_WORKFORCE,
        "band": band_of(ucj),
        "updated_at": updated_at.isoformat() if updated_at else None,
    }
    # Without a target the target fields are left out (the API answers without unset fields),
    # as `target` was before regions had targets of their own.
    if fraction is not None:
        body["target"] = float(round(fraction, 6))
        body["target_year"] = ucj_target.year if target is None and ucj_target else None
        body["target_source"] = ucj_target.source if target is None and ucj_target else None
        body["gap_people"] = gap_people(active, figure, fraction)
    if target is not None:  # the older name of gap_people, kept for ?target= callers
        body["gap_to_target"] = gap_to_target(active, figure, target)
    return body


def target_in_force(by_year: Mapping[int, UcjTarget], year: int) -> UcjTarget | None:
    """The target of `year`, else of the latest earlier year (a plan for this year not entered
    yet: the last one known holds, and `target_year` says which); None before any."""
    earlier = [y for y in by_year if y <= year]
    return by_year[max(earlier)] if earlier else None
