"""Figures kept per region and year in the coverage database — workforce (the UCJ
denominator, BPS Sakernas) and UCJ targets (a plan's percent) — written and read the one same
way: every year kept, a year written again replaced, all rows of an import or none, and the
changes since a time for the follower (counters_feed.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg

from services.coverage.region_coverage import UcjTarget, WorkforceFigure

F = TypeVar("F", WorkforceFigure, UcjTarget)

# A write's updated_at is its transaction's start: one that commits late carries an older time
# than rows already read. Reading the last minute again each time catches it.
_LATE_COMMIT = "60 seconds"


@dataclass(frozen=True)
class YearlyFigures(Generic[F]):
    table: str
    value: str  # the column of the figure itself
    made: Callable[[Any, int, str], F]  # (value, year, source) -> the figure

    @property
    def _columns(self) -> str:
        return f"region_code, {self.value}, year, source"

    @property
    def _upsert(self) -> str:
        return (f"INSERT INTO {self.table} ({self._columns}) VALUES ($1, $2, $3, $4)"
                f" ON CONFLICT (region_code, year) DO UPDATE SET {self.value} ="
                f" EXCLUDED.{self.value}, source = EXCLUDED.source, updated_at = now()"
                f" RETURNING {self._columns}")

    def _of(self, row: Any) -> F:
        return self.made(row[self.value], row["year"], row["source"])

    @staticmethod
    def _args(code: str, figure: F) -> tuple[Any, ...]:
        value = figure.workforce if isinstance(figure, WorkforceFigure) else figure.ucj_target
        return code, value, figure.year, figure.source

    async def record(self, pool: asyncpg.Pool, code: str, figure: F) -> F:
        """The region's figure for `figure.year` becomes `figure`; other years stay."""
        return self._of(await pool.fetchrow(self._upsert, *self._args(code, figure)))

    async def record_rows(self, pool: asyncpg.Pool, rows: Sequence[tuple[str, F]]) -> None:
        """All of these figures, in one transaction: all written or none."""
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany(self._upsert, [self._args(code, f) for code, f in rows])

    async def changed_since(self, conn: asyncpg.Connection, since: datetime | None
                            ) -> tuple[list[tuple[str, F]], datetime | None]:
        """Figures written since `since` (all when None), and the newest write time seen."""
        if since is None:
            rows = await conn.fetch(f"SELECT {self._columns}, updated_at FROM {self.table}")
        else:
            rows = await conn.fetch(
                f"SELECT {self._columns}, updated_at FROM {self.table}"
                f" WHERE updated_at > $1::timestamptz - interval '{_LATE_COMMIT}'", since)
        newest = max((r["updated_at"] for r in rows), default=since)
        return [(r["region_code"], self._of(r)) for r in rows], newest


WORKFORCE = YearlyFigures[WorkforceFigure](
    "workforce", "workforce", lambda v, year, source: WorkforceFigure(v, year, source))
TARGETS = YearlyFigures[UcjTarget](
    "ucj_targets", "ucj_target",
    lambda v, year, source: UcjTarget(ucj_target=v, year=year, source=source))
