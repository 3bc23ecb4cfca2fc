"""UCJ targets per region and year in the coverage database (percent, every year kept)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.coverage.region_coverage import UcjTarget
from services.coverage.workforce import rows_changed_since

_COLUMNS = "region_code, ucj_target, year, source"
_UPSERT = f"""INSERT INTO ucj_targets (region_code, ucj_target, year, source)
              VALUES ($1, $2, $3, $4)
              ON CONFLICT (region_code, year) DO UPDATE
                 SET ucj_target = EXCLUDED.ucj_target, source = EXCLUDED.source,
                     updated_at = now()
              RETURNING {_COLUMNS}"""


def _target(row: asyncpg.Record) -> UcjTarget:
    return UcjTarget(ucj_target=row["ucj_target"], year=row["year"], source=row["source"])


async def record_target(pool: asyncpg.Pool, code: str, target: UcjTarget) -> UcjTarget:
    """The region's target for `target.year` becomes `target`; other years stay."""
    row = await pool.fetchrow(_UPSERT, code, target.ucj_target, target.year, target.source)
    return _target(row)


async def record_target_rows(pool: asyncpg.Pool, rows: Sequence[tuple[str, UcjTarget]]) -> None:
    """All of these targets, in one transaction: all written or none."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(_UPSERT, [(code, t.ucj_target, t.year, t.source)
                                         for code, t in rows])


async def targets_changed_since(conn: asyncpg.Connection, since: datetime | None
                                ) -> tuple[list[tuple[str, UcjTarget]], datetime | None]:
    """Targets written since `since` (all when None), and the newest write time seen."""
    rows, newest = await rows_changed_since(conn, "ucj_targets", _COLUMNS, since)
    return [(r["region_code"], _target(r)) for r in rows], newest
