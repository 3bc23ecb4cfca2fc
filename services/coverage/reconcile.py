"""Reconcile the live coverage counters with the source databases: `./ucj reconcile`.

    python -m services.coverage.reconcile [--registration-db URL --contributions-db URL
        --coverage-db URL] [--wait SECONDS] [--repair] [--json]

Truth: every participant in the registration database, with what the contributions database
last published about their membership, becomes the `Facts` the coverage worker would hold
after all their events (with the sources' sequence numbers); counting.py's rules turn them into
village counters, added up to districts, regencies, provinces and the nation. Live: the
coverage database's village counters (summed over source partitions), added up the same way.
The drift of every region and counter is printed; exit status 1 on any drift, 0 without.
Separately, the village counters are checked against the coverage database's own facts table
(internal consistency: a counter that does not follow from the facts is a counting bug, not an
event still in flight). Claim counters (`claims.*`, from claim_facts) are not compared here
yet: the claims database is not one of the sources read, and a repair leaves them as they are.

--repair rebuilds participant_facts and village_counters from the sources in one transaction
on the coverage database, set-based (a million participants in about a minute). It reads the
sources while the workers keep counting, then locks every counting partition (the workers
wait, for seconds) and reads again only the participants whose stored facts moved meanwhile.
So the rebuilt facts carry, per source, a sequence at least as new as any event counted so
far: an event still in flight is either in them (its replay is skipped) or newer (it applies
on top). Every partition's version goes up by one and every counter that changed carries it,
so the coverage API follows.

The database URLs default to the local stack's (.run/stack.json, or $UCJ_RUN_DIR's).
Library: `await reconcile(registration_url, contributions_url, coverage_url)` → `Result`;
`await repair(...)` → `Repair`; `await reconcile_until(..., wait_seconds)`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka.partitioner import DefaultPartitioner
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.coverage.counting import (
    REGISTRATION,
    CountedState,
    Counters,
    Facts,
    contribution,
    counted_state,
)
from shared.regions import LEVELS, NATIONAL_CODE, RegionDirectory, directory, level_of
from shared.topics import PARTICIPANT_PARTITIONS
from shared.vocabulary import SEGMENTS


@dataclass(frozen=True, slots=True)
class MembershipSource:
    """A service whose events say a participant's membership status, and how to ask its
    database, per participant, the status its newest event published and that event's
    sequence: (participant_id, status, sequence) rows, none for a participant whose status no
    event has published yet. `in_range` gets the ids $1 to $2, `by_ids` a uuid array $1."""

    name: str  # the events' source
    in_range: str
    by_ids: str


# With what the payments and enrolments published (ContributionPaid: months_paid, last_period,
# agent_id and paid_on, programme_id; ProgrammeEnrolmentChanged): the rows that wrote those
# events committed with them, so they are exactly what the events said up to status_seq.
_PUBLISHED_STATUS = """
    SELECT m.participant_id, m.status, m.status_seq AS sequence,
           coalesce(p.months_paid, 0) AS months_paid, p.paid_through,
           ARRAY(SELECT e.programme_id::text FROM programme_enrolments e
                 WHERE e.participant_id = m.participant_id AND e.withdrawn_on IS NULL)
             AS programmes,
           (SELECT jsonb_object_agg(k, v) FROM (
                SELECT c.agent_id || '|' || to_char(c.paid_on, 'YYYY-MM') AS k, sum(c.amount) AS v
                FROM contributions c WHERE c.participant_id = m.participant_id
                  AND c.agent_id IS NOT NULL GROUP BY 1) a)::text AS collected,
           (SELECT jsonb_object_agg(k, v) FROM (
                SELECT c.programme_id::text AS k, sum(c.amount) AS v
                FROM contributions c WHERE c.participant_id = m.participant_id
                  AND c.programme_id IS NOT NULL GROUP BY 1) f)::text AS funded
    FROM members m
    LEFT JOIN LATERAL (SELECT sum(c.months)::int AS months_paid,
                              max(c.paid_through) AS paid_through
                       FROM contributions c WHERE c.participant_id = m.participant_id) p ON true
    WHERE m.status_seq > 0 AND m."""
# The name is the contributions service's store.SOURCE (services share no code).
CONTRIBUTIONS = MembershipSource("contributions",
                                 _PUBLISHED_STATUS + "participant_id BETWEEN $1 AND $2",
                                 _PUBLISHED_STATUS + "participant_id = ANY($1::uuid[])")


def _sums(text: str | None) -> tuple[tuple[str, int], ...]:
    return tuple(sorted((k, int(v)) for k, v in orjson.loads(text).items())) if text else ()
# Claims will end memberships too (death, JHT withdrawal): once its database records what its
# events published, give it a MembershipSource like this one, and reconcile() and repair() its
# URL and connection beside the contributions one.

CHUNK = 20_000  # participants per source read
CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 300.0  # any one statement, the repair's set-based ones on 1M rows included
REPEAT_SECONDS = 0.5  # --wait: how often to compare again
COUNTER_ORDER = ("registered", "active", "inactive", "terminated",
                 *(f"{s}.{n}" for s in SEGMENTS for n in ("registered", "active")))

Villages = dict[str, Counters]  # village code → counters
Regions = dict[str, Counters]  # region code (any level) → counters


# --- pure: the sources' facts, truth, levels, drift ------------------------------------------


@dataclass(frozen=True, slots=True)
class ParticipantRow:
    """A registration database participant, as far as coverage is concerned."""

    participant_id: str
    region_code: str
    segment: str
    status: str  # registered | terminated (deregistered)
    version: int  # the sequence of its newest registration event
    employer_id: str | None = None
    channel: str | None = None
    agent_id: str | None = None
    registered_on: str | None = None  # ISO date


@dataclass(frozen=True, slots=True)
class MembershipRow:
    """What one source last published about a participant's membership, and (from the
    contributions service) what its payments and enrolments published: months paid in all,
    the last month paid, the programmes enrolled in, what agents collected per month
    ("agent|YYYY-MM" → rupiah) and what programmes paid (id → rupiah)."""

    source: str
    status: str  # active | inactive | terminated
    sequence: int
    months_paid: int = 0
    paid_through: str | None = None
    programmes: tuple[str, ...] = ()
    collected: tuple[tuple[str, int], ...] = ()
    funded: tuple[tuple[str, int], ...] = ()


def facts_from_sources(participant: ParticipantRow,
                       memberships: Iterable[MembershipRow] = ()) -> Facts:
    """The facts the coverage worker holds once it has applied every event the sources have
    published about this participant. A member whose status no event has published yet
    (status_seq 0) has no membership row here: coverage counts them inactive."""
    sequences = {REGISTRATION: participant.version}
    statuses: dict[str, str] = {}
    paid = Facts()
    for membership in memberships:
        sequences[membership.source] = membership.sequence
        statuses[membership.source] = membership.status
        paid = Facts(months_paid=max(paid.months_paid, membership.months_paid),
                     paid_through=max(paid.paid_through or "", membership.paid_through or "")
                     or None,
                     programmes=tuple(sorted({*paid.programmes, *membership.programmes})),
                     collected=tuple(sorted({**dict(paid.collected),
                                             **dict(membership.collected)}.items())),
                     funded=tuple(sorted({**dict(paid.funded),
                                          **dict(membership.funded)}.items())))
    return Facts(tuple(sorted(sequences.items())), participant.region_code, participant.segment,
                 participant.status == "terminated", tuple(sorted(statuses.items())),
                 employer=participant.employer_id, channel=participant.channel,
                 agent=participant.agent_id,
                 registered_in=participant.registered_on[:7] if participant.registered_on
                 else None,
                 months_paid=paid.months_paid, paid_through=paid.paid_through,
                 programmes=paid.programmes, collected=paid.collected, funded=paid.funded)


class Tally:
    """Participants per counted state; what they add to each village (counting.contribution).
    Kept per state rather than per participant, so a million participants stay small."""

    def __init__(self) -> None:
        self.participants = 0
        self._states: Counter[CountedState] = Counter()

    def add(self, facts: Facts) -> None:
        self.participants += 1
        state = counted_state(facts)
        if state is not None:
            self._states[state] += 1

    def villages(self) -> Villages:
        villages: Villages = defaultdict(dict)
        for state, people in self._states.items():
            counters = villages[state.village]
            for name, value in contribution(state).items():
                counters[name] = counters.get(name, 0) + value * people
        return dict(villages)


def lineage(code: str, regions: RegionDirectory) -> list[str]:
    """The region and its ancestors up to ID. A village the directory does not know is still
    added up, by the parents its code's shape names."""
    line = regions.lineage(code)
    if line[-1] != NATIONAL_CODE:
        parts = code.split(".")
        line = [".".join(parts[:n]) for n in range(len(parts), 0, -1)] + [NATIONAL_CODE]
    return line


