"""Snapshots of every region's counters into the coverage database, for history, answers "as
of" a past day and the forecast (migrations/0005_history.sql).

A task of each API process wakes at every `every` seconds (an hour by default) and at each WIB
day's end, and writes the regions (all levels) whose counters or workforce differ from their
last snapshot. Several processes may run it: a transaction-level advisory lock makes them take
turns, each writes only what differs from the stored last snapshot, and the moment written is
the scheduled one, so a second writer of the same moment hits the primary key and changes
nothing. After each run the forecast pace of the regions with a target is read again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import orjson

from services.coverage.forecast import BASIS_DAYS, Pace, pace_between
from services.coverage.history import Snapshot, day_of, end_of_day, start_of_day
from shared.clock import WIB
from shared.problems import dependency_away, describe_away

log = logging.getLogger("ucj.coverage.snapshots")

# pg_advisory_xact_lock key of the snapshot writers ("UCJsnap" in ASCII).
SNAPSHOT_LOCK = 0x55434A736E6170
SNAPSHOT_EVERY_SECONDS = 3600.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_COLUMNS = "taken_at, registered, active, inactive, terminated, workforce"
_INSERT = """
INSERT INTO coverage_snapshots
       (region_code, taken_at, registered, active, inactive, terminated, workforce, counters)
