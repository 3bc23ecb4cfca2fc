"""UCJ targets, workforce years and the CSV imports on the coverage API with its real
PostgreSQL database: what is stored is what every coverage answer shows."""

from __future__ import annotations

from datetime import date

import asyncpg
import pytest

from shared.regions import directory
from tests.integration.test_coverage_api import eventually, publish

pytestmark = pytest.mark.integration

YEAR = date.today().year
CSV = {"content-type": "text/csv"}


async def rows_of(settings, table: str) -> int:
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await conn.close()


async def test_binjai_reproduces_33_percent_and_a_gap_of_5446_workers(coverage, auth):
    client, settings = coverage
    await publish(settings, 3, "12.75", {"registered": 43833, "active": 43833})
    assert (await client.put("/v1/workforce/12.75", headers=auth, json={
        "workforce": 132826, "year": 2024, "source": "BPJS Ketenagakerjaan Cabang Binjai"})
    ).status_code == 200
    response = await client.put("/v1/targets/12.75", headers=auth, json={
        "year": YEAR, "ucj_target": 37.10, "source": "RPJMD Kota Binjai"})
    assert response.status_code == 200, response.text
    assert response.json() == {"region": {"code": "12.75", "name": "Kota Binjai",
                                          "level": "regency"},
                               "year": YEAR, "ucj_target": 37.1, "source": "RPJMD Kota Binjai"}
    body = await eventually(client, "/v1/coverage/regions/12.75", lambda b: b["active"] == 43833)
    assert round(body["ucj"] * 100, 2) == 33.00
    assert (body["target"], body["target_year"], body["gap_people"], body["band"]) == (
        0.371, YEAR, 5446, "low")
    assert body["ucj_missing_reason"] is None
    listed = (await client.get("/v1/coverage/regions?level=regency&parent=12")).json()["items"]
    assert next(i for i in listed if i["region"]["code"] == "12.75")["gap_people"] == 5446
    query = (await client.get("/v1/coverage/regions/12.75?target=0.3248")).json()
    assert query["target"] == 0.3248 and query["gap_people"] == query["gap_to_target"] == 0


async def test_every_years_target_is_kept_and_the_current_years_is_shown(coverage, auth):
    client, settings = coverage
    for year, percent in ((YEAR - 1, 32.48), (YEAR, 37.10), (YEAR + 1, 40)):
        response = await client.put("/v1/targets/12.75", headers=auth, json={
            "year": year, "ucj_target": percent, "source": "RPJMD Kota Binjai"})
        assert response.status_code == 200, response.text
    response = await client.put("/v1/targets/12.75", headers=auth, json={
        "year": YEAR, "ucj_target": 38, "source": "RPJMD Kota Binjai, revised"})
    assert response.status_code == 200
    targets = (await client.get("/v1/targets/12.75")).json()["items"]
    assert [(t["year"], t["ucj_target"]) for t in targets] == [
        (YEAR - 1, 32.48), (YEAR, 38.0), (YEAR + 1, 40.0)]
    assert await rows_of(settings, "ucj_targets") == 3
    body = (await client.get("/v1/coverage/regions/12.75")).json()
    assert body["target"] == 0.38 and body["target_source"] == "RPJMD Kota Binjai, revised"
    assert body["gap_people"] is None  # no workforce figure


async def test_every_workforce_year_is_kept_and_ucj_uses_the_latest_up_to_now(coverage, auth):
    client, settings = coverage
    for year, workforce in ((YEAR - 2, 1000), (YEAR - 1, 2000), (YEAR + 1, 9000)):
        response = await client.put("/v1/workforce/12.76", headers=auth, json={
            "workforce": workforce, "year": year, "source": "BPS Sakernas"})
        assert response.status_code == 200, response.text
    assert await rows_of(settings, "workforce") == 3
    body = (await client.get("/v1/coverage/regions/12.76")).json()
    assert (body["workforce"], body["workforce_year"]) == (2000, YEAR - 1)


async def test_a_region_without_a_figure_sums_its_childrens_or_says_why_not(coverage, auth):
    client, _ = coverage
    districts = [r.code for r in directory().children("12.75")]
    body = "code,year,workforce,source\n" + "".join(
        f"{code},{YEAR - 1},{1000 + i},BPS Sakernas\n" for i, code in enumerate(districts))
    response = await client.post("/v1/workforce/import", headers={**auth, **CSV},
                                 content=body.encode())
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": len(districts)}
    binjai = (await client.get("/v1/coverage/regions/12.75")).json()
    assert binjai["workforce"] == sum(1000 + i for i in range(len(districts)))
    assert binjai["ucj"] == 0 and binjai["ucj_missing_reason"] is None
    province = (await client.get("/v1/coverage/regions/12")).json()
    assert province["ucj"] is None and province["ucj_missing_reason"] == "children_incomplete"
    village = (await client.get("/v1/coverage/regions/12.75.01.1001")).json()
    assert village["ucj_missing_reason"] == "no_workforce"