def by_region(villages: Mapping[str, Mapping[str, int]],
              regions: RegionDirectory | None = None) -> Regions:
    """Village counters added up to every level: village, district, regency, province, ID."""
    regions = regions or directory()
    totals: Regions = defaultdict(dict)
    for village, counters in villages.items():
        for code in lineage(village, regions):
            region = totals[code]
            for name, value in counters.items():
                region[name] = region.get(name, 0) + value
    return {code: {n: v for n, v in c.items() if v} for code, c in totals.items()}


def level_name(code: str, regions: RegionDirectory | None = None) -> str:
    region = (regions or directory()).get(code)
    return region.level if region else (level_of(code) or "unknown")


@dataclass(frozen=True, slots=True)
class Drift:
    """One counter of one region that the live counters get wrong."""

    region: str
    level: str
    counter: str
    live: int
    truth: int

    @property
    def drift(self) -> int:
        return self.live - self.truth

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "drift": self.drift}


def _counter_rank(name: str) -> tuple[int, str]:
    return (COUNTER_ORDER.index(name) if name in COUNTER_ORDER else len(COUNTER_ORDER), name)


def drift_between(live: Mapping[str, Mapping[str, int]], truth: Mapping[str, Mapping[str, int]],
                  regions: RegionDirectory | None = None) -> list[Drift]:
    """Every (region, counter) whose live value is not the truth; a missing counter is 0.
    Nation first, then provinces, regencies, districts, villages, each by code."""
    regions = regions or directory()
    found: list[Drift] = []
    for code in live.keys() | truth.keys():
        mine, right = live.get(code, {}), truth.get(code, {})
        for name in mine.keys() | right.keys():
            if mine.get(name, 0) != right.get(name, 0):
                found.append(Drift(code, level_name(code, regions), name,
                                   mine.get(name, 0), right.get(name, 0)))
    rank: dict[str, int] = {level: n for n, level in enumerate(LEVELS)}
    found.sort(key=lambda d: (rank.get(d.level, len(LEVELS)), d.region, _counter_rank(d.counter)))
    return found


