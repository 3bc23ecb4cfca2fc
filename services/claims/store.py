"""The claims service's SQL: `PgClaimsUnit` (handlers.ClaimsUnit on one transaction), the
reads behind GET, and what the worker learns from events."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import asyncpg
import orjson

from services.claims import rules
from services.claims.handlers import KnownMember, StoredClaim, Topic
from shared.events import (
    ContributionPaid,
    Envelope,
    MembershipStatusChanged,
    ParticipantDeregistered,
    ParticipantState,
    Payload,
    make_envelope,
)
from shared.membership import Period

SOURCE = "claims"

_CLAIM_COLUMNS = """c.id, c.claim_ref, c.request_hash, c.participant_id, c.program,
    c.incident_date, c.cause, c.filed_on, c.filed_by, c.status, c.rule, c.reason, c.benefit,
    c.terminates, c.decided_by, m.region_code"""


def claim_from(row: Any) -> StoredClaim:
    return StoredClaim(
        id=row["id"], claim_ref=row["claim_ref"], request_hash=bytes(row["request_hash"]),
        participant_id=row["participant_id"], program=row["program"],
        incident_date=row["incident_date"], cause=row["cause"], filed_on=row["filed_on"],
        filed_by=row["filed_by"], status=row["status"], rule=row["rule"],
        reason=row["reason"],
        benefit=orjson.loads(row["benefit"]) if row["benefit"] is not None else None,
        terminates=row["terminates"], region_code=row["region_code"] or "",
        decided_by=row["decided_by"])


async def member_facts(conn: asyncpg.Connection | asyncpg.Pool, participant_id: uuid.UUID,
                       *, lock: bool = False) -> KnownMember | None:
    row = await conn.fetchrow(
        "SELECT * FROM members WHERE participant_id = $1" + (" FOR UPDATE" if lock else ""),
        participant_id)
    if row is None:
        return None
    payments = await conn.fetch(
        "SELECT first_period, last_period, paid_on, jht_amount, jp_amount FROM member_payments"
        " WHERE participant_id = $1 ORDER BY sequence", participant_id)
    facts = rules.Member(
        segment=row["segment"], programs=frozenset(row["programs"]),
        registered_on=row["registered_on"], monthly_income=row["monthly_income"],
        born_in=Period.parse(row["born_in"]) if row["born_in"] else None,
        payments=tuple(rules.Payment(
            first=Period.parse(p["first_period"]), last=Period.parse(p["last_period"]),
            paid_on=p["paid_on"], jht_amount=p["jht_amount"], jp_amount=p["jp_amount"])
            for p in payments),
        terminated_on=row["ended_on"])
    return KnownMember(row["participant_id"], row["region_code"], row["owner"],
                       row["ended_reason"], facts)


class PgClaimsUnit:
    """handlers.ClaimsUnit on one connection, inside the caller's transaction."""

    def __init__(self, conn: asyncpg.Connection, topics: dict[Topic, str]):
        self._conn = conn
        self._topics = topics

    async def member(self, participant_id: uuid.UUID) -> KnownMember | None:
        return await member_facts(self._conn, participant_id, lock=True)

    async def claim(self, claim_id: uuid.UUID) -> StoredClaim | None:
        row = await self._conn.fetchrow(
            f"SELECT {_CLAIM_COLUMNS} FROM claims c"
            " LEFT JOIN members m USING (participant_id) WHERE c.id = $1 FOR UPDATE OF c",
            claim_id)
        return claim_from(row) if row else None

    async def claim_with_ref(self, claim_ref: str) -> StoredClaim | None:
        row = await self._conn.fetchrow(
            f"SELECT {_CLAIM_COLUMNS} FROM claims c"
            " LEFT JOIN members m USING (participant_id) WHERE c.claim_ref = $1", claim_ref)
        return claim_from(row) if row else None

    async def has_open_jkm(self, participant_id: uuid.UUID) -> bool:
        return bool(await self._conn.fetchval(
            "SELECT 1 FROM claims WHERE participant_id = $1 AND program = 'JKM'"
            " AND status IN ('submitted', 'approved') LIMIT 1", participant_id))

    async def add(self, claim: StoredClaim) -> bool:
        # A ref that a concurrent request is recording makes this wait for it: taken if it
        # commits, ours if it rolls back.
        added = await self._conn.fetchval(
            "INSERT INTO claims (id, claim_ref, request_hash, participant_id, program,"
            " incident_date, cause, filed_on, filed_by, status, rule, reason, benefit,"
            " terminates) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            " ON CONFLICT (claim_ref) DO NOTHING RETURNING true",
            claim.id, claim.claim_ref, claim.request_hash, claim.participant_id, claim.program,
            claim.incident_date, claim.cause, claim.filed_on, claim.filed_by, claim.status,
            claim.rule, claim.reason,
            orjson.dumps(claim.benefit).decode() if claim.benefit is not None else None,
            claim.terminates)
        return bool(added)

    async def save_decision(self, claim: StoredClaim) -> None:
        await self._conn.execute(
            "UPDATE claims SET status = $2, reason = $3, decided_by = $4, decided_at = now()"
            " WHERE id = $1", claim.id, claim.status, claim.reason, claim.decided_by)

    async def end_membership(self, participant_id: uuid.UUID, reason: str, on: date) -> bool:
        return bool(await self._conn.fetchval(
            "UPDATE members SET ended_on = $2, ended_reason = $3, updated_at = now()"
            " WHERE participant_id = $1 AND ended_reason IS NULL RETURNING true",
            participant_id, on, reason))

    async def publish(self, topic: Topic, key: str, payload: Payload, *, subject: str,
                      sequence: int) -> None:
        envelope = make_envelope(payload, source=SOURCE, subject=subject, sequence=sequence)
        await self._conn.execute(
            "INSERT INTO outbox (topic, key, event_type, payload) VALUES ($1, $2, $3, $4)",
            self._topics[topic], key, envelope.type, envelope.to_bytes())


