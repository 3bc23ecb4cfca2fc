"""SQL of the contributions database: members (learnt from registration events), money
received, and the membership events that both cause (outbox)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, cast

import asyncpg

from services.contributions import domain
from services.contributions.schemas import PaymentIn
from shared import membership
from shared.event_consumer import UnusableEvent
from shared.events import (
    ContributionPaid,
    Envelope,
    MembershipStatusChanged,
    ParticipantDeregistered,
    ParticipantState,
    Payload,
    envelope_bytes,
)
from shared.outbox import add_encoded_events

SOURCE = "contributions"
CLAIMS_SOURCE = "claims"

log = logging.getLogger(__name__)


@dataclass
class MemberState:
    """A member row while a request or a scheduler pass works on it."""

    participant_id: uuid.UUID
    member: domain.Member
    deregistered: bool
    paid_through: domain.Period | None
    status: str  # as last published
    status_reason: str | None
    status_seq: int
    next_check_on: date | None
    ended_reason: str | None = None  # a claim ended the membership (death, jht_withdrawn)
    events: list[tuple[str, str, bytes]] = field(default_factory=list)  # (key, type, wire)
    touched: bool = False

    @classmethod
    def from_row(cls, row: Any) -> MemberState:
        return cls(
            participant_id=row["participant_id"],
            member=domain.Member(segment=row["segment"], monthly_income=row["monthly_income"],
                                 programs=tuple(row["programs"]),
                                 registered_on=row["registered_on"], risk_class=None),
            deregistered=row["deregistered"],
            paid_through=domain.Period.parse(row["paid_through"]) if row["paid_through"] else None,
            status=row["status"], status_reason=row["status_reason"],
            status_seq=row["status_seq"], next_check_on=row["next_check_on"],
            ended_reason=row["ended_reason"])

    def live_status(self, today: date) -> domain.Status:
        if self.deregistered:
            return domain.Status("terminated", "deregistered", 0)
        if self.ended_reason:
            return domain.Status("terminated", self.ended_reason, 0)
        return domain.status_on(self.member, self.paid_through, today)

    def record_payment(self, dues: domain.Dues, today: date) -> None:
        """The months a payment covers, with each programme's share (claims judges paid months
        and JHT/JP balances from these)."""
        self.status_seq += 1
        self.touched = True
        subject = str(self.participant_id)
        self.events.append((subject, ContributionPaid.TYPE, envelope_bytes(
            ContributionPaid,
            {"participant_id": subject, "first_period": str(dues.first_period),
             "last_period": str(dues.last_period), "paid_on": str(today),
             "amount": dues.amount, "by_program": {x.program: x.amount for x in dues.lines}},
            source=SOURCE, subject=subject, sequence=self.status_seq)))

    def settle(self, today: date) -> None:
        """Publish the status the calendar and the payments say today, if it moved."""
        live = self.live_status(today)
        self.next_check_on = (None if live.status == "terminated" else
                              membership.next_status_change(self.member, self.paid_through, today))
        self.touched = True
        if live.status == self.status:
            return
        self.status, self.status_reason = live.status, live.reason
        self.status_seq += 1
        subject = str(self.participant_id)
        self.events.append((subject, MembershipStatusChanged.TYPE, envelope_bytes(
            MembershipStatusChanged,
            {"participant_id": subject, "status": live.status, "reason": live.reason,
             "paid_through": str(self.paid_through) if self.paid_through else None},
            source=SOURCE, subject=subject, sequence=self.status_seq)))


async def lock_members(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[uuid.UUID,
                                                                             MemberState]:
    rows = await conn.fetch(
        "SELECT * FROM members WHERE participant_id = ANY($1::uuid[])"
        " ORDER BY participant_id FOR UPDATE", ids)
    return {r["participant_id"]: MemberState.from_row(r) for r in rows}


async def member(conn: asyncpg.Connection | asyncpg.Pool,
                 participant_id: uuid.UUID) -> MemberState | None:
    row = await conn.fetchrow("SELECT * FROM members WHERE participant_id = $1", participant_id)
    return MemberState.from_row(row) if row else None


async def save_members(conn: asyncpg.Connection, states: list[MemberState], topic: str) -> None:
    touched = [s for s in states if s.touched]
    if not touched:
        return
    await conn.execute(
        """
        UPDATE members AS m SET paid_through = u.paid_through, status = u.status,
               status_reason = u.status_reason, status_seq = u.status_seq,
               next_check_on = u.next_check_on, updated_at = now()
        FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::date[])
             AS u(participant_id, paid_through, status, status_reason, status_seq, next_check_on)
        WHERE m.participant_id = u.participant_id
        """,
        [s.participant_id for s in touched],
        [str(s.paid_through) if s.paid_through else None for s in touched],
        [s.status for s in touched], [s.status_reason for s in touched],
        [s.status_seq for s in touched], [s.next_check_on for s in touched])
    await add_encoded_events(conn, topic, [e for s in touched for e in s.events])


# --- payments ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaymentOutcome:
    """One line's result: accepted (new or replayed) or refused with errors."""

    result: dict[str, Any] | None
    errors: list[dict[str, str]]
    status_code: int  # for a single request: 201, or the 4xx of the first error


