"""The registration service's SQL: `PgRegistrationUnit` (handlers.RegistrationUnit on one
connection): participants, their events (outbox), Idempotency-Keys, grants and the PII audit."""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import orjson

from services.registration import domain, employers
from services.registration.handlers import (
    EmployerRecord,
    KeyUse,
    Outcome,
    Participant,
    Reply,
)
from services.registration.schemas import ParticipantIn
from shared.events import (
    DeclaredWorkers,
    EmployerChanged,
    EmployerRegistered,
    ParticipantChanged,
    ParticipantRegistered,
    envelope_bytes,
    make_envelope,
)
from shared.outbox import add_events

SOURCE = "registration"

PARTICIPANT_COLUMNS = """
    id AS participant_id, kpj, nik, full_name, birth_date, sex, region_code, segment,
    employer_id, occupation, monthly_income, programs, status, version, registered_by,
    registered_on, channel, agent_id, office_village
"""
EMPLOYER_COLUMNS = """
    id AS employer_id, name, kind, region_code, npp, declared_workers, version,
    (registered_at AT TIME ZONE 'Asia/Jakarta')::date AS registered_on
"""


def state_event(record: Any, payload_type: type[ParticipantRegistered] | type[ParticipantChanged],
                **extra: Any):
    """The participant's event (no personal data: no NIK, name, sex or birth date; the birth
    month only)."""
    payload = payload_type(
        participant_id=record["participant_id"], kpj=record["kpj"],
        region_code=record["region_code"], segment=record["segment"],
        employer_id=record["employer_id"], monthly_income=record["monthly_income"],
        programs=list(record["programs"]), registered_on=str(record["registered_on"]),
        born_in=f"{record['birth_date']:%Y-%m}", owner=record["registered_by"],
        channel=record["channel"], agent_id=record["agent_id"],
        office_village=record["office_village"], **extra)
    return make_envelope(payload, source=SOURCE, subject=str(record["participant_id"]),
                         sequence=record["version"])


def new_ids(n: int) -> list[uuid.UUID]:
    """n random (version 4) UUIDs from one call to the OS's random source, not n calls."""
    noise = os.urandom(16 * n)
    return [uuid.UUID(bytes=noise[i * 16:(i + 1) * 16], version=4) for i in range(n)]


class KpjAllocator:
    """KPJ sequence numbers handed out from blocks of KPJ_BLOCK, one database round trip per
    block rather than per registration (numbers of a block a process never uses are skipped:
    membership numbers need to be unique, not gap-free)."""

    def __init__(self) -> None:
        self._next = 0
        self._end = 0  # exclusive

    async def take(self, conn: asyncpg.Connection, n: int) -> list[int]:
        numbers: list[int] = []
        while len(numbers) < n:
            if self._next >= self._end:
                start = await conn.fetchval("SELECT nextval('kpj_sequence')")
                self._next, self._end = start, start + KPJ_BLOCK
            # Taken without an await in between, so concurrent requests never share a number.
            count = min(self._end - self._next, n - len(numbers))
            numbers.extend(range(self._next, self._next + count))
            self._next += count
        return numbers


KPJ_BLOCK = 1000  # the sequence's INCREMENT (migration 0001)


