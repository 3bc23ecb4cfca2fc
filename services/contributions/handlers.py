"""The contributions service's use cases: pay, keep the calendar, learn participants. Over a
`ContributionsUnit` (one transaction: the members it locks, the payments it records, the
events it queues), so that the rules of the flow are tested with an in-memory fake
(tests/unit/test_contributions_handlers.py) and the SQL lives in store.py alone.

- Paying: lines are judged one by one, in order, each accepted or refused on its own
  (payments.py decides; 422 with what was expected). `payment_ref` is idempotent: the same line
  again returns its first result; the ref used for another payment is 409, also when requests
  race for it (the unit's unique ref decides who was first, never this process). An accepted
  line moves `paid_through` and queues `contribution.paid` (with the months paid in all, who
  paid and the agent who collected), then `membership.status_changed` when the status moved.
  A line naming a funded programme locks it (after the members) and is judged by
  programmes.py as well: its funder's payer and code, enrolled months, and the budget left.
- The calendar: members whose next check is due are settled; a status that time alone changed
  is published once, and the day to look again is recorded.
- Learning: registration events add or update members (the newest sequence wins) and mark
  them deregistered; an approved claim's membership event ends the membership once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

from services.contributions.dues import Dues, Member
from services.contributions.payments import check_payer, check_payment, paid_through_after
from services.contributions.programmes import (
    Enrolment,
    Programme,
    Refusal,
    budget_refusal,
    months_paid,
    programme_payment_refusals,
)
from services.contributions.schemas import PaymentIn
from shared.event_consumer import UnusableEvent
from shared.events import (
    ContributionPaid,
    Envelope,
    MembershipStatusChanged,
    ParticipantDeregistered,
    ParticipantState,
    Payload,
    ProgrammeEnrolmentChanged,
    envelope_bytes,
)
from shared.membership import Period, Status, next_status_change, next_unpaid_period, status_on
from shared.vocabulary import MembershipStatus, Program, Segment

SOURCE = "contributions"
REGISTRATION_SOURCE = "registration"
CLAIMS_SOURCE = "claims"
CALENDAR_BATCH = 1000

log = logging.getLogger(__name__)

# An event on its wire form: (Kafka key, event type, envelope bytes). Built without pydantic
# models (shared.events.envelope_bytes): one bulk payment queues thousands.
QueuedEvent = tuple[str, str, bytes]


@dataclass
class MemberState:
    """A member while a request or a calendar pass works on it: what its status depends on,
    the status last published, and the events it queued (the unit writes both at once)."""

    participant_id: uuid.UUID
    member: Member
    deregistered: bool
    paid_through: Period | None
    status: MembershipStatus  # as last published
    status_reason: str | None
    status_seq: int  # the sequence of its last membership event
    next_check_on: date | None  # when time alone may change the status
    ended_reason: str | None = None  # a claim ended the membership (death, jht_withdrawn)
    region_code: str = ""  # where the worker lives (a village code)
    events: list[QueuedEvent] = field(default_factory=list)
    touched: bool = False  # to be written back

    def live_status(self, today: date) -> Status:
        if self.deregistered:
            return Status("terminated", "deregistered", 0)
        if self.ended_reason:
            return Status("terminated", self.ended_reason, 0)
        return status_on(self.member, self.paid_through, today)

    def record_payment(self, dues: Dues, today: date, line: PaymentIn) -> None:
        """The months a payment covers, with each programme's share (claims judges paid months
        and JHT/JP balances from these), the months paid in all (after this payment), and who
        paid: payer, funding code, programme, the agent who collected it."""
        self.status_seq += 1
        self.touched = True
        subject = str(self.participant_id)
        self.events.append((subject, ContributionPaid.TYPE, envelope_bytes(
            ContributionPaid,
            {"participant_id": subject, "first_period": str(dues.first_period),
             "last_period": str(dues.last_period), "paid_on": str(today),
             "amount": dues.amount, "by_program": {x.program: x.amount for x in dues.lines},
             "months_paid": months_paid(self.member.first_owed, self.paid_through),
             "payer": line.payer, "funding_code": line.funding_code,
             "programme_id": str(line.programme_id) if line.programme_id else None,
             "agent_id": line.agent_id},
            source=SOURCE, subject=subject, sequence=self.status_seq)))

    def record_enrolment(self, enrolment: Enrolment, *, enrolled: bool) -> None:
        """An enrolment in a funded programme made or withdrawn: one more event of this
        participant, in the same sequence as its payments and status changes (consumers keep
        one sequence per subject and source)."""
        self.status_seq += 1
        self.touched = True
        subject = str(self.participant_id)
        self.events.append((subject, ProgrammeEnrolmentChanged.TYPE, envelope_bytes(
            ProgrammeEnrolmentChanged,
            {"participant_id": subject, "programme_id": str(enrolment.programme_id),
             "first_period": str(enrolment.first_period),
             "last_period": str(enrolment.last_period), "enrolled": enrolled},
            source=SOURCE, subject=subject, sequence=self.status_seq)))

    def settle(self, today: date) -> None:
        """Publish the status the calendar and the payments say today, if it moved."""
        live = self.live_status(today)
        self.next_check_on = (None if live.status == "terminated" else
                              next_status_change(self.member, self.paid_through, today))
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


@dataclass(frozen=True, slots=True)
class Receipt:
    """A payment as recorded: what the same payment_ref is answered with again."""

    contribution_id: uuid.UUID
    request_hash: bytes
    paid_through: str  # YYYY-MM, after this payment
    membership_status: str  # after this payment

    def public(self) -> dict[str, Any]:
        return {"contribution_id": str(self.contribution_id), "paid_through": self.paid_through,
                "membership_status": self.membership_status}


@dataclass(frozen=True, slots=True)
class NewPayment:
    """An accepted line to record: as sent, its receipt, and the API key that sent it."""

    line: PaymentIn
    receipt: Receipt
    received_by: str
    paid_on: date | None = None  # the day booked (WIB); None: today in the database's zone


@dataclass(frozen=True)
class PaymentOutcome:
    """One line's result: accepted (new or replayed) or refused with errors."""

    result: dict[str, Any] | None
    errors: list[dict[str, str]]
    status_code: int  # for a single request: 201, or the 4xx of the first error


