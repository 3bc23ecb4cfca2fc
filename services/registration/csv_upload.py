"""Bulk registration as text/csv: the rows of an upload as dicts, for schemas.validate_row
(each row is then judged like a JSON row)."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from services.registration.schemas import MAX_BULK_ROWS, ParticipantIn

# Longer digit strings are not incomes, and int() refuses more than 4,300 digits anyway.
_CSV_INTEGER = re.compile(r"[+-]?[0-9]{1,30}")

CSV_COLUMNS: tuple[str, ...] = tuple(ParticipantIn.model_fields)
REQUIRED_CSV_COLUMNS: tuple[str, ...] = tuple(
    name for name, info in ParticipantIn.model_fields.items() if info.is_required()
)


def _cell(column: str, text: str) -> Any:
    value = text.strip()
    if column == "programs":
        return value.split()  # an empty cell is no programmes: the rules then name JKK and JKM
    if not value:
        return None
    if column == "monthly_income" and _CSV_INTEGER.fullmatch(value):
        return int(value)
    return value  # anything else stays text, and the row fails on its type alone


def rows_from_csv(text: str, *, max_rows: int = MAX_BULK_ROWS) -> list[dict[str, Any]]:
    """Rows of a text/csv bulk upload as dicts for `validate_row`.

    The first line names the columns (any order, case and spaces ignored; employer_id,
    occupation, channel, agent_id and office_village may be left out, and an empty channel is
    partner_api). Comma-separated, or semicolon-separated as spreadsheets in
    Indonesian locale save it. Empty cells are null, `programs` is space-separated, and
    monthly_income becomes an integer. Blank lines are skipped; a row's index is its position
    among the data rows, from 0. A file that cannot be read as such rows raises ValueError.
    """
    text = text.removeprefix("\ufeff")  # the byte-order mark spreadsheets put first
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise ValueError("CSV is empty: the first line must name the columns")
        columns = [cell.strip().lower() for cell in header]
        _check_columns(columns)
        rows: list[dict[str, Any]] = []
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(columns):
                raise ValueError(
                    f"CSV line {reader.line_num}: {len(cells)} cells, "
                    f"but the header names {len(columns)} columns"
                )
            if len(rows) == max_rows:
                raise ValueError(f"CSV has more than {max_rows:,} rows")
            rows.append({col: _cell(col, cell) for col, cell in zip(columns, cells, strict=True)})
    except csv.Error as exc:
        raise ValueError(f"CSV line {reader.line_num} cannot be read: {exc}") from exc
    return rows


def _check_columns(columns: list[str]) -> None:
    if not set(columns) & set(CSV_COLUMNS):
        # Not echoed: a file without a header has a worker's NIK and name on its first line.
        raise ValueError(f"CSV's first line must name the columns: {', '.join(CSV_COLUMNS)}")
    if "" in columns:
        raise ValueError(f"CSV header has no name for column {columns.index('') + 1}")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ValueError(f"CSV header repeats column(s): {', '.join(repeated)}")
    unknown = [c[:40] for c in columns if c not in CSV_COLUMNS]
    if unknown:
        raise ValueError(
            f"CSV header has unknown column(s): {', '.join(unknown)}; "
            f"the columns are {', '.join(CSV_COLUMNS)}"
        )
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"CSV header lacks column(s): {', '.join(missing)}")
