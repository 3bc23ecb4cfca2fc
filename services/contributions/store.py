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
    FundsLeft,
    LearntMember,
    MemberState,
    NewPayment,
    QueuedEvent,
    Receipt,
)
from services.contributions.programmes import Enrolment, Programme
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
        ended_reason=row["ended_reason"], region_code=row["region_code"])


async def member(conn: asyncpg.Connection | asyncpg.Pool,
                 participant_id: uuid.UUID) -> MemberState | None:
    row = await conn.fetchrow("SELECT * FROM members WHERE participant_id = $1", participant_id)
    return member_state(row) if row else None


class PgContributionsUnit:
    """handlers.ContributionsUnit (and programme_handlers.ProgrammesUnit) on one connection,
    inside the caller's transaction. `topic` is where the members' events go, `organisations`
    the programmes' (None: this unit publishes none)."""

    def __init__(self, conn: asyncpg.Connection, topic: str | None,
                 organisations: str | None = None):
        self._conn = conn
        self._topic = topic
        self._organisations = organisations

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
                membership_status, received_by, programme_id, agent_id, paid_on)
            SELECT u.id, u.payment_ref, u.request_hash, u.participant_id, u.first_period,
                   u.months, u.amount, u.payer, u.funding_code, u.paid_through,
                   u.membership_status, u.received_by, u.programme_id, u.agent_id,
                   coalesce(u.paid_on, current_date)
            FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::uuid[], $5::text[],
                        $6::int[], $7::bigint[], $8::text[], $9::text[], $10::text[],
                        $11::text[], $12::text[], $13::uuid[], $14::text[], $15::date[])
                 AS u(id, payment_ref, request_hash, participant_id, first_period, months,
                      amount, payer, funding_code, paid_through, membership_status, received_by,
                      programme_id, agent_id, paid_on)
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
            [p.received_by for p in payments], [p.line.programme_id for p in payments],
            [p.line.agent_id for p in payments], [p.paid_on for p in payments])
        return len(inserted) == len(payments)

    # --- funded programmes ---

    async def lock_programmes(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, FundsLeft]:
        rows = await self._conn.fetch(
            "SELECT * FROM programmes WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE", ids)
        # Read after the locks: every payment under these programmes that committed is counted.
        spent = {r["programme_id"]: r["spent"] for r in await self._conn.fetch(
            "SELECT programme_id, sum(amount)::bigint AS spent FROM contributions"
            " WHERE programme_id = ANY($1::uuid[]) GROUP BY programme_id", ids)}
        return {r["id"]: FundsLeft(programme_of(r), spent.get(r["id"], 0)) for r in rows}

    async def lock_programme(self, programme_id: uuid.UUID) -> Programme | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM programmes WHERE id = $1 FOR UPDATE", programme_id)
        return programme_of(row) if row else None

    async def programme_spent(self, programme_id: uuid.UUID) -> int:
        spent: int = await self._conn.fetchval(
            "SELECT coalesce(sum(amount), 0)::bigint FROM contributions WHERE programme_id = $1",
            programme_id)
        return spent

    async def change_programme(self, programme: Programme) -> int:
        sequence: int = await self._conn.fetchval(
            "UPDATE programmes SET name = $2, quota = $3, budget_rupiah = $4, seq = seq + 1"
            " WHERE id = $1 RETURNING seq", programme.programme_id, programme.name,
            programme.quota, programme.budget_rupiah)
        return sequence

    async def queue_programme_event(self, event: QueuedEvent) -> None:
        if self._organisations is None:
            raise RuntimeError("this unit was opened without a topic for programme events")
        await add_encoded_events(self._conn, self._organisations, [event])

    async def enrolled_count(self, programme_id: uuid.UUID) -> int:
        count: int = await self._conn.fetchval(
            "SELECT count(*) FROM programme_enrolments"
            " WHERE programme_id = $1 AND withdrawn_on IS NULL", programme_id)
        return count

    async def enrolments_of(self, participant_ids: Sequence[uuid.UUID]
                            ) -> dict[uuid.UUID, list[Enrolment]]:
        rows = await self._conn.fetch(
            "SELECT * FROM programme_enrolments WHERE participant_id = ANY($1::uuid[])"
            " AND withdrawn_on IS NULL ORDER BY participant_id, first_period COLLATE \"C\"",
            participant_ids)
        out: dict[uuid.UUID, list[Enrolment]] = {}
        for r in rows:
            out.setdefault(r["participant_id"], []).append(enrolment_of(r))
        return out

    async def add_programme(self, programme: Programme, event: QueuedEvent, *,
                            created_by: str) -> None:
        if self._organisations is None:
            raise RuntimeError("this unit was opened without a topic for programme events")
        await self._conn.execute(
            "INSERT INTO programmes (id, name, funder_region, year, quota, budget_rupiah,"
            " funding_code, programs, first_period, last_period, seq, created_by)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11)",
            programme.programme_id, programme.name, programme.funder_region, programme.year,
            programme.quota, programme.budget_rupiah, programme.funding_code,
            list(programme.programs), str(programme.first_period), str(programme.last_period),
            created_by)
        await add_encoded_events(self._conn, self._organisations, [event])

    async def add_enrolments(self, enrolments: Sequence[Enrolment], *, on: date,
                             by: str) -> None:
        await self._conn.execute(
            """
            INSERT INTO programme_enrolments AS e (programme_id, participant_id, first_period,
                last_period, enrolled_on, enrolled_by)
            SELECT u.programme_id, u.participant_id, u.first_period, u.last_period, $5, $6
            FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])
                 AS u(programme_id, participant_id, first_period, last_period)
            ON CONFLICT (programme_id, participant_id) DO UPDATE SET
                first_period = EXCLUDED.first_period, last_period = EXCLUDED.last_period,
                enrolled_on = EXCLUDED.enrolled_on, enrolled_by = EXCLUDED.enrolled_by,
                withdrawn_on = NULL, updated_at = now()
            """,
            [e.programme_id for e in enrolments], [e.participant_id for e in enrolments],
            [str(e.first_period) for e in enrolments], [str(e.last_period) for e in enrolments],
            on, by)

    async def withdraw_enrolment(self, enrolment: Enrolment, *, on: date) -> None:
        await self._conn.execute(
            "UPDATE programme_enrolments SET withdrawn_on = $3, updated_at = now()"
            " WHERE programme_id = $1 AND participant_id = $2 AND withdrawn_on IS NULL",
            enrolment.programme_id, enrolment.participant_id, on)

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