@dataclass(frozen=True, slots=True)
class LearntMember:
    """A member as its newest registration event states it, and when the calendar first looks
    at it (None: time alone never changes its status)."""

    participant_id: uuid.UUID
    segment: Segment
    monthly_income: int
    programs: tuple[Program, ...]
    region_code: str
    employer_id: str | None
    registered_on: date
    registration_seq: int
    first_check: date | None


@dataclass(frozen=True, slots=True)
class EndedMembership:
    """A membership an approved claim ended (death, jht_withdrawn), from the day it ended."""

    participant_id: uuid.UUID
    reason: str
    on: date


@dataclass
class FundsLeft:
    """A programme while payments are judged against its budget: what it spent so far."""

    programme: Programme
    spent: int


class ContributionsUnit(Protocol):
    """One transaction of the contributions service."""

    def savepoint(self) -> AbstractAsyncContextManager[object]:
        """A transaction inside this one: an exception leaving it undoes what was done inside,
        and only that."""

    async def lock_members(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, MemberState]:
        """The known members among `ids`, locked for the rest of the transaction (waiting for
        a transaction that holds one)."""

    async def receipts(self, refs: Sequence[str]) -> dict[str, Receipt]:
        """The payments recorded under these refs (committed, or earlier in this transaction),
        by ref."""

    async def add_payments(self, payments: Sequence[NewPayment]) -> bool:
        """Record new payments. False when a ref among them was recorded meanwhile by another
        transaction (waiting for it to end): some may be written then, so the caller leaves
        the savepoint with an exception."""

    async def lock_programmes(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, FundsLeft]:
        """The programmes among `ids` with what they spent so far, locked for the rest of the
        transaction (after the members: one lock order everywhere)."""

    async def enrolments_of(self, participant_ids: Sequence[uuid.UUID]
                            ) -> dict[uuid.UUID, list[Enrolment]]:
        """The current (not withdrawn) enrolments of these workers, by worker."""

    async def due_members(self, today: date, limit: int) -> list[MemberState]:
        """Up to `limit` members whose next check falls on or before `today`, earliest first,
        locked; those another transaction holds are skipped (a later pass takes them)."""

    async def save(self, states: Sequence[MemberState]) -> None:
        """Write back the members touched and queue the events they collected, in order."""

    async def learn_members(self, members: Sequence[LearntMember], *, recheck_on: date) -> int:
        """Add new members; update those learnt from an older registration event (next checked
        on `recheck_on`: due dates follow the segment). How many were added or updated."""

    async def deregister(self, members: Sequence[tuple[uuid.UUID, int]], *,
                         recheck_on: date) -> int:
        """Mark members (id, registration sequence) deregistered, unless learnt from that
        sequence or a newer one; next checked on `recheck_on`. How many changed."""

    async def end_memberships(self, ended: Sequence[EndedMembership]) -> int:
        """End memberships not ended yet: terminated with the reason, no more calendar checks.
        How many ended now."""