@dataclass(frozen=True, slots=True)
class InternalDrift:
    """A stored village counter of one source partition that its facts do not give."""

    partition: int
    village: str
    counter: str
    counters: int  # village_counters says
    facts: int  # participant_facts give

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Result:
    participants: int
    regions_compared: int
    drift: list[Drift]
    internal: list[InternalDrift] = field(default_factory=list)
    internal_total: int = 0  # internal mismatches found (only the first are listed)
    facts: int = 0  # rows in participant_facts

    @property
    def ok(self) -> bool:
        return not self.drift and not self.internal_total

    @property
    def regions_with_drift(self) -> int:
        return len({d.region for d in self.drift})

    @property
    def national_drift(self) -> int:
        """Absolute drift at the national level, summed over the counters."""
        return sum(abs(d.drift) for d in self.drift if d.region == NATIONAL_CODE)

    def summary(self) -> str:
        internal = ("village counters follow from the facts" if not self.internal_total else
                    f"{self.internal_total} village counters do not follow from the facts")
        return (f"{'OK' if self.ok else 'DRIFT'}: {self.participants} participants, "
                f"{self.regions_compared} regions compared, {self.regions_with_drift} with "
                f"drift, national drift {self.national_drift}; internal: {internal}")

    def to_json(self, limit: int | None = None) -> dict[str, Any]:
        return {"ok": self.ok, "participants": self.participants, "facts": self.facts,
                "regions_compared": self.regions_compared,
                "regions_with_drift": self.regions_with_drift,
                "national_drift": self.national_drift, "drift_rows": len(self.drift),
                "drift": [d.to_json() for d in self.drift[:limit]],
                "internal_rows": self.internal_total,
                "internal": [d.to_json() for d in self.internal[:limit]]}


