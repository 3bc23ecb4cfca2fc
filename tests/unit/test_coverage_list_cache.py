"""A list answer is built once per state and served as is until the counters, a workforce
figure, a target or the forecasts move: never an out-of-date answer."""

from __future__ import annotations

from datetime import date

from services.coverage.counting import CounterCell
from services.coverage.live_coverage import LiveCoverage
from services.coverage.region_coverage import WorkforceFigure

VILLAGE = "12.75.01.1001"


def test_an_answer_is_remembered_until_what_it_is_built_from_moves():
    live = LiveCoverage()
    live.today = lambda: date(2026, 11, 20)
    built: list[int] = []

    def answer() -> bytes:
        regency = live.coverage([live.regions.get("12.75")])[0]  # type: ignore[list-item]
        built.append(regency.active)
        return f"{regency.active}/{regency.workforce}".encode()

    request = ("regency", "12", None, "code", "asc", None, None)
    assert live.remembered(request, answer) == b"0/None"
    assert live.remembered(request, answer) == b"0/None" and len(built) == 1  # served as is
    live.view.apply([CounterCell(0, VILLAGE, "active", 3)])
    assert live.remembered(request, answer) == b"3/None"  # the counters moved
    live.workforce.put("12.75", WorkforceFigure(132_826, 2024, "BPS Sakernas"))
    assert live.remembered(request, answer) == b"3/132826"  # a figure came
    assert live.remembered(("other",), answer) == b"3/132826" and len(built) == 4
    live.today = lambda: date(2026, 11, 21)  # another day: the year of figures may change
    live.remembered(request, answer)
    assert len(built) == 5
