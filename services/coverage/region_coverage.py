"""One region's coverage, as the contract shapes it: its counters, its workforce figure, UCJ,
the gap to a target and its claims per programme. Pure: the API renders what this returns."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, get_args

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


def ucj_ratio(active: int, workforce: int | None) -> float | None:
    """UCJ = active participants / working population; None without a workforce figure."""
    if not workforce:
        return None
    return round(active / workforce, 6)


def gap_to_target(active: int, workforce: int | None, target: float) -> int | None:
    """How many more active workers the region needs to reach `target` (a fraction, 0.5115).

    Decimal, not float: 0.3 * 10 must need 3 workers, not 4.
    """
    if not workforce:
        return None
    needed = math.ceil(Decimal(str(target)) * workforce)
    return max(0, needed - active)


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
) -> dict[str, Any]:
    active = counters.get("active", 0)
    figure = workforce.workforce if workforce else None
    body: dict[str, Any] = {
        "region": dict(region),
        "workforce": figure,
        "workforce_year": workforce.year if workforce else None,
        "workforce_source": workforce.source if workforce else None,
        "registered": counters.get("registered", 0),
        "active": active,
        "inactive": counters.get("inactive", 0),
        "terminated": counters.get("terminated", 0),
        "by_segment": {
            segment: {"registered": counters.get(f"{segment}.registered", 0),
                      "active": counters.get(f"{segment}.active", 0)}
            for segment in SEGMENTS
        },
        "claims": claims_of(counters),
        "ucj": ucj_ratio(active, figure),
        "updated_at": updated_at.isoformat() if updated_at else None,
    }
    if target is not None:
        body["target"] = target
        body["gap_to_target"] = gap_to_target(active, figure, target)
    return body