def compare(live_villages: Mapping[str, Mapping[str, int]], tally: Tally,
            regions: RegionDirectory | None = None) -> Result:
    regions = regions or directory()
    live, truth = by_region(live_villages, regions), by_region(tally.villages(), regions)
    compared = {code for code, c in live.items() if c} | {code for code, c in truth.items() if c}
    return Result(tally.participants, len(compared), drift_between(live, truth, regions))


# The key of the part of a participant's facts that decides where and how it is counted: the
# same expression in SQL (over participant_facts.facts) and in Python (fact_key_of, tests).
# Everything in the facts but the sequences and the village: whether there is a village, and the
# rest (segment, statuses, employer, channel, payments ...).
FACT_KEY_SQL = ("jsonb_build_array((f.facts->>'village') IS NOT NULL, "
                "f.facts - 'seq' - 'village')")
_SOME_VILLAGE = "village"  # stands for any village: where does not change what is counted
_NOT_IN_KEY = ("seq", "village")


def fact_key_of(facts_json: Mapping[str, Any]) -> list[Any]:
    return [facts_json.get("village") is not None,
            {k: v for k, v in facts_json.items() if k not in _NOT_IN_KEY}]


def rules_for(keys: Iterable[Sequence[Any]]) -> list[tuple[list[Any], str, int]]:
    """(key, counter, value) for every distinct fact key: what one participant whose facts
    have that key adds to its village, by counting.py's rules. Lets the database add up a
    million facts without the rules being written twice."""
    rules = []
    for key in keys:
        has_village, rest = key
        if not isinstance(rest, dict):
            continue
        if not isinstance(rest.get("status"), dict):
            rest = {**rest, "status": {}}
        facts = Facts.from_json({**rest, "village": _SOME_VILLAGE if has_village else None})
        state = counted_state(facts)
        if state is not None:
            rules += [(list(key), name, value) for name, value in contribution(state).items()]
    return rules


_PARTITIONER = DefaultPartitioner()
_PARTITIONS = list(range(PARTICIPANT_PARTITIONS))


def partition_of(participant_id: str) -> int:
    """The source partition a participant's events travel in (the relay hashes the key)."""
    return int(_PARTITIONER(participant_id.encode(), _PARTITIONS, _PARTITIONS))


# --- the databases ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceUrls:
    registration: str
    contributions: str
    coverage: str


@contextlib.asynccontextmanager
async def _connection(url: str, command_timeout: float) -> AsyncIterator[asyncpg.Connection]:
    """One connection with deadlines: to connect, on every statement, and to close."""
    conn = await asyncpg.connect(url, timeout=CONNECT_TIMEOUT, command_timeout=command_timeout)
    try:
        yield conn
    finally:
        await conn.close(timeout=CONNECT_TIMEOUT)


Memberships = Sequence[tuple[MembershipSource, asyncpg.Connection]]
Sourced = list[tuple[str, Facts]]  # participant id, the facts its sources give


_PARTICIPANTS = ("SELECT id, region_code, segment, status, version, employer_id, channel,"
                 " agent_id, registered_on FROM participants")


async def read_sources(registration: asyncpg.Connection, memberships: Memberships,
                       chunk: int = CHUNK) -> AsyncIterator[Sourced]:
    """Every participant with their facts, in chunks, in participant id order (keyset
    pagination: each chunk is a few short queries, however many participants there are)."""
    after: Any = None
    while True:
        if after is None:
            rows = await registration.fetch(f"{_PARTICIPANTS} ORDER BY id LIMIT $1", chunk)
        else:
            rows = await registration.fetch(
                f"{_PARTICIPANTS} WHERE id > $1 ORDER BY id LIMIT $2", after, chunk)
        if not rows:
            return
        after = rows[-1]["id"]
        yield await _with_memberships(rows, [
            await conn.fetch(source.in_range, rows[0]["id"], after) for source, conn in
            memberships], memberships)
        if len(rows) < chunk:
            return


async def read_participants(registration: asyncpg.Connection, memberships: Memberships,
                            ids: Sequence[Any]) -> Sourced:
    """The facts of the participants `ids` (those the registration database does not know are
    left out)."""
    out: Sourced = []
    for begin in range(0, len(ids), CHUNK):
        some = list(ids[begin:begin + CHUNK])
        rows = await registration.fetch(f"{_PARTICIPANTS} WHERE id = ANY($1::uuid[])", some)
        out += await _with_memberships(rows, [
            await conn.fetch(source.by_ids, some) for source, conn in memberships], memberships)
    return out


