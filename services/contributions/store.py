"""The contributions service's SQL: `PgContributionsUnit` (handlers.ContributionsUnit on one
transaction) over members (learnt from registration events), money received, and the
membership events both cause (outbox); and the read behind GET."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date
from typing import Any

import asyncpg

from services.contributions.dues import Member
from services.contributions.handlers import (
    EndedMembership,
    LearntMember,
    MemberState,
    NewPayment,
    Receipt,
)
from shared.membership import Period
from shared.outbox import add_encoded_events


def member_state(row: Any) -> MemberState:
    return MemberState(
        participant_id=row["participant_id"],
        member=Member(segment=row["segment"], monthly_income=row["monthly_income"],
                      programs=tuple(row["programs"]), registered_on=row["registered_on"],
                      risk_class=None),
        deregistered=row["deregistered"],
        paid_through=Period.parse(row["paid_through"]) if row["paid_through"] else None,
        status=row["status"], status_reason=row["status_reason"],
        status_seq=row["status_seq"], next_check_on=row["next_check_on"],
        ended_reason=row["ended_reason"])


async def member(conn: asyncpg.Connection | asyncpg.Pool,
                 participant_id: uuid.UUID) -> MemberState | None:
    row = await conn.fetchrow("SELECT * FROM members WHERE participant_id = $1", participant_id)
    return member_state(row) if row else None


class PgContributionsUnit:
    """handlers.ContributionsUnit on one connection, inside the caller's transaction. `topic`
    is where the members' events go (None: this unit publishes nothing)."""

    def __init__(self, conn: asyncpg.Connection, topic: str | None):
        self._conn = conn
        self._topic = topic

    def savepoint(self) -> AbstractAsyncContextManager[object]:
        return self._conn.transaction()

    async def lock_members(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, MemberState]:
        rows = await self._conn.fetch(
            "SELECT * FROM members WHERE participant_id = ANY($1::uuid[])"
            " ORDER BY participant_id FOR UPDATE", ids)
        return {r["participant_id"]: member_state(r) for r in rows}

    async def receipts(self, refs: Sequence[str]) -> dict[str, Receipt]:
        rows = await self._conn.fetch(
            "SELECT payment_ref, request_hash, id, paid_through, membership_status"
            " FROM contributions WHERE payment_ref = ANY($1::text[])", refs)
        return {r["payment_ref"]: Receipt(r["id"], r["request_hash"], r["paid_through"],
                                          r["membership_status"]) for r in rows}

    async def add_payments(self, payments: Sequence[NewPayment]) -> bool:
        # A ref that another request (for other members, so not waiting on our locks) is
        # recording now makes this insert wait for it; if it commits, the ref is taken and
        # the handler starts its attempt again. Refs are inserted in one order everywhere, so
        # two such requests wait on each other in one direction only (no deadlock).
        inserted = await self._conn.fetch(
            """
            INSERT INTO contributions (id, payment_ref, request_hash, participant_id,
                first_period, months, amount, payer, funding_code, paid_through,
                membership_status, received_by)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::uuid[], $5::text[],
                                 $6::int[], $7::bigint[], $8::text[], $9::text[], $10::text[],
                                 $11::text[], $12::text[])
                 AS u(id, payment_ref, request_hash, participant_id, first_period, months,
                      amount, payer, funding_code, paid_through, membership_status, received_by)
            ORDER BY u.payment_ref COLLATE "C"
            ON CONFLICT (payment_ref) DO NOTHING
            RETURNING id
            """,
            [p.receipt.contribution_id for p in payments],
            [p.line.payment_ref for p in payments], [p.receipt.request_hash for p in payments],
            [p.line.participant_id for p in payments], [p.line.first_period for p in payments],
            [p.line.months for p in payments], [p.line.amount for p in payments],
            [p.line.payer for p in payments], [p.line.funding_code for p in payments],
            [p.receipt.paid_through for p in payments],
            [p.receipt.membership_status for p in payments],
            [p.received_by for p in payments])
        return len(inserted) == len(payments)

    async def due_members(self, today: date, limit: int) -> list[MemberState]:
        rows = await self._conn.fetch(
            "SELECT * FROM members WHERE next_check_on <= $1 ORDER BY next_check_on"
            " LIMIT $2 FOR UPDATE SKIP LOCKED", today, limit)
        return [member_state(r) for r in rows]

    async def save(self, states: Sequence[MemberState]) -> None:
        touched = [s for s in states if s.touched]
        if not touched:
            return
        await self._conn.execute(
            """
            UPDATE members AS m SET paid_through = u.paid_through, status = u.status,
                   status_reason = u.status_reason, status_seq = u.status_seq,
                   next_check_on = u.next_check_on, updated_at = now()
            FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::date[])
                 AS u(participant_id, paid_through, status, status_reason, status_seq,
                      next_check_on)
            WHERE m.participant_id = u.participant_id
            """,
            [s.participant_id for s in touched],
            [str(s.paid_through) if s.paid_through else None for s in touched],
            [s.status for s in touched], [s.status_reason for s in touched],
            [s.status_seq for s in touched], [s.next_check_on for s in touched])
        events = [e for s in touched for e in s.events]
        if events:
            if self._topic is None:
                raise RuntimeError("this unit was opened without a topic for its events")
            await add_encoded_events(self._conn, self._topic, events)

    async def learn_members(self, members: Sequence[LearntMember], *, recheck_on: date) -> int:
        rows = await self._conn.fetch(
            """
            INSERT INTO members AS m (participant_id, segment, monthly_income, programs,
                region_code, employer_id, registered_on, registration_seq, next_check_on)
            SELECT u.id, u.segment, u.income, string_to_array(u.programs, ' '), u.region,
                   u.employer, u.registered_on, u.seq, u.first_check
            FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                        $6::text[], $7::date[], $8::int[], $10::date[])
                 AS u(id, segment, income, programs, region, employer, registered_on, seq,
                      first_check)
            ON CONFLICT (participant_id) DO UPDATE SET
                segment = EXCLUDED.segment, monthly_income = EXCLUDED.monthly_income,
                programs = EXCLUDED.programs, region_code = EXCLUDED.region_code,
                employer_id = EXCLUDED.employer_id, registration_seq = EXCLUDED.registration_seq,
                next_check_on = $9::date, updated_at = now()
            WHERE m.registration_seq < EXCLUDED.registration_seq
            RETURNING participant_id
            """,
            [m.participant_id for m in members], [m.segment for m in members],
            [m.monthly_income for m in members], [" ".join(m.programs) for m in members],
            [m.region_code for m in members], [m.employer_id for m in members],
            [m.registered_on for m in members], [m.registration_seq for m in members],
            recheck_on, [m.first_check for m in members])
        return len(rows)

    async def deregister(self, members: Sequence[tuple[uuid.UUID, int]], *,
                         recheck_on: date) -> int:
        rows = await self._conn.fetch(
            "UPDATE members AS m SET deregistered = true, registration_seq = u.seq,"
            " next_check_on = $3, updated_at = now()"
            " FROM unnest($1::uuid[], $2::int[]) AS u(id, seq)"
            " WHERE m.participant_id = u.id AND m.registration_seq < u.seq"
            " RETURNING m.participant_id",
            [pid for pid, _ in members], [seq for _, seq in members], recheck_on)
        return len(rows)

    async def end_memberships(self, ended: Sequence[EndedMembership]) -> int:
        rows = await self._conn.fetch(
            """
            UPDATE members AS m SET status = 'terminated', status_reason = u.reason,
                   ended_reason = u.reason, ended_on = u.ended_on, next_check_on = NULL,
                   updated_at = now()
            FROM unnest($1::uuid[], $2::text[], $3::date[]) AS u(participant_id, reason, ended_on)
            WHERE m.participant_id = u.participant_id AND m.ended_reason IS NULL
            RETURNING m.participant_id
            """,
            [e.participant_id for e in ended], [e.reason for e in ended], [e.on for e in ended])
        return len(rows)
