"""Workforce figures (the UCJ denominator) in the coverage database: one per region and year,
every year kept."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.coverage.region_coverage import WorkforceFigure

_COLUMNS = "region_code, workforce, year, source"
_UPSERT = f"""INSERT INTO workforce (region_code, workforce, year, source)
              VALUES ($1, $2, $3, $4)
              ON CONFLICT (region_code, year) DO UPDATE
                 SET workforce = EXCLUDED.workforce, source = EXCLUDED.source,
                     updated_at = now()
              RETURNING {_COLUMNS}"""


def _figure(row: asyncpg.Record) -> WorkforceFigure:
    return WorkforceFigure(workforce=row["workforce"], year=row["year"], source=row["source"])


async def record_workforce(pool: asyncpg.Pool, code: str,
                           figure: WorkforceFigure) -> WorkforceFigure:
    """The region's figure for `figure.year` becomes `figure`; other years stay."""
    row = await pool.fetchrow(_UPSERT, code, figure.workforce, figure.year, figure.source)
    return _figure(row)


async def record_workforce_rows(pool: asyncpg.Pool,
                                rows: Sequence[tuple[str, WorkforceFigure]]) -> None:
    """All of these figures, in one transaction: all written or none."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(_UPSERT, [(code, f.workforce, f.year, f.source)
                                         for code, f in rows])


# A write's updated_at is its transaction's start: one that commits late carries an older time
# than rows already read. Reading the last minute again each time catches it.
_LATE_COMMIT = "60 seconds"


async def workforce_changed_since(conn: asyncpg.Connection, since: datetime | None
                                  ) -> tuple[list[tuple[str, WorkforceFigure]], datetime | None]:
    """Figures written since `since` (all when None), and the newest write time seen."""
    rows, newest = await rows_changed_since(conn, "workforce", _COLUMNS, since)
    return [(r["region_code"], _figure(r)) for r in rows], newest


async def rows_changed_since(conn: asyncpg.Connection, table: str, columns: str,
                             since: datetime | None) -> tuple[list[Any], datetime | None]:
    """The rows of `table` (with an updated_at) written since `since` (all when None), and the
    newest write time seen; a commit that was late by up to _LATE_COMMIT is read again."""
    if since is None:
        rows = await conn.fetch(f"SELECT {columns}, updated_at FROM {table}")
    else:
        rows = await conn.fetch(
            f"SELECT {columns}, updated_at FROM {table}"
            f" WHERE updated_at > $1::timestamptz - interval '{_LATE_COMMIT}'", since)
    return rows, max((r["updated_at"] for r in rows), default=since)
