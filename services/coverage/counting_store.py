"""The coverage worker's state in its PostgreSQL database: SQL only (the rules are in
counting.py). Schema and why: migrations/0002_counting_state.sql and README.md.

`fold_in_transaction` is the tracking-record transaction: lock the batch's partitions, read
the facts of its participants, fold (pure), write the new facts, move the village counters,
record the source offsets. It commits all of that or nothing, so the state that decides "seen
before" is exactly the state whoever owns a partition next reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import orjson

from services.coverage.counting import (
    ClaimFacts,
    CounterCell,
    Facts,
    FoldedBatch,
    Organisation,
    SourceEvent,
    fold_batch,
)
from shared.events import ClaimState
from shared.regions import directory


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """The next offset to fold of one source topic partition."""

    topic: str
    partition: int
    next_offset: int


async def ensure_partitions(conn: asyncpg.Connection, count: int) -> None:
    await conn.execute(
        "INSERT INTO counting_partitions (partition) SELECT generate_series(0, $1 - 1)"
        " ON CONFLICT DO NOTHING", count)


async def fold_in_transaction(conn: asyncpg.Connection, events: Sequence[SourceEvent],
                              positions: Sequence[SourcePosition]) -> FoldedBatch:
    """Fold `events` (in order) and record `positions`, in the caller's transaction."""
    partitions = sorted({e.partition for e in events} | {p.partition for p in positions})
    # Missing rows first (a partition seen for the first time), then lock in order: two
    # workers holding overlapping partitions during a rebalance take turns, never deadlock.
    await conn.execute(
        "INSERT INTO counting_partitions (partition) SELECT unnest($1::smallint[])"
        " ON CONFLICT DO NOTHING", partitions)
    versions = {r["partition"]: r["version"] for r in await conn.fetch(
        "SELECT partition, version FROM counting_partitions WHERE partition = ANY($1::smallint[])"
        " ORDER BY partition FOR UPDATE", partitions)}
    claim_subjects = list({e.envelope.subject for e in events if isinstance(e.payload, ClaimState)})
    subjects = list({e.envelope.subject for e in events} - set(claim_subjects))
    before = await _stored_facts(conn, subjects)
    folded = fold_batch(before, events, directory().is_village,
                        await _stored_claims(conn, claim_subjects))
    if folded.claims:
        keys = list(folded.claims)
        await conn.execute(
            "INSERT INTO claim_facts (claim_id, partition, facts)"
            " SELECT * FROM unnest($1::uuid[], $2::smallint[], $3::jsonb[])"
            " ON CONFLICT (claim_id) DO UPDATE SET facts = excluded.facts",
            keys, [folded.claims[k][0] for k in keys],
            [orjson.dumps(folded.claims[k][1].to_json()).decode() for k in keys])
    if folded.facts:
        keys = list(folded.facts)
        await conn.execute(
            "INSERT INTO participant_facts (participant_id, partition, facts)"
            " SELECT * FROM unnest($1::uuid[], $2::smallint[], $3::jsonb[])"
            " ON CONFLICT (participant_id) DO UPDATE SET facts = excluded.facts",
            keys, [folded.facts[k][0] for k in keys],
            [orjson.dumps(folded.facts[k][1].to_json()).decode() for k in keys])
    changed = sorted({p for p, _ in folded.deltas}
                     | {p for p, _ in folded.organisations.values()})
    new_version = {p: versions[p] + 1 for p in changed}
    if folded.organisations:
        rows = [(key, organisation.kind, partition, organisation.sequence,
                 orjson.dumps(organisation.data).decode(), new_version[partition])
                for key, (partition, organisation) in folded.organisations.items()]
        await conn.execute(
            "INSERT INTO organisations (id, kind, partition, sequence, data, version)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::smallint[], $4::bigint[],"
            " $5::jsonb[], $6::bigint[])"
            " ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, sequence = excluded.sequence,"
            " data = excluded.data, version = excluded.version"
            " WHERE organisations.sequence < excluded.sequence",
            *[[r[i] for r in rows] for i in range(6)])
    if changed:
        await conn.execute(
            "UPDATE counting_partitions SET version = version + 1, updated_at = now()"
            " WHERE partition = ANY($1::smallint[])", changed)
    if folded.deltas:
        cells = [(p, village, name, value) for (p, village), counters in folded.deltas.items()
                 for name, value in counters.items()]
        await conn.execute(
            "INSERT INTO village_counters (partition, village, name, value, version)"
            " SELECT * FROM unnest($1::smallint[], $2::text[], $3::text[], $4::bigint[],"
            " $5::bigint[])"
            " ON CONFLICT (partition, village, name) DO UPDATE"
            " SET value = village_counters.value + excluded.value, version = excluded.version",
            [c[0] for c in cells], [c[1] for c in cells], [c[2] for c in cells],
            [c[3] for c in cells], [new_version[c[0]] for c in cells])
    if positions:
        await conn.execute(
            "INSERT INTO source_offsets (topic, partition, next_offset)"
            " SELECT * FROM unnest($1::text[], $2::smallint[], $3::bigint[])"
            " ON CONFLICT (topic, partition) DO UPDATE"
            " SET next_offset = GREATEST(source_offsets.next_offset, excluded.next_offset)",
            [p.topic for p in positions], [p.partition for p in positions],
            [p.next_offset for p in positions])
    return folded


