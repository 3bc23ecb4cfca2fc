"""Workforce figures (the UCJ denominator) in the coverage database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.coverage.region_coverage import WorkforceFigure

_COLUMNS = "region_code, workforce, year, source"


def _figure(row: asyncpg.Record) -> WorkforceFigure:
    return WorkforceFigure(workforce=row["workforce"], year=row["year"], source=row["source"])


async def workforce_of_many(pool: asyncpg.Pool, codes: Sequence[str]) -> dict[str, WorkforceFigure]:
    if not codes:
        return {}
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM workforce WHERE region_code = ANY($1::text[])", list(codes))
    return {row["region_code"]: _figure(row) for row in rows}


async def record_workforce(pool: asyncpg.Pool, code: str,
                           figure: WorkforceFigure) -> WorkforceFigure:
    """The region's current figure becomes `figure` (a newer survey replaces the older one)."""
    row = await pool.fetchrow(
        f"""INSERT INTO workforce (region_code, workforce, year, source)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (region_code) DO UPDATE
               SET workforce = EXCLUDED.workforce, year = EXCLUDED.year,
                   source = EXCLUDED.source, updated_at = now()
            RETURNING {_COLUMNS}""",
        code, figure.workforce, figure.year, figure.source)
    return _figure(row)


# A write's updated_at is its transaction's start: one that commits late carries an older time
# than rows already read. Reading the last minute again each time catches it.
_LATE_COMMIT = "60 seconds"


async def workforce_changed_since(conn: asyncpg.Connection, since: datetime | None
                                  ) -> tuple[dict[str, WorkforceFigure], datetime | None]:
    """Figures written since `since` (all when None), and the newest write time seen."""
    if since is None:
        rows = await conn.fetch(f"SELECT {_COLUMNS}, updated_at FROM workforce")
    else:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS}, updated_at FROM workforce"
            f" WHERE updated_at > $1::timestamptz - interval '{_LATE_COMMIT}'", since)
    newest = max((r["updated_at"] for r in rows), default=since)
    return {r["region_code"]: _figure(r) for r in rows}, newest
