"""UCJ targets, the gap in people, bands, workforce years and their roll-up, and the CSV imports
of workforce figures and targets: pure functions, no database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.coverage.csv_import import target_rows, workforce_rows
from services.coverage.live_coverage import LiveCoverage
from services.coverage.region_coverage import (
    CHILDREN_INCOMPLETE,
    NO_WORKFORCE,
    UcjTarget,
    WorkforceFigure,
    band_of,
    coverage_of,
    gap_people,
    latest_for,
    target_fraction,
    ucj_missing_reason,
    ucj_ratio,
    workforce_for,
)
from services.coverage.schemas import TargetIn
from shared.problems import Problem
from shared.regions import directory

BINJAI = {"code": "12.75", "name": "Kota Binjai", "level": "regency"}
BINJAI_WORKFORCE = WorkforceFigure(132826, 2024, "BPJS Ketenagakerjaan Cabang Binjai")
BINJAI_2025 = UcjTarget(Decimal("37.10"), 2025, "RPJMD Kota Binjai")


# --- the figures ----------------------------------------------------------------------

def test_binjai_43833_active_of_132826_is_33_percent():
    assert round(ucj_ratio(43833, 132826) * 100, 2) == 33.00  # type: ignore[operator]


def test_binjai_needs_5446_more_active_workers_to_reach_37_10_percent():
    assert gap_people(43833, 132826, target_fraction(BINJAI_2025)) == 5446
    body = coverage_of(BINJAI, {"active": 43833}, None, BINJAI_WORKFORCE, ucj_target=BINJAI_2025)
    assert body["ucj"] == 0.330003
    assert body["target"] == 0.371
    assert (body["target_year"], body["target_source"]) == (2025, "RPJMD Kota Binjai")
    assert body["gap_people"] == 5446
    assert body["band"] == "low"


# --- the gap in people ------------------------------------------------------------------------

def test_the_gap_is_rounded_up_to_whole_people():
    # 37.10% of 132,826 is 49,278.446 people: 49,279 must be active.
    assert gap_people(0, 132826, Decimal("0.371")) == 49279
    assert gap_people(0, 100, Decimal("0.0701")) == 8


def test_the_gap_is_never_negative_once_the_target_is_reached():
    assert gap_people(60000, 132826, Decimal("0.371")) == 0


def test_the_gap_is_null_without_workforce_or_target():
    assert gap_people(10, None, Decimal("0.5")) is None
    assert gap_people(10, 1000, None) is None
    body = coverage_of(BINJAI, {"active": 1}, None, None, ucj_target=BINJAI_2025)
    assert body["gap_people"] is None and body["target"] == 0.371


def test_without_a_target_the_target_fields_are_left_out():
    body = coverage_of(BINJAI, {"active": 1}, None, BINJAI_WORKFORCE)
    assert not {"target", "target_year", "target_source", "gap_people",
                "gap_to_target"} & set(body)


def test_a_target_asked_in_the_query_overrides_the_regions_own():
    body = coverage_of(BINJAI, {"active": 43833}, None, BINJAI_WORKFORCE, target=0.3248,
                       ucj_target=BINJAI_2025)
    assert body["target"] == 0.3248
    assert body["target_year"] is None and body["target_source"] is None
    assert body["gap_people"] == body["gap_to_target"] == 0  # ceil(0.3248 × 132826) = 43,142
    assert coverage_of(BINJAI, {}, None, BINJAI_WORKFORCE, target=0.3248)["gap_people"] == 43142


# --- bands ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("ucj", "band"), [
    (0.0, "very_low"), (0.299999, "very_low"), (0.30, "low"), (0.3307, "low"),
    (0.499999, "low"), (0.50, "medium"), (0.749999, "medium"), (0.75, "high"), (1.2, "high"),
    (None, None),
])
def test_bands_of_ucj(ucj, band):
    assert band_of(ucj) == band


def test_padang_lawas_utara_at_33_07_percent_is_in_the_low_band():
    assert band_of(ucj_ratio(24821, 75045)) == "low"


# --- workforce years and the roll-up ----------------------------------------------------------

def figure(workforce: int, year: int) -> WorkforceFigure:
    return WorkforceFigure(workforce, year, "BPS Sakernas")


def test_ucj_uses_the_latest_figure_at_or_before_the_year():
    figures = {2023: figure(100, 2023), 2024: figure(110, 2024), 2027: figure(150, 2027)}
    assert latest_for(figures, 2026) == figure(110, 2024)
    assert latest_for(figures, 2027) == figure(150, 2027)
    assert latest_for(figures, 2022) is None
    assert latest_for(None, 2026) is None


TREE = {"R": ["D1", "D2"], "D1": ["V1", "V2"], "D2": [], "V1": [], "V2": []}


def rolled(code: str, figures: dict[str, dict[int, WorkforceFigure]], year: int = 2026):
    return workforce_for(code, year, figures.get, lambda c: TREE.get(c, []), {})


def test_a_region_without_its_own_figure_sums_its_childrens():
    got = rolled("R", {"D1": {2024: figure(300, 2024)}, "D2": {2025: figure(200, 2025)}})
    assert got is not None and (got.workforce, got.year) == (500, 2025)
    assert got.source == "sum of the figures of its 2 regions"


def test_the_sum_goes_down_as_many_levels_as_needed():
    got = rolled("R", {"V1": {2024: figure(10, 2024)}, "V2": {2024: figure(5, 2024)},
                       "D2": {2024: figure(7, 2024)}})
    assert got is not None and got.workforce == 22


def test_a_regions_own_figure_wins_over_its_childrens_sum():
    got = rolled("R", {"R": {2024: figure(1000, 2024)}, "D1": {2024: figure(1, 2024)},
                       "D2": {2024: figure(1, 2024)}})
    assert got == figure(1000, 2024)


def test_no_sum_while_a_child_has_no_figure():
    assert rolled("R", {"D1": {2024: figure(300, 2024)}}) is None
    assert rolled("R", {"D1": {2024: figure(300, 2024)}, "D2": {2027: figure(1, 2027)}}) is None
    assert ucj_missing_reason(None, has_children=True) == CHILDREN_INCOMPLETE
    assert ucj_missing_reason(None, has_children=False) == NO_WORKFORCE
    assert ucj_missing_reason(figure(1, 2024), has_children=True) is None


def test_ucj_missing_reason_is_given_only_without_ucj():
    assert coverage_of(BINJAI, {}, None, None, missing_reason=CHILDREN_INCOMPLETE)[
        "ucj_missing_reason"] == CHILDREN_INCOMPLETE
    body = coverage_of(BINJAI, {}, None, BINJAI_WORKFORCE)
    assert body["ucj_missing_reason"] is None and body["band"] == "very_low"


def test_live_coverage_sums_the_districts_and_shows_this_years_target():
    live = LiveCoverage()
    live.today = lambda: date(2025, 6, 1)
    districts = [r.code for r in directory().children("12.75")]
    for i, code in enumerate(districts):
        live.workforce.put(code, figure(1000 + i, 2024))
    live.targets.put("12.75", UcjTarget(Decimal("32.48"), 2024, "RPJMD"))
    live.targets.put("12.75", BINJAI_2025)
    region = directory().get("12.75")
    assert region is not None
    body = live.coverage([region])[0]
    assert body.workforce == sum(1000 + i for i in range(len(districts)))
    assert body.target == 0.371 and body.target_year == 2025
    province = live.coverage([directory().get("12")])[0]  # type: ignore[list-item]
    assert province.ucj is None and province.ucj_missing_reason == CHILDREN_INCOMPLETE
    live.today = lambda: date(2026, 1, 1)  # none for 2026 yet: 2025's holds, and says so
    later = live.coverage([region])[0]
    assert later.target == 0.371 and later.target_year == 2025
    live.today = lambda: date(2023, 6, 1)  # before any target
    assert live.coverage([region])[0].target is None


# --- targets as sent --------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    {"year": 2025, "ucj_target": 100.5, "source": "RPJMN"},
    {"year": 2025, "ucj_target": -0.01, "source": "RPJMN"},
    {"year": 1999, "ucj_target": 30, "source": "RPJMN"},
    {"year": 2101, "ucj_target": 30, "source": "RPJMN"},
    {"year": 2025, "ucj_target": 30.12345, "source": "RPJMN"},
    {"year": 2025, "ucj_target": "30", "source": "RPJMN"},
    {"year": 2025, "ucj_target": 30, "source": "  "},
    {"year": 2025, "ucj_target": 30},
])
def test_targets_outside_0_to_100_percent_or_2000_to_2100_are_refused(body):
    with pytest.raises(ValidationError):
        TargetIn.model_validate(body)


def test_a_target_keeps_its_decimals_exactly():
    target = TargetIn.model_validate({"year": 2025, "ucj_target": 37.1, "source": "RPJMD"})
    assert target.percent() == Decimal("37.1")
    assert TargetIn.model_validate({"year": 2100, "ucj_target": 100, "source": "x"}).percent() \
        == Decimal("100")


# --- CSV imports ------------------------------------------------------------------------------

REGIONS = directory()


def refused(body: bytes, parse=workforce_rows) -> Problem:
    with pytest.raises(Problem) as caught:
        parse(body, REGIONS)
    assert caught.value.status == 422
    return caught.value


def test_a_workforce_file_gives_every_row():
    body = ("\ufeffcode,year,workforce,source\r\n12.75,2024,132826,BPS Sakernas\r\n\r\n"
            '12.71,2023,"1215000","Disnaker, Kota Medan"\r\n').encode()
    assert workforce_rows(body, REGIONS) == [
        ("12.75", WorkforceFigure(132826, 2024, "BPS Sakernas")),
        ("12.71", WorkforceFigure(1215000, 2023, "Disnaker, Kota Medan"))]


def test_a_targets_file_gives_every_row_in_percent():
    body = b"code,year,ucj_target,source\n12.75,2024,32.48,RPJMD\n12.75,2025,37.10,RPJMD\n"
    assert target_rows(body, REGIONS) == [
        ("12.75", UcjTarget(Decimal("32.48"), 2024, "RPJMD")),
        ("12.75", UcjTarget(Decimal("37.1"), 2025, "RPJMD"))]


def test_every_bad_row_is_listed_with_its_number_and_why():
    body = (b"code,year,workforce,source\n"
            b"12.75,2024,132826,BPS\n"      # row 2: good
            b"99.99,2024,1000,BPS\n"        # row 3: no such region
            b"12.7x,2024,1000,BPS\n"        # row 4: not a code
            b"12.71,2024,-5,BPS\n"          # row 5: negative
            b"12.71,2024,999999999999,BPS\n"  # row 6: absurd
            b"12.71,1999,1000,BPS\n"        # row 7: year
            b"12.71,2024,12.5,BPS\n"        # row 8: not whole
            b"12.71,2024,1000\n"            # row 9: a field short
            b"12.75,2024,5,BPS\n")          # row 10: repeats row 2
    problem = refused(body)
    assert problem.extra["bad_rows"] == [3, 4, 5, 6, 7, 8, 9, 10]
    why = {(e["row"], e["field"]) for e in problem.errors}
    assert why == {("3", "code"), ("4", "code"), ("5", "workforce"), ("6", "workforce"),
                   ("7", "year"), ("8", "workforce"), ("9", "row"), ("10", "row")}
    assert "row 3 code" in (problem.detail or "")


def test_a_target_outside_0_to_100_percent_is_a_bad_row():
    problem = refused(b"code,year,ucj_target,source\nID,2025,32.15,RPJMN\n12,2025,101,x\n"
                      b"12,2101,50,x\n12.75,2025,abc,x\n", target_rows)
    assert problem.extra["bad_rows"] == [3, 4, 5]


@pytest.mark.parametrize("body", [
    b"region,year,workforce,source\n12.75,2024,1,BPS\n",
    b"code,year,ucj_target,source\n12.75,2024,1,BPS\n",
    b"code;year;workforce;source\n",
    b"",
])
def test_a_file_with_the_wrong_header_is_refused(body):
    assert refused(body).errors[0]["field"] == "header"


def test_a_file_not_in_utf8_is_refused():
    problem = refused("code,year,workforce,source\n12.75,2024,1,Badan Pusat Statistik é\n"
                      .encode("latin-1"))
    assert problem.errors[0]["field"] == "file" and "UTF-8" in (problem.detail or "")


def test_a_file_with_only_its_header_is_refused():
    assert refused(b"code,year,workforce,source\n\n").errors[0]["message"] == "has no rows"


def test_a_source_with_control_characters_is_a_bad_row():
    problem = refused(b"code,year,workforce,source\n12.75,2024,1,BPS\x07\n")
    assert problem.errors[0]["field"] == "source"


def test_the_target_in_force_is_this_years_else_the_latest_earlier_one():
    from services.coverage.region_coverage import UcjTarget, target_in_force

    by_year = {2024: UcjTarget(ucj_target=32.48, year=2024, source="RPJMD"),
               2025: UcjTarget(ucj_target=37.10, year=2025, source="RPJMD")}
    assert target_in_force(by_year, 2025).ucj_target == 37.10
    assert target_in_force(by_year, 2026).year == 2025  # not entered for 2026 yet
    assert target_in_force(by_year, 2023) is None
    assert target_in_force({}, 2026) is None