SELECT n.code, $1, n.registered, n.active, n.inactive, n.terminated, n.workforce, n.counters
  FROM unnest($2::text[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[],
              $8::jsonb[]) AS n(code, registered, active, inactive, terminated, workforce,
                                counters)
 WHERE NOT EXISTS (
       SELECT 1 FROM (SELECT s.counters, s.workforce FROM coverage_snapshots s
                       WHERE s.region_code = n.code AND s.taken_at < $1
                       ORDER BY s.taken_at DESC LIMIT 1) last
        WHERE last.counters = n.counters AND last.workforce IS NOT DISTINCT FROM n.workforce)
ON CONFLICT (region_code, taken_at) DO NOTHING"""


@dataclass(frozen=True, slots=True)
class RegionState:
    """What a snapshot holds of a region: every counter, and its workforce of the day."""

    counters: Mapping[str, int]
    workforce: int | None

    def key(self) -> tuple[tuple[tuple[str, int], ...], int | None]:
        return tuple(sorted(self.counters.items())), self.workforce


def next_moment(now: datetime, every: float) -> datetime:
    """The next snapshot moment after `now`: the next multiple of `every` seconds (counted from
    the Unix epoch, so every process picks the same one), or the end of the WIB day if sooner."""
    elapsed = (now - _EPOCH).total_seconds()
    step = _EPOCH + timedelta(seconds=(elapsed // every + 1) * every)
    return min(step, end_of_day(now.astimezone(WIB).date()))


async def write_snapshot(pool: asyncpg.Pool, taken_at: datetime,
                         states: Mapping[str, RegionState]) -> int:
    """Write the regions whose state differs from their last snapshot; how many were written."""
    codes = list(states)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SNAPSHOT_LOCK)
        status = await conn.execute(
            _INSERT, taken_at, codes,
            *[[states[c].counters.get(name, 0) for c in codes]
              for name in ("registered", "active", "inactive", "terminated")],
            [states[c].workforce for c in codes],
            [orjson.dumps(dict(states[c].counters)).decode() for c in codes])
        written = int(status.split()[-1])
        await conn.execute("INSERT INTO snapshot_runs (taken_at, regions) VALUES ($1, $2)"
                           " ON CONFLICT (taken_at) DO NOTHING", taken_at, written)
    return written


def _snapshot(row: asyncpg.Record) -> Snapshot:
    return Snapshot(taken_at=row["taken_at"], registered=row["registered"], active=row["active"],
                    inactive=row["inactive"], terminated=row["terminated"],
                    workforce=row["workforce"])


async def region_history(pool: asyncpg.Pool, code: str, start: date, end: date
                         ) -> tuple[Snapshot | None, list[Snapshot]]:
    """The last snapshot before `start`, and those of the days `start` to `end`, oldest first."""
    async with pool.acquire() as conn:
        before = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM coverage_snapshots WHERE region_code = $1"
            " AND taken_at <= $2 ORDER BY taken_at DESC LIMIT 1", code, start_of_day(start))
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM coverage_snapshots WHERE region_code = $1"
            " AND taken_at > $2 AND taken_at <= $3 ORDER BY taken_at", code,
            start_of_day(start), end_of_day(end))
    return (_snapshot(before) if before else None), [_snapshot(r) for r in rows]


@dataclass(frozen=True, slots=True)
class StateAsOf:
    taken_at: datetime | None  # None: no snapshot of the region yet, so it had no counters
    counters: dict[str, int]


async def state_as_of(pool: asyncpg.Pool, code: str, day: date,
                      deadline_seconds: float | None = None) -> StateAsOf | None:
    """The region's counters at the end of `day` (WIB); None when no snapshot had been taken
    by then (history starts later). Within `deadline_seconds` when given."""
    async with asyncio.timeout(deadline_seconds), pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT taken_at, counters FROM coverage_snapshots WHERE region_code = $1"
            " AND taken_at <= $2 ORDER BY taken_at DESC LIMIT 1", code, end_of_day(day))
        if row is not None:
            return StateAsOf(row["taken_at"], orjson.loads(row["counters"]))
        # Every run writes each region that changed, the first one every region with counters:
        # no snapshot of the region after a run means it had none.
        first = await conn.fetchval("SELECT min(taken_at) FROM snapshot_runs")
    if first is None or first > end_of_day(day):
        return None
    return StateAsOf(None, {})


async def paces(pool: asyncpg.Pool, codes: list[str], today: date) -> dict[str, Pace]:
    """The net growth per day of active workers over the last BASIS_DAYS days (or since the
    first snapshot, when the region's history is shorter) of these regions."""
    cutoff = end_of_day(today - timedelta(days=BASIS_DAYS))
    async with pool.acquire() as conn:
        rows = await conn.fetch("""
            SELECT c.code, latest.active AS latest_active,
                   coalesce(base.taken_at, first.taken_at) AS base_at,
                   coalesce(base.active, first.active) AS base_active
              FROM unnest($1::text[]) AS c(code)
              JOIN LATERAL (SELECT active FROM coverage_snapshots WHERE region_code = c.code
                             ORDER BY taken_at DESC LIMIT 1) latest ON true
              LEFT JOIN LATERAL (SELECT taken_at, active FROM coverage_snapshots
                                  WHERE region_code = c.code AND taken_at <= $2
                                  ORDER BY taken_at DESC LIMIT 1) base ON true
              LEFT JOIN LATERAL (SELECT taken_at, active FROM coverage_snapshots
                                  WHERE region_code = c.code
                                  ORDER BY taken_at LIMIT 1) first ON true""", codes, cutoff)
    return {r["code"]: pace_between(r["base_active"], day_of(r["base_at"]), r["latest_active"],
                                    today) for r in rows}


# Every region's state on a day: those with counters or a workforce figure, and these others.
States = Callable[[date, set[str]], AsyncIterator[tuple[str, RegionState]]]


class Snapshotter:
    """The snapshot task of one API process. `states` gives every region's state now (the
    live view's, with the workforce of the day's year); `codes_with_target` the regions whose
    forecast pace `on_paces` receives after each run."""

    def __init__(self, states: States, now: Callable[[], datetime],
                 codes_with_target: Callable[[], list[str]],
                 on_paces: Callable[[dict[str, Pace]], None], *, every: float = 3600.0,
                 timeout: float = 60.0) -> None:
        self.states, self.now, self.every, self.timeout = states, now, every, timeout
        self.codes_with_target, self.on_paces = codes_with_target, on_paces
        # What this process last wrote (or found written) per region: only the regions that
        # differ are sent; the database still compares with the stored last snapshot.
        self.written: dict[str, tuple[tuple[tuple[str, int], ...], int | None]] = {}
        self.runs = 0
        self._away = False

    async def run(self, pool: asyncpg.Pool) -> None:
        """Snapshot until cancelled; the pace is read once at the start too."""
        await self._guarded(self.refresh_paces(pool))
        while True:
            now = self.now()
            moment = next_moment(now, self.every)
            await asyncio.sleep(max(0.0, (moment - now).total_seconds()))
            await self._guarded(self.take(pool, moment))
            await self._guarded(self.refresh_paces(pool))

    async def take(self, pool: asyncpg.Pool, moment: datetime) -> int:
        # The regions held now, and those written before that may have fallen to zero.
        changed = {code: state async for code, state in self.states(day_of(moment),
                                                                    set(self.written))
                   if self.written.get(code) != state.key()}
        async with asyncio.timeout(self.timeout):  # a run without changes is recorded too
            written = await write_snapshot(pool, moment, changed)
        for code, state in changed.items():
            self.written[code] = state.key()
        self.runs += 1
        if written:
            log.info("snapshot at %s: %d regions", moment.isoformat(), written)
        return written

    async def refresh_paces(self, pool: asyncpg.Pool) -> None:
        codes = self.codes_with_target()
        if codes:
            async with asyncio.timeout(self.timeout):
                self.on_paces(await paces(pool, codes, self.now().astimezone(WIB).date()))

    async def _guarded(self, work: Awaitable[object]) -> None:
        try:
            await work
            if self._away:
                log.info("snapshots: coverage database answers again")
                self._away = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._away:
                if dependency_away(exc) or isinstance(exc, TimeoutError):
                    log.warning("snapshots: coverage database away (%s); next run retries",
                                describe_away(exc))
                else:
                    log.exception("snapshot failed")
                self._away = True
