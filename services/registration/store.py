"""The registration service's SQL: `PgRegistrationUnit` (handlers.RegistrationUnit on one
connection): participants, their events (outbox), Idempotency-Keys, grants and the PII audit."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from services.registration import domain
from services.registration.handlers import KeyUse, Outcome, Participant, Reply
from services.registration.schemas import ParticipantIn
from shared.events import (
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
        born_in=f"{record['birth_date']:%Y-%m}", owner=record["registered_by"], **extra)
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

    def __init__(self, conn: asyncpg.Connection, *, topic: str, kpjs: KpjAllocator):
        self._conn = conn
        self._topic = topic
        self._kpjs = kpjs

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
                "owner": owner,
            }, source=SOURCE, subject=str(pid), sequence=1, occurred_at=occurred_at)
            for row, pid, kpj in zip(rows, ids, numbers, strict=True)
        ]
        inserted = await self._conn.fetch(
            """
            WITH batch AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::date[],
                                     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                     $11::bigint[], $12::text[], $13::bytea[]) WITH ORDINALITY
                    AS u(id, kpj, nik, full_name, birth_date, sex, region_code, segment,
                         employer_id, occupation, monthly_income, programs, event, position)
            ), participant AS (
                INSERT INTO participants (id, kpj, nik, full_name, birth_date, sex, region_code,
                                          segment, employer_id, occupation, monthly_income,
                                          programs, registered_by)
                SELECT id, kpj, nik, full_name, birth_date, sex, region_code, segment,
                       employer_id, occupation, monthly_income, string_to_array(programs, ' '),
                       $14
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