async def test_a_csv_with_a_bad_row_imports_nothing_and_lists_the_bad_rows(coverage, auth):
    client, settings = coverage
    body = (b"code,year,workforce,source\n12.75,2024,132826,BPS\n99.99,2024,1,BPS\n"
            b"12.71,2024,-1,BPS\n")
    response = await client.post("/v1/workforce/import", headers={**auth, **CSV}, content=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["bad_rows"] == [3, 4]
    assert [(e["row"], e["field"]) for e in problem["errors"]] == [("3", "code"),
                                                                  ("4", "workforce")]
    assert await rows_of(settings, "workforce") == 0
    assert (await client.get("/v1/coverage/regions/12.75")).json()["workforce"] is None


async def test_targets_import_in_one_go(coverage, auth):
    client, settings = coverage
    body = (f"code,year,ucj_target,source\n12.75,{YEAR},37.10,RPJMD\n12,{YEAR},51.08,RPJMD\n"
            f"ID,{YEAR},32.15,RPJMN 2025-2029\n").encode()
    response = await client.post("/v1/targets/import", headers={**auth, **CSV}, content=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 3}
    nation = (await client.get("/v1/coverage/regions/ID")).json()
    assert nation["target"] == 0.3215 and nation["target_source"] == "RPJMN 2025-2029"
    bad = body + f"12.71,{YEAR},100.01,x\n".encode()
    response = await client.post("/v1/targets/import", headers={**auth, **CSV}, content=bad)
    assert response.status_code == 422 and response.json()["bad_rows"] == [5]
    assert await rows_of(settings, "ucj_targets") == 3


@pytest.mark.parametrize(("path", "body", "headers", "status"), [
    ("/v1/workforce/import", b"region,year,workforce,source\n12.75,2024,1,x\n", CSV, 422),
    ("/v1/workforce/import", "code,year,workforce,source\n12.75,2024,1,é\n".encode("latin-1"),
     CSV, 422),
    ("/v1/workforce/import", b"code,year,workforce,source\n12.75,2024,1,x\n",
     {"content-type": "application/json"}, 415),
    ("/v1/targets/import", b"code,year,workforce,source\n12.75,2024,1,x\n", CSV, 422),
    ("/v1/targets/import", b"code,year,ucj_target,source\n", CSV, 422),
])
async def test_bad_csv_files_are_clear_problems(coverage, auth, path, body, headers, status):
    client, settings = coverage
    response = await client.post(path, headers={**auth, **headers}, content=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await rows_of(settings, "workforce") == 0
    assert await rows_of(settings, "ucj_targets") == 0


@pytest.mark.parametrize(("code", "body", "status"), [
    ("12.75", {"year": 2025, "ucj_target": 101, "source": "RPJMD"}, 422),
    ("12.75", {"year": 2025, "ucj_target": -1, "source": "RPJMD"}, 422),
    ("12.75", {"year": 1999, "ucj_target": 30, "source": "RPJMD"}, 422),
    ("12.75", {"year": 2101, "ucj_target": 30, "source": "RPJMD"}, 422),
    ("12.75", {"year": 2025, "ucj_target": 30}, 422),
    ("99.99", {"year": 2025, "ucj_target": 30, "source": "RPJMD"}, 404),
    ("12.7x", {"year": 2025, "ucj_target": 30, "source": "RPJMD"}, 404),
])
async def test_bad_targets_are_refused_and_change_nothing(coverage, auth, code, body, status):
    client, settings = coverage
    response = await client.put(f"/v1/targets/{code}", headers=auth, json=body)
    assert response.status_code == status, response.text
    assert await rows_of(settings, "ucj_targets") == 0


async def test_targets_and_imports_need_a_key(coverage):
    client, _ = coverage
    body = {"year": 2025, "ucj_target": 30, "source": "RPJMD"}
    assert (await client.put("/v1/targets/12.75", json=body)).status_code == 401
    for path in ("/v1/targets/import", "/v1/workforce/import"):
        assert (await client.post(path, headers=CSV, content=b"x")).status_code == 401


async def test_every_regency_in_one_answer_and_villages_page_without_repeats(coverage):
    client, _ = coverage
    regencies = (await client.get("/v1/coverage/regions",
                                  params={"level": "regency", "sort": "ucj"})).json()
    assert len(regencies["items"]) == 514 and "next_cursor" not in regencies
    district = "12.75.01"
    whole = [r["region"]["code"] for r in (await client.get("/v1/coverage/regions", params={
        "level": "village", "parent": district, "sort": "name"})).json()["items"]]
    seen, cursor = [], None
    while True:
        params = {"level": "village", "parent": district, "sort": "name", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await client.get("/v1/coverage/regions", params=params)).json()
        seen += [r["region"]["code"] for r in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == whole and len(whole) == len(directory().children(district)) > 2
    refused = await client.get("/v1/coverage/regions", params={
        "level": "village", "parent": district, "sort": "ucj", "cursor": "junk"})
    assert refused.status_code == 422