async def _stored_facts(conn: asyncpg.Connection, subjects: list[str]) -> dict[str, Facts]:
    if not subjects:
        return {}
    valid = [s for s in subjects if _is_uuid(s)]
    rows = await conn.fetch(
        "SELECT participant_id::text AS id, facts::text AS facts FROM participant_facts"
        " WHERE participant_id = ANY($1::uuid[])", valid)
    return {r["id"]: Facts.from_json(orjson.loads(r["facts"])) for r in rows}


async def _stored_claims(conn: asyncpg.Connection, subjects: list[str]
                         ) -> dict[str, ClaimFacts]:
    if not subjects:
        return {}
    rows = await conn.fetch(
        "SELECT claim_id::text AS id, facts::text AS facts FROM claim_facts"
        " WHERE claim_id = ANY($1::uuid[])", [s for s in subjects if _is_uuid(s)])
    return {r["id"]: ClaimFacts.from_json(orjson.loads(r["facts"])) for r in rows}


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def source_positions(conn: asyncpg.Connection) -> list[SourcePosition]:
    return [SourcePosition(r["topic"], r["partition"], r["next_offset"]) for r in
            await conn.fetch("SELECT topic, partition, next_offset FROM source_offsets")]


# --- the readers' side: counter changes by partition version ---------------------------------


async def counter_changes(conn: asyncpg.Connection, seen: dict[int, int]
                          ) -> tuple[dict[int, int], list[CounterCell], list[Organisation]]:
    """The partitions' versions now, and every counter and organisation changed after the
    versions in `seen`.

    One repeatable-read snapshot: a partition's transactions commit one after the other (its
    row is locked until commit), so every change up to the version read is in the snapshot and
    none after it. A partition that went back (its state was rebuilt) is read whole again.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        versions = {r["partition"]: r["version"] for r in await conn.fetch(
            "SELECT partition, version FROM counting_partitions")}
        moved = [(p, seen.get(p, 0) if seen.get(p, 0) <= v else 0)
                 for p, v in versions.items() if v != seen.get(p, 0)]
        cells: list[CounterCell] = []
        organisations: list[Organisation] = []
        if moved:
            organisations = [
                Organisation(str(r["id"]), r["kind"], r["sequence"], orjson.loads(r["data"]))
                for r in await conn.fetch(
                    "SELECT o.id, o.kind, o.sequence, o.data::text AS data FROM organisations o"
                    " JOIN unnest($1::smallint[], $2::bigint[]) AS s(partition, after)"
                    "   ON o.partition = s.partition AND o.version > s.after",
                    [p for p, _ in moved], [after for _, after in moved])]
            rows = await conn.fetch(
                "SELECT c.partition, c.village, c.name, c.value FROM village_counters c"
                " JOIN unnest($1::smallint[], $2::bigint[]) AS s(partition, after)"
                "   ON c.partition = s.partition AND c.version > s.after",
                [p for p, _ in moved], [after for _, after in moved])
            cells = [CounterCell(r["partition"], r["village"], r["name"], r["value"])
                     for r in rows]
    return versions, cells, organisations