async def _with_memberships(rows: Sequence[Any], published: Sequence[Sequence[Any]],
                            memberships: Memberships) -> Sourced:
    known: dict[str, list[MembershipRow]] = defaultdict(list)
    for (source, _), found in zip(memberships, published, strict=True):
        for m in found:
            extra = dict(m)
            known[str(m["participant_id"])].append(MembershipRow(
                source.name, m["status"], m["sequence"],
                months_paid=extra.get("months_paid") or 0,
                paid_through=extra.get("paid_through"),
                programmes=tuple(extra.get("programmes") or ()),
                collected=_sums(extra.get("collected")), funded=_sums(extra.get("funded"))))
    out: Sourced = []
    for r in rows:
        participant = ParticipantRow(str(r["id"]), r["region_code"], r["segment"], r["status"],
                                     r["version"], r["employer_id"], r["channel"], r["agent_id"],
                                     str(r["registered_on"]))
        out.append((participant.participant_id,
                    facts_from_sources(participant, known.get(participant.participant_id, ()))))
    return out


_DERIVED_COUNTERS = f"""
    SELECT f.partition, f.facts->>'village' AS village, r.name, sum(r.value)::bigint AS value
    FROM participant_facts f
    JOIN unnest($1::jsonb[], $2::text[], $3::bigint[]) AS r(key, name, value)
      ON r.key = {FACT_KEY_SQL}
    GROUP BY 1, 2, 3
"""


async def _rule_arrays(conn: asyncpg.Connection) -> tuple[list[str], list[str], list[int]]:
    """The rules for the fact keys present in participant_facts, as query arguments."""
    keys = [orjson.loads(r["key"]) for r in await conn.fetch(
        f"SELECT DISTINCT {FACT_KEY_SQL} AS key FROM participant_facts f")]
    rules = rules_for(keys)
    return ([orjson.dumps(k).decode() for k, _, _ in rules], [n for _, n, _ in rules],
            [v for _, _, v in rules])


async def internal_drift(conn: asyncpg.Connection, limit: int
                          ) -> tuple[list[InternalDrift], int]:
    rows = await conn.fetch(f"""
        WITH derived AS ({_DERIVED_COUNTERS}),
             stored AS (SELECT partition, village, name, value FROM village_counters
                        WHERE value <> 0 AND name NOT LIKE 'claims.%')
        SELECT coalesce(d.partition, s.partition) AS partition,
               coalesce(d.village, s.village) AS village, coalesce(d.name, s.name) AS name,
               coalesce(s.value, 0) AS counters, coalesce(d.value, 0) AS facts,
               count(*) OVER () AS total
        FROM derived d FULL JOIN stored s
          ON s.partition = d.partition AND s.village = d.village AND s.name = d.name
        WHERE coalesce(s.value, 0) <> coalesce(d.value, 0)
        ORDER BY 1, 2, 3 LIMIT $4""", *await _rule_arrays(conn), limit)
    return ([InternalDrift(r["partition"], r["village"], r["name"], r["counters"], r["facts"])
             for r in rows], rows[0]["total"] if rows else 0)


async def stored_villages(conn: asyncpg.Connection) -> Villages:
    villages: Villages = defaultdict(dict)
    for r in await conn.fetch("SELECT village, name, sum(value)::bigint AS value"
                              " FROM village_counters WHERE name NOT LIKE 'claims.%'"
                              " GROUP BY 1, 2 HAVING sum(value) <> 0"):
        villages[r["village"]][r["name"]] = r["value"]
    return dict(villages)