# --- paying -----------------------------------------------------------------------------------


class _PaymentRefTaken(Exception):
    """A payment_ref this attempt meant to record was recorded meanwhile by another request."""


# Each retry sees at least one more payment_ref committed by others, so a request retries only
# while other requests keep winning races for its refs; past this, something else is wrong.
_MAX_ATTEMPTS = 50


async def pay(unit: ContributionsUnit, lines: Sequence[PaymentIn], *, caller: str,
              today: date) -> list[PaymentOutcome]:
    """Record money received, line by line in order. Each line is accepted or refused on its
    own; the same payment_ref again returns its first result, one used for another payment is
    a 409 outcome, also when the requests race (the unit's unique payment_ref decides who was
    first, never this process)."""
    for _ in range(_MAX_ATTEMPTS):
        try:
            # A savepoint: a lost race undoes this attempt only, and the next one sees the
            # winner's payment.
            async with unit.savepoint():
                return await _pay_once(unit, lines, caller=caller, today=today)
        except _PaymentRefTaken:
            continue
    raise RuntimeError(f"payments kept losing payment_ref races ({_MAX_ATTEMPTS} attempts)")


async def _pay_once(unit: ContributionsUnit, lines: Sequence[PaymentIn], *, caller: str,
                    today: date) -> list[PaymentOutcome]:
    states = await unit.lock_members(sorted({line.participant_id for line in lines}))
    # Read after the members' locks: a payment for them that committed while we waited (an
    # identical request that raced this one) is seen here and replayed, not judged again by
    # the rules against the state it left (which would refuse it: that period is paid).
    earlier = dict(await unit.receipts([line.payment_ref for line in lines]))
    funded = sorted({line.programme_id for line in lines if line.programme_id is not None})
    funds = await unit.lock_programmes(funded) if funded else {}
    enrolments = await unit.enrolments_of(
        sorted({line.participant_id for line in lines if line.programme_id is not None})
    ) if funded else {}
    outcomes: list[PaymentOutcome] = []
    new: list[NewPayment] = []
    for line in lines:
        digest = line.request_hash()
        first = earlier.get(line.payment_ref)
        if first is not None:
            outcomes.append(_replayed(first, digest))
            continue
        state = states.get(line.participant_id)
        if state is None:
            outcomes.append(PaymentOutcome(None, [{
                "field": "participant_id", "message": "no participant has this id"}], 422))
            continue
        errors, dues = payment_errors(state, line, today)
        if line.programme_id is not None:
            errors += programme_errors(line, funds, enrolments, dues)
        if errors or dues is None:
            outcomes.append(PaymentOutcome(None, errors, 422))
            continue
        if line.programme_id is not None:
            left = funds[line.programme_id]
            refusal = budget_refusal(left.programme, left.spent, line.amount)
            if refusal is not None:
                outcomes.append(_refused(refusal))
                continue
            left.spent += line.amount
        state.paid_through = paid_through_after(state.paid_through,
                                                Period.parse(line.first_period), line.months)
        state.record_payment(dues, today, line)
        state.settle(today)
        receipt = Receipt(uuid.uuid4(), digest, str(state.paid_through), state.status)
        earlier[line.payment_ref] = receipt  # the same ref later in these lines: a replay
        new.append(NewPayment(line, receipt, caller, today))
        outcomes.append(PaymentOutcome(receipt.public(), [], 201))
    if new and not await unit.add_payments(new):
        raise _PaymentRefTaken
    await unit.save(list(states.values()))
    return outcomes