# --- reads ------------------------------------------------------------------------------------


async def claim_for_reader(pool: asyncpg.Pool, claim_id: uuid.UUID
                           ) -> tuple[StoredClaim, str | None] | None:
    """The claim and the partner that registered its worker (for the ownership rule)."""
    row = await pool.fetchrow(
        f"SELECT {_CLAIM_COLUMNS}, m.owner FROM claims c"
        " LEFT JOIN members m USING (participant_id) WHERE c.id = $1", claim_id)
    return (claim_from(row), row["owner"]) if row else None


async def list_claims(pool: asyncpg.Pool, *, partner: str | None,
                      participant_id: uuid.UUID | None, status: str | None,
                      program: str | None, after: tuple[Any, uuid.UUID] | None,
                      limit: int) -> list[tuple[StoredClaim, Any]]:
    """Claims oldest first, after the cursor; `partner` (None: every claim, for officers)
    limits them to those it filed or whose worker it registered. Each with its created_at."""
    rows = await pool.fetch(
        f"SELECT {_CLAIM_COLUMNS}, c.created_at FROM claims c"
        " LEFT JOIN members m USING (participant_id)"
        " WHERE ($1::text IS NULL OR c.filed_by = $1 OR m.owner = $1)"
        "   AND ($2::uuid IS NULL OR c.participant_id = $2)"
        "   AND ($3::text IS NULL OR c.status = $3) AND ($4::text IS NULL OR c.program = $4)"
        "   AND ($5::timestamptz IS NULL OR (c.created_at, c.id) > ($5, $6::uuid))"
        " ORDER BY c.created_at, c.id LIMIT $7",
        partner, participant_id, status, program, after[0] if after else None,
        after[1] if after else None, limit)
    return [(claim_from(r), r["created_at"]) for r in rows]


# --- what the worker learns -------------------------------------------------------------------


async def learn(conn: asyncpg.Connection, events: list[tuple[Envelope, Payload]]) -> None:
    """Apply participant, payment and membership events, each once (by sequence)."""
    newest: dict[uuid.UUID, tuple[Envelope, ParticipantState]] = {}
    for envelope, payload in events:
        if envelope.source == "registration" and isinstance(payload, ParticipantState):
            kept = newest.get(payload.participant_id)
            if kept is None or envelope.sequence > kept[0].sequence:
                newest[payload.participant_id] = (envelope, payload)
    if newest:
        states = list(newest.values())
        await conn.execute(
            """
            INSERT INTO members AS m (participant_id, segment, programs, registered_on,
                monthly_income, born_in, region_code, owner, registration_seq)
            SELECT u.id, u.segment, string_to_array(u.programs, ' '), u.registered_on,
                   u.income, u.born_in, u.region, u.owner, u.seq
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::date[], $5::bigint[],
                        $6::text[], $7::text[], $8::text[], $9::int[])
                 AS u(id, segment, programs, registered_on, income, born_in, region, owner, seq)
            ON CONFLICT (participant_id) DO UPDATE SET segment = EXCLUDED.segment,
                programs = EXCLUDED.programs, monthly_income = EXCLUDED.monthly_income,
                born_in = EXCLUDED.born_in, region_code = EXCLUDED.region_code,
                registration_seq = EXCLUDED.registration_seq, updated_at = now()
            WHERE m.registration_seq < EXCLUDED.registration_seq
            """,
            [p.participant_id for _, p in states], [p.segment for _, p in states],
            [" ".join(p.programs) for _, p in states],
            [date.fromisoformat(p.registered_on) for _, p in states],
            [p.monthly_income for _, p in states], [p.born_in for _, p in states],
            [p.region_code for _, p in states], [p.owner for _, p in states],
            [e.sequence for e, _ in states])
    paid = [(e, p) for e, p in events
            if e.source == "contributions" and isinstance(p, ContributionPaid)]
    if paid:
        await conn.execute(
            "INSERT INTO member_payments (participant_id, sequence, first_period, last_period,"
            " paid_on, jht_amount, jp_amount)"
            " SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::date[],"
            "                      $6::bigint[], $7::bigint[])"
            " ON CONFLICT DO NOTHING",
            [p.participant_id for _, p in paid], [e.sequence for e, _ in paid],
            [p.first_period for _, p in paid], [p.last_period for _, p in paid],
            [date.fromisoformat(p.paid_on) for _, p in paid],
            [p.by_program.get("JHT", 0) for _, p in paid],
            [p.by_program.get("JP", 0) for _, p in paid])
    ended = [(p.participant_id, p.reason or "ended", e.occurred_at.date()) for e, p in events
             if e.source != SOURCE and (
                 (isinstance(p, MembershipStatusChanged) and p.status == "terminated")
                 or isinstance(p, ParticipantDeregistered))]
    if ended:
        await conn.execute(
            "UPDATE members AS m SET ended_on = u.on_day, ended_reason = u.reason,"
            " updated_at = now()"
            " FROM unnest($1::uuid[], $2::text[], $3::date[]) AS u(id, reason, on_day)"
            " WHERE m.participant_id = u.id AND m.ended_reason IS NULL",
            *[list(c) for c in zip(*ended, strict=True)])