# --- funded programmes: rows and the reads behind GET -----------------------------------------


def programme_of(row: Any) -> Programme:
    return Programme(row["id"], row["name"], row["funder_region"], row["year"], row["quota"],
                     row["budget_rupiah"], row["funding_code"], tuple(row["programs"]),
                     Period.parse(row["first_period"]), Period.parse(row["last_period"]))


def enrolment_of(row: Any) -> Enrolment:
    return Enrolment(row["programme_id"], row["participant_id"],
                     Period.parse(row["first_period"]), Period.parse(row["last_period"]))


# The live figures of a programme from this service's own tables: workers enrolled, those paid
# for the current month ($1), those active ($2: paid through that month at least, membership
# not ended), and the money its payments took.
_FIGURES = """
    SELECT p.*,
        coalesce(e.enrolled, 0) AS enrolled,
        coalesce(e.paid_this_month, 0) AS paid_this_month,
        coalesce(e.active, 0) AS active,
        coalesce((SELECT sum(c.amount) FROM contributions c WHERE c.programme_id = p.id), 0)
            AS budget_spent
    FROM programmes p
    LEFT JOIN LATERAL (
        SELECT count(*) AS enrolled,
               count(*) FILTER (WHERE m.paid_through COLLATE "C" >= $1) AS paid_this_month,
               count(*) FILTER (WHERE m.paid_through COLLATE "C" >= $2
                                  AND NOT m.deregistered AND m.ended_reason IS NULL) AS active
        FROM programme_enrolments pe JOIN members m USING (participant_id)
        WHERE pe.programme_id = p.id AND pe.withdrawn_on IS NULL
    ) e ON true
"""


async def programme_figures(conn: asyncpg.Connection | asyncpg.Pool, programme_id: uuid.UUID,
                            *, this_month: Period, active_through: Period) -> Any:
    return await conn.fetchrow(_FIGURES + " WHERE p.id = $3", str(this_month),
                               str(active_through), programme_id)


async def programmes_figures(conn: asyncpg.Connection | asyncpg.Pool, *,
                             funder_region: str | None, year: int | None, this_month: Period,
                             active_through: Period, limit: int) -> list[Any]:
    rows: list[Any] = await conn.fetch(
        _FIGURES + " WHERE ($3::text IS NULL OR p.funder_region = $3)"
        " AND ($4::int IS NULL OR p.year = $4) ORDER BY p.year, p.created_at, p.id LIMIT $5",
        str(this_month), str(active_through), funder_region, year, limit)
    return rows


async def enrolled_workers(conn: asyncpg.Connection | asyncpg.Pool, programme_id: uuid.UUID, *,
                           unpaid_for: Period | None, after: uuid.UUID | None,
                           limit: int) -> list[Any]:
    """The programme's current enrolments by participant id (after the cursor); with
    `unpaid_for`, those enrolled for that month whose membership is not paid for it."""
    month = str(unpaid_for) if unpaid_for else None
    rows: list[Any] = await conn.fetch(
        """
        SELECT e.participant_id, e.first_period, e.last_period
        FROM programme_enrolments e JOIN members m USING (participant_id)
        WHERE e.programme_id = $1 AND e.withdrawn_on IS NULL
          AND ($2::text IS NULL OR (e.first_period COLLATE "C" <= $2
               AND e.last_period COLLATE "C" >= $2
               AND (m.paid_through IS NULL OR m.paid_through COLLATE "C" < $2)))
          AND ($3::uuid IS NULL OR e.participant_id > $3)
        ORDER BY e.participant_id LIMIT $4
        """, programme_id, month, after, limit)
    return rows