async def reconcile(registration_url: str, contributions_url: str, coverage_url: str, *,
                    internal_limit: int = 1000,
                    command_timeout: float = COMMAND_TIMEOUT) -> Result:
    """Compare the live counters with the truth from the sources, once."""
    async with contextlib.AsyncExitStack() as stack:
        registration, contributions, coverage = [
            await stack.enter_async_context(_connection(url, command_timeout))
            for url in (registration_url, contributions_url, coverage_url)]
        # The coverage side in one snapshot, so the internal check sees whole transactions.
        async with coverage.transaction(isolation="repeatable_read", readonly=True):
            live = await stored_villages(coverage)
            internal, internal_total = await internal_drift(coverage, internal_limit)
            facts = await coverage.fetchval("SELECT count(*) FROM participant_facts")
        tally = Tally()
        async for chunk in read_sources(registration, [(CONTRIBUTIONS, contributions)]):
            for _, participant_facts in chunk:
                tally.add(participant_facts)
    result = compare(live, tally)
    result.internal, result.internal_total, result.facts = internal, internal_total, facts
    return result


async def reconcile_until(registration_url: str, contributions_url: str, coverage_url: str,
                          wait_seconds: float, **options: Any) -> Result:
    """Compare again every ~0.5 s until there is no drift or `wait_seconds` have passed (events
    may be in flight); the last comparison."""
    deadline = time.monotonic() + wait_seconds
    while True:
        result = await reconcile(registration_url, contributions_url, coverage_url, **options)
        if result.ok or time.monotonic() >= deadline:
            return result
        await asyncio.sleep(min(REPEAT_SECONDS, max(0.0, deadline - time.monotonic())))


@dataclass
class Repair:
    participants: int
    reread: int  # participants read again under the lock: their facts moved meanwhile
    facts_written: int  # inserted or changed
    facts_deleted: int  # facts of participants the sources do not know
    counters_written: int  # inserted or changed
    counters_zeroed: int
    versions: dict[int, int]  # partition → its new version

    def summary(self) -> str:
        return (f"repaired: {self.participants} participants ({self.reread} read again under "
                f"the lock); facts {self.facts_written} written, {self.facts_deleted} deleted; "
                f"village counters {self.counters_written} written, {self.counters_zeroed} set "
                f"to 0; every partition's version +1")


class StateRules:
    """A small number for each state a participant is counted in (its village aside), and what
    one participant in it adds to its village (counting.contribution), so the database can add
    up a million participants without the rules being written twice. Where a participant is
    counted never changes what it adds: the village only says where it goes."""

    def __init__(self) -> None:
        self._ids: dict[CountedState, int] = {}
        self._rules: list[tuple[int, str, int]] = []

    def id_of(self, state: CountedState | None) -> int | None:
        if state is None:
            return None
        key = replace(state, village="")
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self._ids)
            self._rules += [(found, name, value) for name, value in contribution(state).items()]
        return found

    def arrays(self) -> tuple[list[int], list[str], list[int]]:
        return ([i for i, _, _ in self._rules], [n for _, n, _ in self._rules],
                [v for _, _, v in self._rules])


def _affected(status: str) -> int:
    """Rows an INSERT/UPDATE/DELETE touched, from its command status ("INSERT 0 12")."""
    return int(status.rsplit(" ", 1)[-1])


async def repair(registration_url: str, contributions_url: str, coverage_url: str, *,
                 command_timeout: float = COMMAND_TIMEOUT) -> Repair:
    """Rebuild participant_facts and village_counters from the sources, in one transaction."""
    async with contextlib.AsyncExitStack() as stack:
        registration, contributions, coverage = [
            await stack.enter_async_context(_connection(url, command_timeout))
            for url in (registration_url, contributions_url, coverage_url)]
        async with coverage.transaction():
            return await _rebuild(coverage, registration, [(CONTRIBUTIONS, contributions)])


# Stored facts that moved after the sources were read: a participant registered meanwhile, or
# a source sequence newer than the one read (a worker counted a newer event). Stored facts
# that cannot be read are read again too.
_MOVED_SINCE_READ = r"""
    SELECT f.participant_id FROM participant_facts f
    LEFT JOIN repair_facts r ON r.participant_id = f.participant_id
    WHERE r.participant_id IS NULL
       OR CASE WHEN jsonb_typeof(f.facts->'seq') = 'object' THEN EXISTS (
            SELECT FROM jsonb_each_text(f.facts->'seq') AS s(source, sequence)
            WHERE CASE WHEN s.sequence ~ '^[0-9]{1,18}$'
                       THEN s.sequence::bigint > coalesce((r.facts->'seq'->>s.source)::bigint, 0)
                       ELSE true END)
          ELSE true END
"""