def programme_errors(line: PaymentIn, funds: dict[uuid.UUID, FundsLeft],
                     enrolments: dict[uuid.UUID, list[Enrolment]],
                     dues: Dues | None) -> list[dict[str, str]]:
    """What is wrong with a line naming a programme, besides the budget."""
    left = funds.get(line.programme_id) if line.programme_id else None
    programme = left.programme if left else None
    enrolment = next((e for e in enrolments.get(line.participant_id, ())
                      if e.programme_id == line.programme_id), None)
    try:
        first = Period.parse(line.first_period)
        last = first + (min(max(line.months, 1), 12) - 1)
    except ValueError:
        return []  # said by payment_errors
    return [e.as_dict() for e in programme_payment_refusals(
        programme, enrolment, payer=line.payer, funding_code=line.funding_code, first=first,
        last=last, programs=[x.program for x in dues.lines] if dues else ())]


def _refused(refusal: Refusal) -> PaymentOutcome:
    return PaymentOutcome(None, [refusal.error.as_dict()], refusal.status)


def _replayed(first: Receipt, digest: bytes) -> PaymentOutcome:
    """The first result for the same line; 409 for a ref used for another payment."""
    if first.request_hash != digest:
        return PaymentOutcome(None, [{
            "field": "payment_ref",
            "message": "this payment_ref was already used for another payment"}], 409)
    return PaymentOutcome(first.public(), [], 201)


def payment_errors(state: MemberState, line: PaymentIn, today: date
                   ) -> tuple[list[dict[str, str]], Dues | None]:
    """What is wrong with a payment line (nothing: it may be booked), and the dues it pays."""
    if state.deregistered:
        return [{"field": "participant_id", "message": "this participant is deregistered"}], None
    errors = [e.as_dict() for e in check_payer(line.payer, line.funding_code)]
    try:
        first_period = Period.parse(line.first_period)
    except ValueError as exc:
        return [*errors, {"field": "first_period", "message": str(exc)}], None
    # As stored: a lapse is derived inside check_payment from the payment history.
    stored = Status(state.status, state.status_reason)
    dues, problems = check_payment(state.member, state.paid_through, stored, first_period,
                                   line.months, line.amount, today=today)
    errors += [e.as_dict() for e in problems]
    # What was expected, as numbers a partner's system can use (lifted into the problem).
    for error in errors:
        if error["field"] == "amount" and dues is not None:
            error["expected_amount"] = dues.amount  # type: ignore[assignment]
        if error["field"] == "first_period":
            error["expected_first_period"] = str(
                next_unpaid_period(state.member, state.paid_through))
    return errors, dues


# --- the calendar -----------------------------------------------------------------------------


