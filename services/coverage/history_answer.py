"""A region's history points (history.py) as the API answers them (schemas.RegionHistory)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from services.coverage.history import HistoryPoint, Step
from services.coverage.schemas import HistoryPointOut, RegionHistory
from shared.regions import Region


def history_answer(region: Region, step: Step, start: date, end: date,
                   points: Sequence[HistoryPoint]) -> RegionHistory:
    return RegionHistory.model_validate({
        "region": region.public(), "step": step, "from": start, "to": end,
        "points": [HistoryPointOut(
            period=p.period, period_end=p.period_end, taken_at=p.snapshot.taken_at.isoformat(),
            registered=p.snapshot.registered, active=p.snapshot.active,
            inactive=p.snapshot.inactive, terminated=p.snapshot.terminated,
            workforce=p.snapshot.workforce, ucj=p.ucj, net_growth=p.net_growth)
            for p in points]})