async def _stage(coverage: asyncpg.Connection, sourced: Sourced, rules: StateRules) -> None:
    await coverage.copy_records_to_table("repair_facts", records=[
        (pid, partition_of(pid), orjson.dumps(facts.to_json()).decode(), facts.village,
         rules.id_of(counted_state(facts))) for pid, facts in sourced])


async def _rebuild(coverage: asyncpg.Connection, registration: asyncpg.Connection,
                   memberships: Memberships) -> Repair:
    rules = StateRules()
    await coverage.execute("""
        CREATE TEMP TABLE repair_facts (participant_id uuid, partition smallint, facts jsonb,
                                        village text, state int) ON COMMIT DROP""")
    # The sources are read before the lock, so the workers keep counting meanwhile; whatever
    # they counted between that read and the lock is read again under it (below).
    async for chunk in read_sources(registration, memberships):
        await _stage(coverage, chunk, rules)
    await coverage.execute("ANALYZE repair_facts")  # temp tables are never auto-analyzed
    # Every partition a worker could count in, or a counter could be stored under, has its row,
    # and all are locked in order (as a counting transaction locks its own): workers wait.
    await coverage.execute("""
        INSERT INTO counting_partitions (partition)
        SELECT generate_series(0, $1::int - 1)
        UNION SELECT DISTINCT partition FROM village_counters
        ON CONFLICT (partition) DO NOTHING""", PARTICIPANT_PARTITIONS)
    await coverage.execute("SELECT partition FROM counting_partitions ORDER BY partition"
                           " FOR UPDATE")
    # Now every participant's staged facts hold, per source, a sequence at least as new as any
    # event counted so far: an event still in flight is either in them (a replay, skipped) or
    # newer (it applies on top).
    moved = [r["participant_id"] for r in await coverage.fetch(_MOVED_SINCE_READ)]
    if moved:
        await coverage.execute("DELETE FROM repair_facts WHERE participant_id = ANY($1::uuid[])",
                               moved)
        await _stage(coverage, await read_participants(registration, memberships, moved), rules)
    participants = await coverage.fetchval("SELECT count(*) FROM repair_facts")
    facts_deleted = _affected(await coverage.execute("""
        DELETE FROM participant_facts f
        WHERE NOT EXISTS (SELECT FROM repair_facts r WHERE r.participant_id = f.participant_id)
    """))
    facts_written = _affected(await coverage.execute("""
        INSERT INTO participant_facts (participant_id, partition, facts)
        SELECT r.participant_id, r.partition, r.facts FROM repair_facts r
        LEFT JOIN participant_facts f ON f.participant_id = r.participant_id
        WHERE f.participant_id IS NULL OR f.partition <> r.partition OR f.facts <> r.facts
        ON CONFLICT (participant_id) DO UPDATE
          SET partition = EXCLUDED.partition, facts = EXCLUDED.facts"""))
    await coverage.execute("""
        CREATE TEMP TABLE repair_counters (partition smallint, village text, name text,
                                           value bigint) ON COMMIT DROP""")
    await coverage.execute("""
        INSERT INTO repair_counters
        SELECT f.partition, f.village, r.name, sum(r.value)
        FROM repair_facts f
        JOIN unnest($1::int[], $2::text[], $3::bigint[]) AS r(state, name, value)
          ON r.state = f.state
        GROUP BY 1, 2, 3""", *rules.arrays())
    await coverage.execute("ANALYZE repair_counters")
    versions = {r["partition"]: r["version"] for r in await coverage.fetch("""
        UPDATE counting_partitions SET version = version + 1, updated_at = now()
        RETURNING partition, version""")}
    counters_written = _affected(await coverage.execute("""
        INSERT INTO village_counters (partition, village, name, value, version)
        SELECT r.partition, r.village, r.name, r.value, p.version
        FROM repair_counters r JOIN counting_partitions p USING (partition)
        LEFT JOIN village_counters c
          ON c.partition = r.partition AND c.village = r.village AND c.name = r.name
        WHERE c.value IS DISTINCT FROM r.value
        ON CONFLICT (partition, village, name) DO UPDATE
          SET value = EXCLUDED.value, version = EXCLUDED.version"""))
    counters_zeroed = _affected(await coverage.execute("""
        UPDATE village_counters c SET value = 0, version = p.version
        FROM counting_partitions p
        WHERE p.partition = c.partition AND c.value <> 0 AND c.name NOT LIKE 'claims.%'
          AND NOT EXISTS (SELECT FROM repair_counters r WHERE r.partition = c.partition
                          AND r.village = c.village AND r.name = c.name)"""))
    return Repair(participants, len(moved), facts_written, facts_deleted, counters_written,
                  counters_zeroed, versions)


