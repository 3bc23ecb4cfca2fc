"""Sorted listings and their pages: lowest UCJ first, largest gap first, regions without the
figure last either way, ties by code; pages that neither repeat nor skip."""

from __future__ import annotations

import pytest

from services.coverage.region_order import page
from services.coverage.schemas import RegionCoverage
from shared.problems import Problem


def region(code: str, name: str, ucj: float | None, gap: int | None, active: int = 0
           ) -> RegionCoverage:
    return RegionCoverage.model_validate({
        "region": {"code": code, "name": name, "level": "regency"}, "workforce": None,
        "workforce_year": None, "workforce_source": None, "registered": active,
        "active": active, "inactive": 0, "terminated": 0, "by_segment": {}, "claims": {},
        "ucj": ucj, "updated_at": None, "stale": False, "gap_people": gap})


ITEMS = [region("12.75", "Kota Binjai", 0.33, 5446, 43833),
         region("12.76", "Kota Tebing Tinggi", 0.20, 9000, 20000),
         region("12.71", "Kota Medan", None, None, 7),
         region("12.77", "Kota Padangsidimpuan", 0.33, 100, 10),
         region("12.01", "Nias", 0.10, 9000, 5)]


def codes(items) -> list[str]:
    return [i.region.code for i in items]


def test_lowest_ucj_first_and_largest_gap_first_with_the_unknown_last():
    assert codes(page(ITEMS, "ucj", "asc", None, None)[0]) == [
        "12.01", "12.76", "12.75", "12.77", "12.71"]
    assert codes(page(ITEMS, "ucj", "desc", None, None)[0]) == [
        "12.75", "12.77", "12.76", "12.01", "12.71"]
    assert codes(page(ITEMS, "gap_people", "desc", None, None)[0]) == [
        "12.01", "12.76", "12.75", "12.77", "12.71"]
    assert codes(page(ITEMS, "name", "desc", None, None)[0]) == [
        "12.01", "12.76", "12.77", "12.71", "12.75"]  # Nias, Kota T…, Kota P…, Kota M…, Kota B…
    assert codes(page(ITEMS, "code", "asc", None, None)[0]) == sorted(codes(ITEMS))


@pytest.mark.parametrize("sort", ["ucj", "gap_people", "active", "name", "code"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_pages_put_together_are_the_whole_listing(sort, order):
    whole, _ = page(ITEMS, sort, order, None, None)
    seen, cursor = [], None
    while True:
        items, cursor = page(ITEMS, sort, order, 2, cursor)
        seen += items
        if cursor is None:
            break
    assert codes(seen) == codes(whole)


def test_a_cursor_of_another_order_or_junk_is_a_422():
    _, cursor = page(ITEMS, "ucj", "asc", 2, None)
    for sort, order, given in (("ucj", "desc", cursor), ("name", "asc", cursor),
                               ("ucj", "asc", "not-a-cursor")):
        with pytest.raises(Problem) as refused:
            page(ITEMS, sort, order, 2, given)
        assert refused.value.status == 422