class PgRegistrationUnit:
    """handlers.RegistrationUnit on one connection, inside the caller's transaction (if any)."""

    def __init__(self, conn: asyncpg.Connection, *, topic: str, kpjs: KpjAllocator,
                 organisations_topic: str = "ucj.organisations"):
        self._conn = conn
        self._topic = topic
        self._kpjs = kpjs
        self._organisations = organisations_topic

    async def register(self, rows: Sequence[ParticipantIn], *, owner: str,
                       today: date) -> list[Outcome]:
        # ONE statement for the participants and their events: atomic also outside a
        # transaction.
        if not rows:
            return []
        ids = new_ids(len(rows))
        numbers = [domain.kpj_for(n) for n in await self._kpjs.take(self._conn, len(rows))]
        registered_on = str(today)
        occurred_at = datetime.now(UTC)
        payloads = [
            envelope_bytes(ParticipantRegistered, {
                "participant_id": str(pid), "kpj": kpj, "region_code": row.region_code,
                "segment": row.segment, "employer_id": row.employer_id,
                "monthly_income": row.monthly_income, "programs": list(row.programs),
                "registered_on": registered_on, "born_in": f"{row.birth_date:%Y-%m}",
                "owner": owner, "channel": row.channel, "agent_id": row.agent_id,
                "office_village": row.office_village,
            }, source=SOURCE, subject=str(pid), sequence=1, occurred_at=occurred_at)
            for row, pid, kpj in zip(rows, ids, numbers, strict=True)
        ]
        inserted = await self._conn.fetch(
            """
            WITH batch AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::date[],
                                     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                     $11::bigint[], $12::text[], $13::bytea[], $17::text[],
                                     $18::text[], $19::text[]) WITH ORDINALITY
                    AS u(id, kpj, nik, full_name, birth_date, sex, region_code, segment,
                         employer_id, occupation, monthly_income, programs, event, channel,
                         agent_id, office_village, position)
            ), participant AS (
                INSERT INTO participants (id, kpj, nik, full_name, birth_date, sex, region_code,
                                          segment, employer_id, occupation, monthly_income,
                                          programs, registered_by, channel, agent_id,
                                          office_village, registered_on)
                SELECT id, kpj, nik, full_name, birth_date, sex, region_code, segment,
                       employer_id, occupation, monthly_income, string_to_array(programs, ' '),
                       $14, channel, agent_id, office_village, $20::date
                FROM batch ORDER BY position
                ON CONFLICT (nik) WHERE status <> 'terminated' DO NOTHING
                RETURNING id
            )
            INSERT INTO outbox (topic, key, event_type, payload)
            SELECT $15, batch.id::text, $16, batch.event
            FROM batch JOIN participant USING (id) ORDER BY batch.position
            RETURNING key
            """,
            ids, numbers, [r.nik for r in rows], [r.full_name for r in rows],
            [r.birth_date for r in rows], [r.sex for r in rows], [r.region_code for r in rows],
            [r.segment for r in rows], [r.employer_id for r in rows],
            [r.occupation for r in rows], [r.monthly_income for r in rows],
            [" ".join(r.programs) for r in rows], payloads,
            owner, self._topic, ParticipantRegistered.TYPE,
            [r.channel for r in rows], [r.agent_id for r in rows],
            [r.office_village for r in rows], today,
        )
        created = {uuid.UUID(r["key"]) for r in inserted}
        existing: dict[str, uuid.UUID] = {}
        if len(created) < len(rows):
            duplicates = [r.nik for r, i in zip(rows, ids, strict=True) if i not in created]
            for record in await self._conn.fetch(
                "SELECT id, nik FROM participants WHERE nik = ANY($1) AND status <> 'terminated'",
                duplicates,
            ):
                existing[record["nik"]] = record["id"]
        return [Outcome(pid, kpj, True) if pid in created
                else Outcome(existing[row.nik], None, False)
                for row, pid, kpj in zip(rows, ids, numbers, strict=True)]

    async def participant(self, participant_id: uuid.UUID, *,
                          lock: bool = False) -> Participant | None:
        return await self._conn.fetchrow(
            f"SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE id = $1"
            + (" FOR UPDATE" if lock else ""), participant_id)

    async def is_granted(self, participant_id: uuid.UUID, partner_id: str) -> bool:
        return bool(await self._conn.fetchval(
            "SELECT 1 FROM participant_grants WHERE participant_id = $1 AND key_id = $2",
            participant_id, partner_id))

    async def change(self, participant: Participant, changes: dict[str, Any]) -> Participant:
        updated = await self._conn.fetchrow(
            f"""
            UPDATE participants
            SET region_code = $2, segment = $3, employer_id = $4, monthly_income = $5,
                programs = $6, version = version + 1, updated_at = now()
            WHERE id = $1
            RETURNING {PARTICIPANT_COLUMNS}
            """,
            participant["participant_id"],
            changes.get("region_code", participant["region_code"]),
            changes.get("segment", participant["segment"]),
            changes.get("employer_id", participant["employer_id"]),
            changes.get("monthly_income", participant["monthly_income"]),
            list(changes["programs"] if "programs" in changes else participant["programs"]),
        )
        assert updated is not None
        await add_events(self._conn, self._topic, [
            state_event(updated, ParticipantChanged, changed=sorted(changes))])
        return updated

    # --- Idempotency-Key ----------------------------------------------------------------------

    async def claim_idempotency_key(self, owner: str, key: str,
                                    request_hash: bytes) -> KeyUse | None:
        taken = await self._conn.fetchval(
            "INSERT INTO idempotency_keys (caller, key, request_hash) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING true", owner, key, request_hash)
        if taken:
            return None
        earlier = await self._conn.fetchrow(
            "SELECT request_hash, status_code, body FROM idempotency_keys"
            " WHERE caller = $1 AND key = $2", owner, key)
        return KeyUse(earlier["request_hash"], Reply(earlier["status_code"], earlier["body"]))

    async def save_reply(self, owner: str, key: str, reply: Reply) -> None:
        await self._conn.execute(
            "UPDATE idempotency_keys SET status_code = $3, body = $4"
            " WHERE caller = $1 AND key = $2", owner, key, reply.status, reply.body)

    # --- access: the PII audit, grants, lookup ------------------------------------------------

    async def audit_pii_read(self, key_id: str, participant_id: uuid.UUID,
                             reason: str) -> None:
        await self._conn.execute("INSERT INTO pii_reads (key_id, participant_id, reason)"
                                 " VALUES ($1, $2, $3)", key_id, participant_id, reason)

    async def partner_of(self, key_id: str) -> str:
        found = await self._conn.fetchval(
            "SELECT partner_id::text FROM api_keys WHERE id::text = $1", key_id)
        return found or key_id

    async def grant(self, participant_id: uuid.UUID, partner_id: str,
                    granted_by: str) -> None:
        await self._conn.execute(
            "INSERT INTO participant_grants (participant_id, key_id, granted_by)"
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", participant_id, partner_id,
            granted_by)

    async def live_participant_by_nik(self, nik: str) -> uuid.UUID | None:
        return await self._conn.fetchval(
            "SELECT id FROM participants WHERE nik = $1 AND status <> 'terminated'", nik)

    # --- employers ------------------------------------------------------------------------------

    async def employer_kinds(self, employer_ids: Collection[str]) -> dict[str, str]:
        # Ids without a UUID's shape (workers registered before employers were) name no one.
        ids = [i for i in employer_ids if domain.is_employer_id(i)]
        if not ids:
            return {}
        rows = await self._conn.fetch(
            "SELECT id::text AS id, kind FROM employers WHERE id = ANY($1::uuid[])", ids)
        return {r["id"]: r["kind"] for r in rows}

    async def add_employer(self, employer: employers.Employer, *,
                           owner: str) -> tuple[EmployerRecord | None, uuid.UUID | None]:
        employer_id = new_ids(1)[0]
        row = await self._conn.fetchrow(
            f"""
            INSERT INTO employers (id, name, kind, region_code, npp, declared_workers,
                                   registered_by)
            VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)
            ON CONFLICT (npp) DO NOTHING
            RETURNING {EMPLOYER_COLUMNS}
            """,
            employer_id, employer.name, employer.kind, employer.region_code, employer.npp,
            _declared_json(employer.declared), owner)
        if row is None:
            existing = await self._conn.fetchval("SELECT id FROM employers WHERE npp = $1",
                                                 employer.npp)
            return None, existing
        record = _employer(row)
        await add_events(self._conn, self._organisations,
                         [employer_event(record, EmployerRegistered)])
        return record, None

    async def employer(self, employer_id: uuid.UUID, *,
                       lock: bool = False) -> EmployerRecord | None:
        row = await self._conn.fetchrow(
            f"SELECT {EMPLOYER_COLUMNS} FROM employers WHERE id = $1"
            + (" FOR UPDATE" if lock else ""), employer_id)
        return None if row is None else _employer(row)

    async def change_declared(self, employer: EmployerRecord,
                              declared: tuple[employers.Declared, ...]) -> EmployerRecord:
        row = await self._conn.fetchrow(
            f"""
            UPDATE employers SET declared_workers = $2::jsonb, version = version + 1,
                                 updated_at = now()
            WHERE id = $1
            RETURNING {EMPLOYER_COLUMNS}
            """, employer["employer_id"], _declared_json(declared))
        assert row is not None
        record = _employer(row)
        await add_events(self._conn, self._organisations,
                         [employer_event(record, EmployerChanged)])
        return record

    async def employers_page(self, *, region: str | None, kind: str | None, limit: int,
                             after: uuid.UUID | None) -> list[EmployerRecord]:
        rows = await self._conn.fetch(
            f"""
            SELECT {EMPLOYER_COLUMNS} FROM employers
            WHERE ($1::text IS NULL OR region_code = $1 OR region_code LIKE $1 || '.%')
              AND ($2::text IS NULL OR kind = $2)
              AND ($3::uuid IS NULL OR id > $3)
            ORDER BY id LIMIT $4
            """, region, kind, after, limit)
        return [_employer(r) for r in rows]


def _declared_json(declared: Sequence[employers.Declared]) -> str:
    return orjson.dumps([{"year": d.year, "count": d.count, "source": d.source}
                         for d in declared]).decode()


def _employer(row: Any) -> EmployerRecord:
    """An employers row as handlers.EmployerRecord: declared figures as employers.Declared."""
    record = dict(row)
    raw = record.pop("declared_workers")
    figures = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    record["declared"] = tuple(employers.Declared(d["year"], d["count"], d.get("source"))
                               for d in figures)
    return record


def employer_event(record: EmployerRecord,
                   payload_type: type[EmployerRegistered] | type[EmployerChanged]) -> Any:
    """The employer's event: subject its id, sequence its version."""
    payload = payload_type(
        employer_id=record["employer_id"], name=record["name"], kind=record["kind"],
        region_code=record["region_code"], npp=record["npp"],
        declared_workers=[DeclaredWorkers(year=d.year, count=d.count, source=d.source)
                          for d in record["declared"]])
    return make_envelope(payload, source=SOURCE, subject=str(record["employer_id"]),
                         sequence=record["version"])