# --- the command ------------------------------------------------------------------------------


class ReconcileSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    run_dir: Path = Field(default=Path(__file__).resolve().parents[2] / ".run",
                          validation_alias=AliasChoices("UCJ_RUN_DIR"))


def stack_database_urls(run_dir: Path) -> dict[str, str]:
    """The local stack's database URLs (deploy/local/stack.py records them), or {}."""
    try:
        state = json.loads((run_dir / "stack.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    databases = state.get("databases")
    return dict(databases) if isinstance(databases, dict) else {}


def source_urls(args: argparse.Namespace, run_dir: Path) -> SourceUrls:
    recorded = stack_database_urls(run_dir)
    urls = {}
    for name in ("registration", "contributions", "coverage"):
        url = getattr(args, f"{name}_db") or recorded.get(f"ucj_{name}")
        if not url:
            raise ValueError(f"no URL for the {name} database: pass --{name}-db, or start the "
                             f"local stack (./ucj up records them in {run_dir}/stack.json)")
        urls[name] = url
    return SourceUrls(**urls)


def render(result: Result, limit: int) -> str:
    lines = []
    if result.drift:
        lines.append(f"{'region':<15} {'level':<9} {'counter':<16} {'live':>9} {'truth':>9} "
                     f"{'drift':>8}")
        for d in result.drift[:limit]:
            lines.append(f"{d.region:<15} {d.level:<9} {d.counter:<16} {d.live:>9} "
                         f"{d.truth:>9} {d.drift:>+8}")
        if len(result.drift) > limit:
            lines.append(f"... and {len(result.drift) - limit} more")
    if result.internal:
        lines.append("internal: village counters that do not follow from participant_facts")
        lines.append(f"{'partition':>9} {'village':<15} {'counter':<16} {'counters':>9} "
                     f"{'facts':>9}")
        for i in result.internal[:limit]:
            lines.append(f"{i.partition:>9} {i.village:<15} {i.counter:<16} {i.counters:>9} "
                         f"{i.facts:>9}")
        if result.internal_total > min(limit, len(result.internal)):
            lines.append(f"... and {result.internal_total - min(limit, len(result.internal))}"
                         " more")
    lines.append(result.summary())
    return "\n".join(lines)


async def run(args: argparse.Namespace, urls: SourceUrls) -> int:
    repaired = None
    if args.repair:
        repaired = await repair(urls.registration, urls.contributions, urls.coverage,
                                command_timeout=args.command_timeout)
        if not args.json:
            print(repaired.summary())
    result = await reconcile_until(urls.registration, urls.contributions, urls.coverage,
                                   args.wait, command_timeout=args.command_timeout,
                                   internal_limit=args.limit)
    if args.json:
        body = result.to_json(args.limit)
        if repaired is not None:
            body["repair"] = asdict(repaired)
        print(json.dumps(body, indent=2))
    else:
        print(render(result, args.limit))
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ucj reconcile", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registration-db", metavar="URL")
    parser.add_argument("--contributions-db", metavar="URL")
    parser.add_argument("--coverage-db", metavar="URL")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="compare again every ~0.5 s until no drift or SECONDS passed")
    parser.add_argument("--repair", action="store_true",
                        help="rebuild the coverage counting state from the sources first")
    parser.add_argument("--json", action="store_true", help="print a machine-readable result")
    parser.add_argument("--limit", type=int, default=500, metavar="N",
                        help="list at most N drift rows of each kind (default 500)")
    parser.add_argument("--command-timeout", type=float, default=COMMAND_TIMEOUT,
                        metavar="SECONDS", help="deadline of any one SQL statement")
    args = parser.parse_args(argv)
    try:
        urls = source_urls(args, ReconcileSettings().run_dir)
    except ValueError as exc:
        parser.error(str(exc))  # exit status 2: 1 means drift
    try:
        return asyncio.run(run(args, urls))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"reconcile: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
