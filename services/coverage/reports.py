"""The six-monthly UCJ report of Inpres 2/2021 for a region and its child regions, as CSV or
XLSX, in Bahasa Indonesia: active participants by segment, workforce, UCJ, target, the gap in
people and the growth in the half-year.

The rows are built by `report_rows` from coverage answers (pure, unit-tested); the route only
picks the regions and renders the rows. The figures are the live ones at the time the report is
made (`Data per`). Growth in the half-year is active at its end (now, while it runs) − active
at its start, both from the counters' snapshots (snapshots.state_as_of); without a snapshot of
those days (history starts later, or the database does not answer) growth is left empty and the
row's note says why.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

import xlsxwriter
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from services.coverage.live_coverage import LiveCoverage
from services.coverage.region_coverage import CHILDREN_INCOMPLETE, NO_WORKFORCE
from services.coverage.snapshots import state_as_of
from shared.csv_export import csv_text
from shared.problems import dependency_away, validation_problem
from shared.vocabulary import SEGMENTS

log = logging.getLogger("ucj.coverage.reports")

Format = Literal["csv", "xlsx"]
PERIOD_PATTERN = r"^[0-9]{4}-H[12]$"
PERIOD_YEARS = (2000, 2100)
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

LEVEL_NAMES = {"national": "Nasional", "province": "Provinsi", "regency": "Kabupaten/Kota",
               "district": "Kecamatan", "village": "Desa/Kelurahan"}
MISSING_UCJ = {NO_WORKFORCE: "UCJ kosong: belum ada data angkatan kerja",
               CHILDREN_INCOMPLETE: "UCJ kosong: belum semua wilayah di bawahnya punya data "
                                    "angkatan kerja"}
NO_HISTORY = "pertumbuhan kosong: riwayat jumlah peserta aktif tidak tersedia"
NO_START = "pertumbuhan kosong: riwayat belum mencakup awal semester"
NO_END = "pertumbuhan kosong: riwayat belum mencakup akhir semester"
HISTORY_TIMEOUT = 10.0  # seconds for all the history reads of one report
STALE = "data mungkin belum terbaru (basis data layanan cakupan tidak terbaca)"


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    kind: Literal["text", "count", "percent", "year"]


COLUMNS: tuple[Column, ...] = (
    Column("Kode Wilayah", "text"),
    Column("Nama Wilayah", "text"),
    Column("Tingkat", "text"),
    *(Column(f"Peserta Aktif {segment}", "count") for segment in SEGMENTS),
    Column("Total Peserta Aktif", "count"),
    Column("Peserta Terdaftar", "count"),
    Column("Angkatan Kerja", "count"),
    Column("Tahun Data Angkatan Kerja", "year"),
    Column("Sumber Data Angkatan Kerja", "text"),
    Column("Capaian UCJ (%)", "percent"),
    Column("Target UCJ (%)", "percent"),
    Column("Tahun Target", "year"),
    Column("Kekurangan Peserta untuk Target (orang)", "count"),
    Column("Pertumbuhan Peserta Aktif Semester Ini (orang)", "count"),
    Column("Keterangan", "text"),
)
HEADER = tuple(c.header for c in COLUMNS)
GROWTH_COLUMN = HEADER.index("Pertumbuhan Peserta Aktif Semester Ini (orang)")


@dataclass(frozen=True, slots=True)
class Period:
    """A half-year: H1 is January to June, H2 July to December."""

    year: int
    half: Literal[1, 2]

    @property
    def start(self) -> date:
        return date(self.year, 1 if self.half == 1 else 7, 1)

    @property
    def end(self) -> date:
        return date(self.year, 6, 30) if self.half == 1 else date(self.year, 12, 31)

    def __str__(self) -> str:
        return f"{self.year}-H{self.half}"

    def describe(self) -> str:
        return f"Semester {'I' if self.half == 1 else 'II'} {self.year}"


def period_of(text: str) -> Period:
    """`2026-H2` → Period(2026, 2); ValueError for anything else or a year outside 2000–2100."""
    if not re.fullmatch(PERIOD_PATTERN, text):
        raise ValueError("give the half-year as YYYY-H1 or YYYY-H2, e.g. 2026-H2")
    year = int(text[:4])
    if not PERIOD_YEARS[0] <= year <= PERIOD_YEARS[1]:
        raise ValueError(f"the year must be between {PERIOD_YEARS[0]} and {PERIOD_YEARS[1]}")
    return Period(year, 1 if text.endswith("H1") else 2)


def percent(fraction: float | None) -> float | None:
    """0.330011 → 33.0011 (decimal shift, no float noise); None stays None."""
    return None if fraction is None else float(Decimal(str(fraction)) * 100)


def report_row(coverage: Mapping[str, Any], active_at_start: Mapping[str, int] | None,
               active_at_end: Mapping[str, int] | None = None) -> list[object]:
    """One region's row from its coverage answer (RegionCoverage as a dict; `target`,
    `target_year` and `gap_people` may be absent). `active_at_start` holds the active
    participants of regions at the half-year's start (None: no history at all);
    `active_at_end` those at its end for a half-year that is over (None: it runs, so the
    coverage's `active` is its end)."""
    region = coverage["region"]
    segments = coverage["by_segment"]
    active = coverage["active"]
    notes = []
    if coverage.get("ucj") is None:
        notes.append(MISSING_UCJ.get(coverage.get("ucj_missing_reason") or NO_WORKFORCE,
                                     MISSING_UCJ[NO_WORKFORCE]))
    growth: int | None = None
    end = active if active_at_end is None else active_at_end.get(region["code"])
    if active_at_start is None:
        notes.append(NO_HISTORY)
    elif region["code"] not in active_at_start:
        notes.append(NO_START)
    elif end is None:
        notes.append(NO_END)
    else:
        growth = end - active_at_start[region["code"]]
    if coverage.get("stale"):
        notes.append(STALE)
    return [
        region["code"], region["name"], LEVEL_NAMES.get(region["level"], region["level"]),
        *(segments[segment]["active"] for segment in SEGMENTS),
        active, coverage["registered"],
        coverage.get("workforce"), coverage.get("workforce_year"),
        coverage.get("workforce_source"),
        percent(coverage.get("ucj")), percent(coverage.get("target")),
        coverage.get("target_year"), coverage.get("gap_people"),
        growth, "; ".join(notes) or None,
    ]


def report_rows(coverages: Sequence[Mapping[str, Any]],
                active_at_start: Mapping[str, int] | None,
                active_at_end: Mapping[str, int] | None = None) -> list[list[object]]:
    """The report's rows, in the order given (the region first, then its children)."""
    return [report_row(c, active_at_start, active_at_end) for c in coverages]


def file_name(code: str, period: Period, fmt: Format) -> str:
    return f"ucj-{code}-{period}.{fmt}"


def report_csv(rows: Sequence[Sequence[object]]) -> bytes:
    """UTF-8 with a byte order mark, so spreadsheet programs read the names right; cells that
    look like formulas are escaped (shared/csv_export.py)."""
    return ("\ufeff" + csv_text(HEADER, rows)).encode("utf-8")


NUMBER_FORMATS = {"count": "#,##0", "percent": "0.00", "year": "0", "text": "@"}
COLUMN_WIDTHS = {"count": 14, "percent": 12, "year": 10, "text": 18}


def report_xlsx(rows: Sequence[Sequence[object]], period: Period, code: str, as_of: date,
                growth_note: str | None) -> bytes:
    """One sheet with a frozen, bold header row and number formats per column, and a sheet
    `Keterangan` saying the period, the region and the date of the figures."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    header = book.add_format({"bold": True, "text_wrap": True, "valign": "top",
                              "bg_color": "#DDEBF7", "border": 1})
    formats = {kind: book.add_format({"num_format": number})
               for kind, number in NUMBER_FORMATS.items()}
    sheet = book.add_worksheet(f"UCJ {period}")
    for col, column in enumerate(COLUMNS):
        sheet.write_string(0, col, column.header, header)
        width = 40 if column.header == "Keterangan" else COLUMN_WIDTHS[column.kind]
        sheet.set_column(col, col, width, formats[column.kind])
    if growth_note:
        sheet.write_comment(0, GROWTH_COLUMN, growth_note)
    for r, row in enumerate(rows, start=1):
        for col, (value, column) in enumerate(zip(row, COLUMNS, strict=True)):
            if value is None:
                continue
            if isinstance(value, str):  # text is text, never a formula
                sheet.write_string(r, col, value, formats["text"])
            else:
                sheet.write_number(r, col, value, formats[column.kind])
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(rows), 1), len(COLUMNS) - 1)
    info = book.add_worksheet("Keterangan")
    info.set_column(0, 0, 22)
    info.set_column(1, 1, 70)
    for r, (label, text) in enumerate((
            ("Laporan", "Capaian Universal Coverage Jamsostek (Inpres 2/2021)"),
            ("Periode", f"{period.describe()} ({period.start:%d-%m-%Y} s.d. "
                        f"{period.end:%d-%m-%Y})"),
            ("Wilayah", code),
            ("Data per", f"{as_of:%d-%m-%Y}"),
            ("UCJ", "peserta aktif (PU + BPU + JAKON + PMI) / angkatan kerja"),
            ("Angka", "peserta, angkatan kerja dan target seperti pada tanggal Data per"),
            ("Pertumbuhan", growth_note or "peserta aktif pada akhir semester (sekarang, bila "
                            "semester masih berjalan) − pada awal semester"),
    )):
        info.write_string(r, 0, label, header)
        info.write_string(r, 1, text)
    book.close()
    return out.getvalue()


def live_coverage(request: Request) -> LiveCoverage:
    return request.app.state.coverage


Live = Annotated[LiveCoverage, Depends(live_coverage)]


async def active_at_close_of(request: Request, codes: Sequence[str], day: date
                             ) -> dict[str, int] | None:
    """Active participants of each region at the end of `day` (WIB), from the snapshots: a
    region left out had no snapshot by then (history starts later). None when the database
    does not answer: the report is still made, from memory, without growth."""
    pool = request.app.state.pool
    held: dict[str, int] = {}
    try:
        async with asyncio.timeout(HISTORY_TIMEOUT):
            for code in codes:
                state = await state_as_of(pool, code, day, HISTORY_TIMEOUT)
                if state is not None:
                    held[code] = state.counters.get("active", 0)
    except Exception as exc:
        if not (dependency_away(exc) or isinstance(exc, TimeoutError)):
            raise
        log.warning("report: the counters' history is not readable (%s)", exc)
        return None
    return held


router = APIRouter()


@router.get(
    "/v1/coverage/regions/{code}/report", tags=["coverage"], response_class=Response,
    responses={200: {"description": "the report as a file to download (Content-Disposition: "
                     "attachment; filename=ucj-<code>-<period>.<format>)",
                     "content": {CSV_TYPE: {}, XLSX_TYPE: {}}}},
)
async def region_report(
    code: str, request: Request, live: Live,
    period: Annotated[str, Query(pattern=PERIOD_PATTERN, description=(
        "the half-year: YYYY-H1 (January–June) or YYYY-H2 (July–December)"),
        examples=["2026-H2"])],
    format: Annotated[Format, Query(description="csv or xlsx")] = "csv",
) -> Response:
    """The six-monthly UCJ report (Inpres 2/2021) of a region and each of its child regions,
    headers in Bahasa Indonesia: active participants by segment, registered, workforce with
    its year and source, UCJ, target and the gap in people, growth in the half-year."""
    region = live.known_region(code)
    try:
        half = period_of(period)
    except ValueError as exc:
        raise validation_problem([{"field": "period", "message": str(exc)}]) from None
    today = live.today()
    if half.start > today:
        raise validation_problem([{"field": "period", "message": (
            f"{half} has not begun (the figures are of {today.isoformat()})")}])
    regions = [region, *live.regions.children(region.code)]
    coverages = [c.model_dump(exclude_unset=True) for c in live.coverage(regions)]
    codes = [r.code for r in regions]
    at_start = await active_at_close_of(request, codes, half.start - timedelta(days=1))
    at_end = None
    if at_start is not None and half.end < today:  # over: its growth ends with it
        at_end = await active_at_close_of(request, codes, half.end)
        at_start = None if at_end is None else at_start
    rows = report_rows(coverages, at_start, at_end)
    name = file_name(region.code, half, format)
    headers = {"Content-Disposition": f'attachment; filename="{name}"',
               "Cache-Control": "no-store"}
    if format == "csv":
        return Response(report_csv(rows), media_type=CSV_TYPE, headers=headers)
    note = NO_HISTORY if at_start is None else None
    return Response(report_xlsx(rows, half, region.code, today, note), media_type=XLSX_TYPE,
                    headers=headers)
