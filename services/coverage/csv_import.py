"""CSV imports of workforce figures and UCJ targets (a BPS Sakernas or Disnaker table, a plan's
annex): every row is checked first, and either all of them are written, in one transaction, or
none and a 422 problem lists each bad row and why.

The file is UTF-8 (a byte order mark is allowed), comma-separated, with a header line naming
exactly the columns, in order: `code,year,workforce,source` or `code,year,ucj_target,source`.
Row numbers count the header as row 1, as a spreadsheet shows them. Blank lines are skipped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from services.coverage.region_coverage import UcjTarget, WorkforceFigure
from services.coverage.schemas import TargetIn, WorkforceIn
from shared.problems import Problem, field_errors
from shared.regions import RegionDirectory, level_of

WORKFORCE_COLUMNS = ("code", "year", "workforce", "source")
TARGET_COLUMNS = ("code", "year", "ucj_target", "source")
MAX_IMPORT_BYTES = 8 * 1024 * 1024
MAX_ERRORS_LISTED = 1000

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class BadRows(Exception):
    def __init__(self, errors: list[dict[str, str]]):
        super().__init__(f"{len(errors)} errors")
        self.errors = errors


def _refused(detail: str, field: str, message: str) -> Problem:
    return Problem(422, "Invalid CSV", detail, errors=[{"field": field, "message": message}])


def _records(body: bytes, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """(row number, fields) of each data row, after checking the encoding and the header."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refused(f"the file is not UTF-8 text (byte {exc.start} is not valid UTF-8)",
                       "file", "must be UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise _refused(f"row 1: {exc}", "header", "is not a CSV line") from None
    expected = ",".join(columns)
    if header is None or [h.strip().lower() for h in header] != list(columns):
        got = "nothing" if header is None else ",".join(header)[:200]
        raise _refused(f"the header must be {expected} (got {got})", "header",
                       f"must be {expected}")
    number = 1
    while True:
        number += 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise BadRows([{"row": str(number), "field": "row",
                            "message": f"is not a CSV line ({exc})"}]) from None
        if not fields or all(not f.strip() for f in fields):
            continue
        yield number, fields


def _checked(body: bytes, columns: tuple[str, ...], regions: RegionDirectory,
             model: type[M], number_column: str, number: Callable[[str], object],
             build: Callable[[M], T]) -> list[tuple[str, T]]:
    errors: list[dict[str, str]] = []
    rows: list[tuple[str, T]] = []
    seen: dict[tuple[str, int], int] = {}

    def bad(row: int, field: str, message: str) -> None:
        errors.append({"row": str(row), "field": field, "message": message})

    try:
        for row, fields in _records(body, columns):
            if len(fields) != len(columns):
                bad(row, "row", f"has {len(fields)} fields, expected {len(columns)}")
                continue
            code, year_text, value_text, source = (f.strip() for f in fields)
            before = len(errors)
            shown = code if len(code) <= 40 else code[:40] + "…"
            if level_of(code) is None:
                bad(row, "code", f"{shown!r} is not a region code (ID, 12, 12.75, 12.75.01 or "
                    "12.75.01.1001)")
            elif code not in regions:
                bad(row, "code", f"no region has the code {shown!r}")
            data: dict[str, object] = {"source": source}
            year = 0
            try:
                data["year"] = year = int(year_text)
            except ValueError:
                bad(row, "year", "must be a whole number")
            try:
                data[number_column] = number(value_text)
            except ValueError:
                bad(row, number_column, "must be a number" if number is float
                    else "must be a whole number")
            if len(errors) > before:
                continue
            try:
                checked = model.model_validate(data)
            except ValidationError as exc:
                for err in field_errors(exc.errors(include_input=False)):
                    bad(row, err["field"], err["message"])
                continue
            key = (code, year)
            if key in seen:
                bad(row, "row", f"repeats region {code} and year {year} of row {seen[key]}")
                continue
            seen[key] = row
            rows.append((code, build(checked)))
    except BadRows as exc:
        errors += exc.errors
    if errors:
        bad_rows = sorted({int(e["row"]) for e in errors})
        listed = errors[:MAX_ERRORS_LISTED]
        shown = "; ".join(f"row {e['row']} {e['field']}: {e['message']}" for e in listed[:5])
        raise Problem(422, "Invalid CSV", f"{len(bad_rows)} bad rows, nothing imported: {shown}",
                      errors=listed, extra={"bad_rows": bad_rows[:MAX_ERRORS_LISTED]})
    if not rows:
        raise _refused("the file has no rows after its header", "file", "has no rows")
    return rows


def workforce_rows(body: bytes, regions: RegionDirectory) -> list[tuple[str, WorkforceFigure]]:
    """The figures of a `code,year,workforce,source` file, or the 422 listing its bad rows."""
    return _checked(body, WORKFORCE_COLUMNS, regions, WorkforceIn, "workforce", int,
                    lambda w: WorkforceFigure(w.workforce, w.year, w.source))


def target_rows(body: bytes, regions: RegionDirectory) -> list[tuple[str, UcjTarget]]:
    """The targets of a `code,year,ucj_target,source` file, or the 422 listing its bad rows."""
    return _checked(body, TARGET_COLUMNS, regions, TargetIn, "ucj_target", float,
                    lambda t: UcjTarget(t.percent(), t.year, t.source))
