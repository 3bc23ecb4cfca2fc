"""The six-monthly UCJ report on the coverage API with its real PostgreSQL database: what the
coverage answers show is what the CSV and XLSX files hold, for a region and its children."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date, datetime, time

import asyncpg
import orjson
import pytest

from services.coverage import reports
from shared.clock import WIB
from shared.regions import directory
from tests.integration.test_coverage_api import eventually, publish

pytestmark = pytest.mark.integration

TODAY = date.today()
PERIOD = f"{TODAY.year}-H{1 if TODAY.month <= 6 else 2}"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def binjai_with_figures(client, settings, auth) -> None:
    await publish(settings, 3, "12.75", {"registered": 50000, "active": 43833,
                                         "PU.active": 30000, "BPU.active": 12000,
                                         "JAKON.active": 1500, "PMI.active": 333})
    assert (await client.put("/v1/workforce/12.75", headers=auth, json={
        "workforce": 132826, "year": 2024, "source": "BPJS Ketenagakerjaan Cabang Binjai"})
    ).status_code == 200
    assert (await client.put("/v1/targets/12.75", headers=auth, json={
        "year": TODAY.year, "ucj_target": 37.10, "source": "RPJMD Kota Binjai"})
    ).status_code == 200
    await eventually(client, "/v1/coverage/regions/12.75", lambda b: b["active"] == 43833)


async def test_the_csv_report_holds_binjai_and_each_of_its_districts(coverage, auth):
    client, settings = coverage
    await binjai_with_figures(client, settings, auth)
    response = await client.get("/v1/coverage/regions/12.75/report",
                                params={"period": PERIOD, "format": "csv"})  # no key needed
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        f'attachment; filename="ucj-12.75-{PERIOD}.csv"')
    table = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    districts = [r.code for r in directory().children("12.75")]
    assert [r["Kode Wilayah"] for r in table] == ["12.75", *districts]
    binjai = table[0]
    assert (binjai["Nama Wilayah"], binjai["Tingkat"]) == ("Kota Binjai", "Kabupaten/Kota")
    assert [binjai[f"Peserta Aktif {s}"] for s in ("PU", "BPU", "JAKON", "PMI")] == [
        "30000", "12000", "1500", "333"]
    assert (binjai["Total Peserta Aktif"], binjai["Peserta Terdaftar"]) == ("43833", "50000")
    assert (binjai["Angkatan Kerja"], binjai["Tahun Data Angkatan Kerja"]) == ("132826", "2024")
    assert round(float(binjai["Capaian UCJ (%)"]), 2) == 33.00
    assert (binjai["Target UCJ (%)"], binjai["Tahun Target"]) == ("37.1", str(TODAY.year))
    assert binjai["Kekurangan Peserta untuk Target (orang)"] == "5446"
    assert binjai["Pertumbuhan Peserta Aktif Semester Ini (orang)"] == ""
    assert reports.NO_START in binjai["Keterangan"]  # no snapshot yet
    first = table[1]  # the first district has the counters (publish puts them in its village)
    assert first["Total Peserta Aktif"] == "43833" and first["Angkatan Kerja"] == ""
    assert first["Target UCJ (%)"] == ""  # no target: the cells are empty


async def snapshot(settings, code: str, taken_at: datetime, active: int) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO snapshot_runs (taken_at, regions) VALUES ($1, 1)"
            " ON CONFLICT DO NOTHING", taken_at)
        await conn.execute(
            "INSERT INTO coverage_snapshots (region_code, taken_at, registered, active, inactive,"
            " terminated, workforce, counters) VALUES ($1, $2, $3, $3, 0, 0, NULL, $4)",
            code, taken_at, active, orjson.dumps({"registered": active, "active": active}
                                                 ).decode())
    finally:
        await conn.close()


async def test_growth_in_the_half_year_comes_from_the_snapshot_at_its_start(coverage, auth):
    client, settings = coverage
    await binjai_with_figures(client, settings, auth)
    start = reports.period_of(PERIOD).start
    await snapshot(settings, "12.75", datetime.combine(start, time(), tzinfo=WIB), 40000)
    response = await client.get("/v1/coverage/regions/12.75/report", params={"period": PERIOD})
    assert response.status_code == 200, response.text
    table = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert table[0]["Pertumbuhan Peserta Aktif Semester Ini (orang)"] == "3833"
    # The districts had no counters when history started: they grew from zero.
    assert table[1]["Pertumbuhan Peserta Aktif Semester Ini (orang)"] == "43833"
    assert table[2]["Pertumbuhan Peserta Aktif Semester Ini (orang)"] == "0"


async def test_the_xlsx_report_is_a_workbook_named_for_download(coverage, auth):
    client, settings = coverage
    await binjai_with_figures(client, settings, auth)
    response = await client.get("/v1/coverage/regions/12.75/report",
                                params={"period": PERIOD, "format": "xlsx"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == XLSX
    assert response.headers["content-disposition"] == (
        f'attachment; filename="ucj-12.75-{PERIOD}.xlsx"')
    with zipfile.ZipFile(io.BytesIO(response.content)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        strings = book.read("xl/sharedStrings.xml").decode()
    assert 'state="frozen"' in sheet and "Kota Binjai" in strings
    assert "Kekurangan Peserta untuk Target (orang)" in strings
    assert "<v>5446</v>" in sheet and "<v>43833</v>" in sheet


async def test_a_village_report_has_one_row(coverage):
    client, _ = coverage
    response = await client.get("/v1/coverage/regions/12.75.01.1001/report",
                                params={"period": PERIOD})
    assert response.status_code == 200, response.text
    table = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert [r["Kode Wilayah"] for r in table] == ["12.75.01.1001"]
    assert table[0]["Tingkat"] == "Desa/Kelurahan"


@pytest.mark.parametrize(("code", "params", "status"), [
    ("12.75", {}, 422),
    ("12.75", {"period": "2026-H3"}, 422),
    ("12.75", {"period": "2026"}, 422),
    ("12.75", {"period": "1999-H2"}, 422),
    ("12.75", {"period": f"{TODAY.year + 1}-H1"}, 422),  # not begun
    ("12.75", {"period": PERIOD, "format": "pdf"}, 422),
    ("99.99", {"period": PERIOD}, 404),
    ("12.7x", {"period": PERIOD}, 404),
])
async def test_bad_periods_formats_and_regions_are_clear_problems(coverage, code, params, status):
    client, _ = coverage
    response = await client.get(f"/v1/coverage/regions/{code}/report", params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