class _PaymentRefTaken(Exception):
    """A payment_ref this attempt meant to record was committed meanwhile by another request."""


# Each retry sees at least one more payment_ref committed by others, so a request retries only
# while other requests keep winning races for its refs; past this, something else is wrong.
_MAX_ATTEMPTS = 50


async def pay(conn: asyncpg.Connection, lines: list[PaymentIn], *, caller: str, today: date,
              topic: str) -> list[PaymentOutcome]:
    """Record money received, line by line in order, in the caller's transaction. Each line is
    accepted or refused on its own; the same payment_ref again returns its first result, one
    used for another payment is a 409 outcome, also when the requests race (the database's
    unique payment_ref decides who was first, never this process)."""
    for _ in range(_MAX_ATTEMPTS):
        try:
            # A savepoint: a lost race undoes this attempt only, and the next one sees the
            # winner's payment.
            async with conn.transaction():
                return await _pay_once(conn, lines, caller=caller, today=today, topic=topic)
        except _PaymentRefTaken:
            continue
    raise RuntimeError(f"payments kept losing payment_ref races ({_MAX_ATTEMPTS} attempts)")


async def _pay_once(conn: asyncpg.Connection, lines: list[PaymentIn], *, caller: str,
                    today: date, topic: str) -> list[PaymentOutcome]:
    states = await lock_members(conn, sorted({line.participant_id for line in lines}))
    # Read after the members' locks: a payment for them that committed while we waited (an
    # identical request that raced this one) is seen here and replayed, not judged again by
    # the rules against the state it left (which would refuse it: that period is paid).
    earlier = {r["payment_ref"]: r for r in await conn.fetch(
        "SELECT payment_ref, request_hash, id, paid_through, membership_status"
        " FROM contributions WHERE payment_ref = ANY($1::text[])",
        [line.payment_ref for line in lines])}
    outcomes: list[PaymentOutcome] = []
    new_rows: list[tuple] = []
    for line in lines:
        digest = line.request_hash()
        if line.payment_ref in earlier:
            first = earlier[line.payment_ref]
            if first["request_hash"] != digest:
                outcomes.append(PaymentOutcome(None, [{
                    "field": "payment_ref",
                    "message": "this payment_ref was already used for another payment"}], 409))
            else:
                outcomes.append(PaymentOutcome(_result(first), [], 201))
            continue
        state = states.get(line.participant_id)
        if state is None:
            outcomes.append(PaymentOutcome(None, [{
                "field": "participant_id", "message": "no participant has this id"}], 422))
            continue
        errors, dues = payment_errors(state, line, today)
        if errors or dues is None:
            outcomes.append(PaymentOutcome(None, errors, 422))
            continue
        first_period = domain.Period.parse(line.first_period)
        state.paid_through = domain.paid_through_after(state.paid_through, first_period,
                                                       line.months)
        state.record_payment(dues, today)
        state.settle(today)
        row = {"id": uuid.uuid4(), "payment_ref": line.payment_ref, "request_hash": digest,
               "paid_through": str(state.paid_through), "membership_status": state.status}
        earlier[line.payment_ref] = row
        new_rows.append((row["id"], line.payment_ref, digest, line.participant_id,
                         line.first_period, line.months, line.amount, line.payer,
                         line.funding_code, row["paid_through"], state.status, caller))
        outcomes.append(PaymentOutcome(_result(row), [], 201))
    if new_rows:
        columns = list(zip(*new_rows, strict=True))
        # A ref that another request (for other members, so not waiting on our locks) is
        # recording now makes this insert wait for it; if it commits, the ref is taken and
        # this attempt starts again. Refs are inserted in one order everywhere, so two such
        # requests wait on each other in one direction only (no deadlock).
        inserted = await conn.fetch(
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
            """, *[list(c) for c in columns])
        if len(inserted) < len(new_rows):
            raise _PaymentRefTaken
    await save_members(conn, list(states.values()), topic)
    return outcomes


def payment_errors(state: MemberState, line: PaymentIn, today: date
                   ) -> tuple[list[dict[str, str]], domain.Dues | None]:
    """What is wrong with a payment line (nothing: it may be booked), and the dues it pays."""
    if state.deregistered:
        return [{"field": "participant_id", "message": "this participant is deregistered"}], None
    errors = [e.as_dict() for e in domain.check_payer(line.payer, line.funding_code)]
    try:
        first_period = domain.Period.parse(line.first_period)
    except ValueError as exc:
        return [*errors, {"field": "first_period", "message": str(exc)}], None
    # As stored: a lapse is derived inside check_payment from the payment history.
    stored = domain.Status(cast(membership.MembershipStatus, state.status), state.status_reason)
    dues, problems = domain.check_payment(state.member, state.paid_through, stored,
                                          first_period, line.months, line.amount, today=today)
    errors += [e.as_dict() for e in problems]
    # What was expected, as numbers a partner's system can use (lifted into the problem).
    for error in errors:
        if error["field"] == "amount" and dues is not None:
            error["expected_amount"] = dues.amount  # type: ignore[assignment]
        if error["field"] == "first_period":
            error["expected_first_period"] = str(
                domain.next_unpaid_period(state.member, state.paid_through))
    return errors, dues


def _result(row: Any) -> dict[str, Any]:
    return {"contribution_id": str(row["id"]), "paid_through": row["paid_through"],
            "membership_status": row["membership_status"]}


# --- what claims tells us ---------------------------------------------------------------------


async def end_memberships(conn: asyncpg.Connection,
                          events: list[tuple[Envelope, Payload]]) -> int:
    """Memberships that an approved claim ended (membership events from the claims service):
    terminated with the claim's reason, no more calendar checks. Once only: a replay finds the
    membership already ended. Returns how many ended now."""
    ended = [(p.participant_id, p.reason or "ended", e.occurred_at.date()) for e, p in events
             if e.source == CLAIMS_SOURCE and isinstance(p, MembershipStatusChanged)
             and p.status == "terminated"]
    if not ended:
        return 0
    rows = await conn.fetch(
        """
        UPDATE members AS m SET status = 'terminated', status_reason = u.reason,
               ended_reason = u.reason, ended_on = u.ended_on, next_check_on = NULL,
               updated_at = now()
        FROM unnest($1::uuid[], $2::text[], $3::date[]) AS u(participant_id, reason, ended_on)
        WHERE m.participant_id = u.participant_id AND m.ended_reason IS NULL
        RETURNING m.participant_id
        """, *[list(c) for c in zip(*ended, strict=True)])
    return len(rows)


# --- what registration tells us -------------------------------------------------------------


async def apply_participant_events(conn: asyncpg.Connection,
                                   events: list[tuple[Envelope, Payload]], today: date) -> int:
    """Insert or update members from registration events, newest sequence wins. A new member
    is next checked when time alone would change its status; a changed one is re-checked by
    the scheduler today, since due dates follow the segment. Returns how many changed.

    Raises UnusableEvent, before any statement, when an event holds what the members table or
    the calendar cannot take (see unusable_participant_event)."""
    for envelope, payload in events:
        problem = unusable_participant_event(envelope, payload, today)
        if problem:
            raise UnusableEvent(f"{envelope.type} {problem}")
    newest: dict[str, tuple[Envelope, Payload]] = {}
    for envelope, payload in events:
        if envelope.source != "registration":
            continue
        kept = newest.get(envelope.subject)
        if kept is None or envelope.sequence > kept[0].sequence:
            newest[envelope.subject] = (envelope, payload)
    states = [(e, p) for e, p in newest.values() if isinstance(p, ParticipantState)]
    ended = [(e, p) for e, p in newest.values() if isinstance(p, ParticipantDeregistered)]
    changed = 0
    if states:
        result = await conn.fetch(
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
            [p.participant_id for _, p in states], [p.segment for _, p in states],
            [p.monthly_income for _, p in states], [" ".join(p.programs) for _, p in states],
            [p.region_code for _, p in states], [p.employer_id for _, p in states],
            [date.fromisoformat(p.registered_on) for _, p in states],
            [e.sequence for e, _ in states], today,
            [first_check(p, today) for _, p in states])
        changed += len(result)
    if ended:
        result = await conn.fetch(
            "UPDATE members AS m SET deregistered = true, registration_seq = u.seq,"
            " next_check_on = $3, updated_at = now()"
            " FROM unnest($1::uuid[], $2::int[]) AS u(id, seq)"
            " WHERE m.participant_id = u.id AND m.registration_seq < u.seq"
            " RETURNING m.participant_id",
            [p.participant_id for _, p in ended], [e.sequence for e, _ in ended], today)
        changed += len(result)
    return changed


# What the members table's columns hold (registration_seq integer, monthly_income bigint).
_MAX_INTEGER, _MAX_BIGINT = 2**31 - 1, 2**63 - 1


def unusable_participant_event(envelope: Envelope, payload: Payload, today: date) -> str | None:
    """Why a registration event can never be applied here, in words that quote no input value
    (they go into a dead letter); None when it can. Pure and cheap, so a bad event is refused
    with a clear reason before the database sees it."""
    if envelope.source != "registration":
        return None  # not applied at all
    if envelope.sequence > _MAX_INTEGER:
        return "has a sequence beyond 2^31-1"
    if not isinstance(payload, ParticipantState):
        return None
    if not 0 <= payload.monthly_income <= _MAX_BIGINT:
        return "has a monthly_income below 0 or beyond 2^63-1"
    for name, text in (("region_code", payload.region_code),
                       ("employer_id", payload.employer_id)):
        if text is not None and not _storable_text(text):
            return f"has a {name} with a NUL character or invalid Unicode"
    try:
        date.fromisoformat(payload.registered_on)
    except ValueError:
        return "has a registered_on that is not an ISO date (YYYY-MM-DD)"
    try:
        first_check(payload, today)
    except (ValueError, ArithmeticError):
        return "has a registered_on too near the calendar's ends for its due dates"
    return None


def _storable_text(text: str) -> bool:
    """PostgreSQL text holds neither NUL nor a lone surrogate (not encodable as UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def first_check(registered: ParticipantState, today: date) -> date | None:
    """When the calendar must first look at a new member: today if its status is already
    other than a new registrant's (an old registration replayed may have lapsed), else the
    day time alone changes it."""
    member = domain.Member(segment=registered.segment, monthly_income=registered.monthly_income,
                           programs=tuple(registered.programs),
                           registered_on=date.fromisoformat(registered.registered_on),
                           risk_class=None)
    if domain.status_on(member, None, today).status != "inactive":
        return today
    return membership.next_status_change(member, None, today)


# --- the calendar -----------------------------------------------------------------------------


async def settle_due_members(conn: asyncpg.Connection, today: date, topic: str,
                             limit: int = 1000) -> tuple[int, int]:
    """One batch of members whose status time alone may have changed by `today`: publish the
    changes and when to look again. Returns (members checked, status changes published)."""
    rows = await conn.fetch(
        "SELECT * FROM members WHERE next_check_on <= $1 ORDER BY next_check_on"
        " LIMIT $2 FOR UPDATE SKIP LOCKED", today, limit)
    states = [MemberState.from_row(r) for r in rows]
    before = [s.status_seq for s in states]
    for state in states:
        try:
            state.settle(today)
        except (ValueError, ArithmeticError) as exc:
            # One member whose dates the rules cannot compute must not hold up the others
            # (they come after it in every pass): look at it again tomorrow.
            log.warning("calendar: member %s cannot be settled (%s); next look tomorrow",
                        state.participant_id, type(exc).__name__)
            state.next_check_on, state.touched = today + timedelta(days=1), True
    await save_members(conn, states, topic)
    return len(states), sum(s.status_seq != b for s, b in zip(states, before, strict=True))