async def settle_due_members(unit: ContributionsUnit, today: date, *,
                             limit: int = CALENDAR_BATCH) -> tuple[int, int]:
    """One batch of members whose status time alone may have changed by `today`: publish the
    changes and when to look again. Returns (members checked, status changes published)."""
    states = await unit.due_members(today, limit)
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
    await unit.save(states)
    return len(states), sum(s.status_seq != b for s, b in zip(states, before, strict=True))


# --- what registration and claims tell us -----------------------------------------------------


async def learn(unit: ContributionsUnit, events: Sequence[tuple[Envelope, Payload]],
                today: date) -> int:
    """One batch of the participant consumer: registration's participant events and the
    memberships claims ended. Returns how many members changed."""
    return await learn_participants(unit, events, today) + await end_memberships(unit, events)


async def learn_participants(unit: ContributionsUnit, events: Sequence[tuple[Envelope, Payload]],
                             today: date) -> int:
    """Add or update members from registration events, newest sequence wins. A new member is
    next checked when time alone would change its status; a changed one is re-checked by the
    calendar today, since due dates follow the segment. Returns how many changed.

    Raises UnusableEvent, before anything is written, when an event holds what the members
    table or the calendar cannot take (see unusable_participant_event)."""
    for envelope, payload in events:
        problem = unusable_participant_event(envelope, payload, today)
        if problem:
            raise UnusableEvent(f"{envelope.type} {problem}")
    newest: dict[str, tuple[Envelope, Payload]] = {}
    for envelope, payload in events:
        if envelope.source != REGISTRATION_SOURCE:
            continue
        kept = newest.get(envelope.subject)
        if kept is None or envelope.sequence > kept[0].sequence:
            newest[envelope.subject] = (envelope, payload)
    learnt = [LearntMember(
        participant_id=p.participant_id, segment=p.segment, monthly_income=p.monthly_income,
        programs=tuple(p.programs), region_code=p.region_code, employer_id=p.employer_id,
        registered_on=date.fromisoformat(p.registered_on), registration_seq=e.sequence,
        first_check=first_check(p, today))
        for e, p in newest.values() if isinstance(p, ParticipantState)]
    deregistered = [(p.participant_id, e.sequence) for e, p in newest.values()
                    if isinstance(p, ParticipantDeregistered)]
    changed = 0
    if learnt:
        changed += await unit.learn_members(learnt, recheck_on=today)
    if deregistered:
        changed += await unit.deregister(deregistered, recheck_on=today)
    return changed


async def end_memberships(unit: ContributionsUnit,
                          events: Sequence[tuple[Envelope, Payload]]) -> int:
    """Memberships that an approved claim ended (membership events from the claims service):
    terminated with the claim's reason, no more calendar checks. Once only: a replay finds the
    membership already ended. Returns how many ended now."""
    ended = [EndedMembership(p.participant_id, p.reason or "ended", e.occurred_at.date())
             for e, p in events
             if e.source == CLAIMS_SOURCE and isinstance(p, MembershipStatusChanged)
             and p.status == "terminated"]
    if not ended:
        return 0
    return await unit.end_memberships(ended)


# What the members table's columns hold (registration_seq integer, monthly_income bigint).
_MAX_INTEGER, _MAX_BIGINT = 2**31 - 1, 2**63 - 1


def unusable_participant_event(envelope: Envelope, payload: Payload, today: date) -> str | None:
    """Why a registration event can never be applied here, in words that quote no input value
    (they go into a dead letter); None when it can. Pure and cheap, so a bad event is refused
    with a clear reason before the database sees it."""
    if envelope.source != REGISTRATION_SOURCE:
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
    member = Member(segment=registered.segment, monthly_income=registered.monthly_income,
                    programs=tuple(registered.programs),
                    registered_on=date.fromisoformat(registered.registered_on), risk_class=None)
    if status_on(member, None, today).status != "inactive":
        return today
    return next_status_change(member, None, today)
