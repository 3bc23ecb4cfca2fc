"""The six-monthly UCJ report (Inpres 2/2021): rows built from coverage answers, the half-year,
the CSV and the XLSX renderings. Pure functions, no database."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import date
from decimal import Decimal
from xml.etree import ElementTree

import pytest

from services.coverage.region_coverage import UcjTarget, WorkforceFigure, coverage_of
from services.coverage.reports import (
    GROWTH_COLUMN,
    HEADER,
    NO_END,
    NO_HISTORY,
    NO_START,
    Period,
    file_name,
    period_of,
    report_csv,
    report_rows,
    report_xlsx,
)

BINJAI = {"code": "12.75", "name": "Kota Binjai", "level": "regency"}
DISTRICT = {"code": "12.75.01", "name": "=HYPERLINK(\"http://x\")", "level": "district"}
BINJAI_COUNTERS = {"registered": 50000, "active": 43833, "PU.active": 30000,
                   "BPU.active": 12000, "JAKON.active": 1500, "PMI.active": 333}
BINJAI_2025 = UcjTarget(Decimal("37.10"), 2025, "RPJMD Kota Binjai")
WORKFORCE = WorkforceFigure(132826, 2024, "BPJS Ketenagakerjaan Cabang Binjai")
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def binjai() -> dict:
    return {**coverage_of(BINJAI, BINJAI_COUNTERS, None, WORKFORCE, ucj_target=BINJAI_2025),
            "stale": False}


def district_without_workforce_or_target() -> dict:
    return {**coverage_of(DISTRICT, {"registered": 3, "active": 2, "BPU.active": 2}, None,
                          None), "stale": False}


def row_of(row: list[object]) -> dict[str, object]:
    return dict(zip(HEADER, row, strict=True))


# --- rows -------------------------------------------------------------------------------------

def test_a_row_holds_active_by_segment_workforce_ucj_target_and_the_gap_in_people():
    row = row_of(report_rows([binjai()], {"12.75": 40000})[0])
    assert row["Kode Wilayah"] == "12.75" and row["Nama Wilayah"] == "Kota Binjai"
    assert row["Tingkat"] == "Kabupaten/Kota"
    assert [row[f"Peserta Aktif {s}"] for s in ("PU", "BPU", "JAKON", "PMI")] == [
        30000, 12000, 1500, 333]
    assert (row["Total Peserta Aktif"], row["Peserta Terdaftar"]) == (43833, 50000)
    assert (row["Angkatan Kerja"], row["Tahun Data Angkatan Kerja"]) == (132826, 2024)
    assert row["Sumber Data Angkatan Kerja"] == "BPJS Ketenagakerjaan Cabang Binjai"
    assert row["Capaian UCJ (%)"] == 33.0003  # 43,833 / 132,826
    assert (row["Target UCJ (%)"], row["Tahun Target"]) == (37.1, 2025)
    assert row["Kekurangan Peserta untuk Target (orang)"] == 5446
    assert row["Keterangan"] is None


def test_growth_is_active_now_less_active_at_the_half_years_start():
    rows = report_rows([binjai()], {"12.75": 40000})
    assert row_of(rows[0])["Pertumbuhan Peserta Aktif Semester Ini (orang)"] == 3833
    shrinking = report_rows([binjai()], {"12.75": 45000})
    assert row_of(shrinking[0])["Pertumbuhan Peserta Aktif Semester Ini (orang)"] == -1167


def test_a_half_year_that_is_over_grows_from_its_start_to_its_end():
    rows = report_rows([binjai()], {"12.75": 40000}, {"12.75": 41000})
    assert row_of(rows[0])["Pertumbuhan Peserta Aktif Semester Ini (orang)"] == 1000
    row = row_of(report_rows([binjai()], {"12.75": 40000}, {})[0])
    assert row["Pertumbuhan Peserta Aktif Semester Ini (orang)"] is None
    assert row["Keterangan"] == NO_END


def test_without_a_history_growth_is_empty_and_the_note_says_why():
    row = row_of(report_rows([binjai()], None)[0])
    assert row["Pertumbuhan Peserta Aktif Semester Ini (orang)"] is None
    assert row["Keterangan"] == NO_HISTORY


def test_a_region_missing_from_the_history_has_no_growth_and_a_note():
    row = row_of(report_rows([binjai()], {"12.76": 1})[0])
    assert row["Pertumbuhan Peserta Aktif Semester Ini (orang)"] is None
    assert row["Keterangan"] == NO_START


def test_without_workforce_or_target_those_cells_are_empty_and_the_note_says_why():
    row = row_of(report_rows([district_without_workforce_or_target()], {"12.75.01": 2})[0])
    for header in ("Angkatan Kerja", "Tahun Data Angkatan Kerja", "Capaian UCJ (%)",
                   "Target UCJ (%)", "Tahun Target", "Kekurangan Peserta untuk Target (orang)"):
        assert row[header] is None, header
    assert row["Keterangan"] == "UCJ kosong: belum ada data angkatan kerja"
    assert row["Pertumbuhan Peserta Aktif Semester Ini (orang)"] == 0


def test_stale_figures_are_noted():
    row = row_of(report_rows([{**binjai(), "stale": True}], {"12.75": 1})[0])
    assert "belum terbaru" in str(row["Keterangan"])


def test_rows_keep_the_order_given_region_first():
    rows = report_rows([binjai(), district_without_workforce_or_target()], None)
    assert [r[0] for r in rows] == ["12.75", "12.75.01"]


# --- the half-year ----------------------------------------------------------------------------

def test_h1_is_january_to_june_and_h2_july_to_december():
    assert period_of("2026-H1") == Period(2026, 1)
    assert (Period(2026, 1).start, Period(2026, 1).end) == (date(2026, 1, 1), date(2026, 6, 30))
    assert (Period(2026, 2).start, Period(2026, 2).end) == (date(2026, 7, 1), date(2026, 12, 31))
    assert str(period_of("2026-H2")) == "2026-H2"
    assert Period(2026, 2).describe() == "Semester II 2026"


@pytest.mark.parametrize("text", ["2026", "2026-H3", "2026-h1", "26-H1", "2026-H1 ", "1999-H2",
                                  "2101-H1", "２０２６-H1"])
def test_a_bad_half_year_is_refused(text):
    with pytest.raises(ValueError):
        period_of(text)


def test_the_file_is_named_after_the_region_and_the_half_year():
    assert file_name("12.75", Period(2026, 2), "csv") == "ucj-12.75-2026-H2.csv"
    assert file_name("ID", Period(2025, 1), "xlsx") == "ucj-ID-2025-H1.xlsx"


# --- CSV --------------------------------------------------------------------------------------

def test_the_csv_has_indonesian_headers_and_escapes_formula_cells():
    data = report_csv(report_rows([binjai(), district_without_workforce_or_target()], None))
    assert data.startswith("\ufeff".encode())
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0] == list(HEADER)
    assert table[1][:4] == ["12.75", "Kota Binjai", "Kabupaten/Kota", "30000"]
    assert table[1][HEADER.index("Capaian UCJ (%)")] == "33.0003"
    assert table[2][1] == "'=HYPERLINK(\"http://x\")"
    assert table[2][HEADER.index("Angkatan Kerja")] == ""


# --- XLSX -------------------------------------------------------------------------------------

def sheet_cells(data: bytes, sheet: int = 1) -> tuple[dict[str, tuple[str, str | None]], str]:
    """The cells of a sheet as {ref: (shown value, style index)}, and the sheet's XML."""
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        shared = [("".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")))
                  for si in ElementTree.fromstring(book.read("xl/sharedStrings.xml"))]
        xml = book.read(f"xl/worksheets/sheet{sheet}.xml").decode()
    cells = {}
    for c in ElementTree.fromstring(xml).iter(f"{{{NS['m']}}}c"):
        value = c.find("m:v", NS)
        text = value.text if value is not None else None
        if c.get("t") == "s" and text is not None:
            text = shared[int(text)]
        cells[c.get("r")] = (text, c.get("s"))
    return cells, xml


def number_format_of(data: bytes, style: str | None) -> str | None:
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        styles = ElementTree.fromstring(book.read("xl/styles.xml"))
    xfs = styles.find("m:cellXfs", NS)
    assert xfs is not None and style is not None
    number = xfs[int(style)].get("numFmtId")
    custom = {f.get("numFmtId"): f.get("formatCode") for f in styles.iter(
        f"{{{NS['m']}}}numFmt")}
    return custom.get(number, number)


def test_the_xlsx_has_a_frozen_header_row_and_number_formats():
    rows = report_rows([binjai(), district_without_workforce_or_target()], None)
    data = report_xlsx(rows, Period(2026, 2), "12.75", date(2026, 12, 2), NO_HISTORY)
    cells, xml = sheet_cells(data)
    assert [cells[f"{chr(65 + i)}1"][0] for i in range(len(HEADER))] == list(HEADER)
    assert re.search(r'<pane[^>]*ySplit="1"[^>]*state="frozen"', xml)
    assert cells["A2"][0] == "12.75" and cells["B3"][0] == "=HYPERLINK(\"http://x\")"
    assert "<f>" not in xml  # text is never a formula
    total = cells[f"{chr(65 + HEADER.index('Total Peserta Aktif'))}2"]
    assert total[0] == "43833" and number_format_of(data, total[1]) == "#,##0"
    ucj = cells[f"{chr(65 + HEADER.index('Capaian UCJ (%)'))}2"]
    assert float(ucj[0] or 0) == 33.0003 and number_format_of(data, ucj[1]) == "0.00"
    assert f"{chr(65 + HEADER.index('Angkatan Kerja'))}3" not in cells  # empty, not 0
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        comments = [n for n in book.namelist() if "comments" in n]
        assert comments and NO_HISTORY in book.read(comments[0]).decode()
    assert GROWTH_COLUMN == HEADER.index("Pertumbuhan Peserta Aktif Semester Ini (orang)")


def test_the_xlsx_says_the_period_and_the_date_of_the_figures():
    data = report_xlsx([], Period(2026, 1), "ID", date(2026, 3, 4), None)
    cells, _ = sheet_cells(data, sheet=2)
    assert cells["B2"][0] == "Semester I 2026 (01-01-2026 s.d. 30-06-2026)"
    assert (cells["A4"][0], cells["B4"][0]) == ("Data per", "04-03-2026")
