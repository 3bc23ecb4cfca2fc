"""The contributions use cases (services/contributions/handlers.py) over an in-memory
ContributionsUnit: paying (line by line, idempotent by payment_ref, the 409 for a reused ref,
races on the ref), the calendar pass (a change published once), and learning participants and
ended memberships. No Kafka, no PostgreSQL: the same flows on a real database are
tests/integration/test_contributions_api.py and test_races.py.

Workers: BPU on Rp 1,000,000 with JKK and JKM (Rp 16,800 a month), registered on 3 November
2026; payments are made on 20 November 2026.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.contributions import handlers
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
from services.contributions.schemas import PaymentIn, parse_line
from shared.event_consumer import UnusableEvent
from shared.events import (
    ContributionPaid,
    Envelope,
    MembershipStatusChanged,
    ParticipantDeregistered,
    ParticipantRegistered,
    Payload,
    decode,
    make_envelope,
)
from shared.membership import Period

TODAY = date(2026, 11, 20)
REGISTERED = date(2026, 11, 3)
CALLER = "key-partner-a"
NOVEMBER = Period(2026, 11)
MONTHLY = 16_800


class FakeContributionsUnit:
    """handlers.ContributionsUnit in memory, with the meaning of store.PgContributionsUnit's
    SQL. One fake is the database across transactions: the tests read what it holds after each
    call. Members are handed out as copies (rows) and written back by save()."""

    def __init__(self) -> None:
        self.members: dict[uuid.UUID, MemberState] = {}
        self.receipts_by_ref: dict[str, Receipt] = {}  # recorded in this unit
        self.payments: list[NewPayment] = []
        self.outbox: list[QueuedEvent] = []
        # Payments other transactions commit while ours runs: `racer` is recorded by "another
        # request" the moment our add_payments() reaches its ref (as the INSERT waits for it),
        # and stays when our savepoint is undone.
        self.racer: NewPayment | None = None
        self.elsewhere: dict[str, Receipt] = {}
        self.attempts = 0
        self.learnt: list[LearntMember] = []
        self.ended: list[EndedMembership] = []
        # Funded programmes (programme_handlers.ProgrammesUnit), their current enrolments, and
        # the programme events queued (topic organisations).
        self.programmes: dict[uuid.UUID, Programme] = {}
        self.enrolments: dict[tuple[uuid.UUID, uuid.UUID], Enrolment] = {}
        self.organisations: list[QueuedEvent] = []

    # --- ContributionsUnit ---
    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        self.attempts += 1
        saved = (dict(self.members), dict(self.receipts_by_ref), list(self.payments),
                 list(self.outbox))
        try:
            yield
        except BaseException:
            self.members, self.receipts_by_ref, self.payments, self.outbox = saved
            raise

    async def lock_members(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, MemberState]:
        return {pid: _row(self.members[pid]) for pid in sorted(ids) if pid in self.members}

    async def receipts(self, refs: Sequence[str]) -> dict[str, Receipt]:
        known = {**self.elsewhere, **self.receipts_by_ref}
        return {ref: known[ref] for ref in refs if ref in known}

    async def add_payments(self, payments: Sequence[NewPayment]) -> bool:
        if self.racer is not None and any(p.line.payment_ref == self.racer.line.payment_ref
                                          for p in payments):
            self.elsewhere[self.racer.line.payment_ref] = self.racer.receipt
            self.racer = None
        all_new = True
        for payment in sorted(payments, key=lambda p: p.line.payment_ref):
            ref = payment.line.payment_ref
            if ref in self.elsewhere or ref in self.receipts_by_ref:  # ON CONFLICT DO NOTHING
                all_new = False
                continue
            self.receipts_by_ref[ref] = payment.receipt
            self.payments.append(payment)
        return all_new

    async def lock_programmes(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, FundsLeft]:
        return {pid: FundsLeft(self.programmes[pid], self.spent(pid))
                for pid in sorted(ids) if pid in self.programmes}

    def spent(self, programme_id: uuid.UUID) -> int:
        return sum(p.line.amount for p in self.payments if p.line.programme_id == programme_id)

    async def enrolments_of(self, participant_ids: Sequence[uuid.UUID]
                            ) -> dict[uuid.UUID, list[Enrolment]]:
        out: dict[uuid.UUID, list[Enrolment]] = {}
        for (_, pid), enrolment in sorted(self.enrolments.items(), key=lambda kv: str(kv[0])):
            if pid in participant_ids:
                out.setdefault(pid, []).append(enrolment)
        return out

    async def add_programme(self, programme: Programme, event: QueuedEvent, *,
                            created_by: str) -> None:
        self.programmes[programme.programme_id] = programme
        self.organisations.append(event)

    async def lock_programme(self, programme_id: uuid.UUID) -> Programme | None:
        return self.programmes.get(programme_id)

    async def programme_spent(self, programme_id: uuid.UUID) -> int:
        return self.spent(programme_id)

    async def change_programme(self, programme: Programme) -> int:
        self.programmes[programme.programme_id] = programme
        return 1 + sum(1 for key, _, _ in self.organisations
                       if key == str(programme.programme_id))

    async def queue_programme_event(self, event: QueuedEvent) -> None:
        self.organisations.append(event)

    async def enrolled_count(self, programme_id: uuid.UUID) -> int:
        return sum(1 for prog, _ in self.enrolments if prog == programme_id)

    async def add_enrolments(self, enrolments: Sequence[Enrolment], *, on: date,
                             by: str) -> None:
        for e in enrolments:
            self.enrolments[(e.programme_id, e.participant_id)] = e

    async def withdraw_enrolment(self, enrolment: Enrolment, *, on: date) -> None:
        del self.enrolments[(enrolment.programme_id, enrolment.participant_id)]

    async def due_members(self, today: date, limit: int) -> list[MemberState]:
        due = sorted((m for m in self.members.values()
                      if m.next_check_on is not None and m.next_check_on <= today),
                     key=lambda m: m.next_check_on or today)
        return [_row(m) for m in due[:limit]]

    async def save(self, states: Sequence[MemberState]) -> None:
        for state in states:
            if state.touched:
                self.members[state.participant_id] = _row(state)
                self.outbox.extend(state.events)

    async def learn_members(self, members: Sequence[LearntMember], *, recheck_on: date) -> int:
        self.learnt.extend(members)
        changed = 0
        for m in members:
            known = self.members.get(m.participant_id)
            if known is not None and known.status_seq >= m.registration_seq:
                continue  # the fake keeps the registration sequence in status_seq's place
            self.members[m.participant_id] = MemberState(
                m.participant_id, Member(m.segment, m.monthly_income, m.programs, m.registered_on),
                deregistered=False, paid_through=known.paid_through if known else None,
                status=known.status if known else "inactive",
                status_reason=known.status_reason if known else None,
                status_seq=m.registration_seq,
                next_check_on=recheck_on if known else m.first_check)
            changed += 1
        return changed

    async def deregister(self, members: Sequence[tuple[uuid.UUID, int]], *,
                         recheck_on: date) -> int:
        changed = 0
        for pid, _ in members:
            if pid in self.members:
                self.members[pid] = replace(self.members[pid], deregistered=True,
                                            next_check_on=recheck_on)
                changed += 1
        return changed

    async def end_memberships(self, ended: Sequence[EndedMembership]) -> int:
        self.ended.extend(ended)
        changed = 0
        for e in ended:
            known = self.members.get(e.participant_id)
            if known is None or known.ended_reason is not None:
                continue
            self.members[e.participant_id] = replace(
                known, status="terminated", status_reason=e.reason, ended_reason=e.reason,
                next_check_on=None)
            changed += 1
        return changed

    # --- for the tests ---
    def know(self, *, registered_on: date = REGISTERED, paid_through: Period | None = None,
             status: Any = "inactive", ended_reason: str | None = None,
             deregistered: bool = False, next_check_on: date | None = None,
             segment: Any = "BPU", region_code: str = "12.75.01.1001") -> uuid.UUID:
        pid = uuid.uuid4()
        self.members[pid] = MemberState(
            pid, Member(segment, 1_000_000, ("JKK", "JKM"), registered_on),
            deregistered=deregistered, paid_through=paid_through, status=status,
            status_reason=ended_reason, status_seq=0, next_check_on=next_check_on,
            ended_reason=ended_reason, region_code=region_code)
        return pid

    def events(self) -> list[tuple[Envelope, Payload]]:
        return [decode(wire) for _, _, wire in self.outbox]


def _row(state: MemberState) -> MemberState:
    """What a row holds: the state without the events and marks of a transaction."""
    return replace(state, events=[], touched=False)


@pytest.fixture
def unit() -> FakeContributionsUnit:
    return FakeContributionsUnit()


def line(pid: uuid.UUID, ref: str = "VA-1", **overrides: Any) -> PaymentIn:
    body = {"payment_ref": ref, "participant_id": str(pid), "first_period": "2026-11",
            "months": 1, "amount": MONTHLY, "payer": "self", **overrides}
    parsed, errors = parse_line(body)
    assert parsed is not None, errors
    return parsed


async def pay(unit: FakeContributionsUnit, *lines: PaymentIn,
              today: date = TODAY) -> list[handlers.PaymentOutcome]:
    return await handlers.pay(unit, list(lines), caller=CALLER, today=today)


# --- paying -------------------------------------------------------------------------------------
async def test_an_accepted_line_is_recorded_with_its_contribution_and_status_events(unit) -> None:
    pid = unit.know()
    [outcome] = await pay(unit, line(pid))
    assert outcome.status_code == 201 and outcome.errors == []
    [recorded] = unit.payments
    assert outcome.result == {"contribution_id": str(recorded.receipt.contribution_id),
                              "paid_through": "2026-11", "membership_status": "active"}
    assert recorded.received_by == CALLER and recorded.line.payment_ref == "VA-1"
    member = unit.members[pid]
    assert member.paid_through == NOVEMBER and member.status == "active"
    assert member.next_check_on == date(2026, 12, 16)  # December falls overdue after the 15th
    (paid_env, paid), (status_env, status) = unit.events()
    assert paid == ContributionPaid(participant_id=pid, first_period="2026-11",
                                    last_period="2026-11", paid_on="2026-11-20", amount=MONTHLY,
                                    by_program={"JKK": 10_000, "JKM": 6_800}, months_paid=1,
                                    payer="self")
    assert status == MembershipStatusChanged(participant_id=pid, status="active",
                                             paid_through="2026-11", reason=None)
    assert [(e.source, e.subject, e.sequence) for e in (paid_env, status_env)] == [
        ("contributions", str(pid), 1), ("contributions", str(pid), 2)]
    assert [key for key, _, _ in unit.outbox] == [str(pid), str(pid)]


async def test_a_payment_that_leaves_the_status_as_it_was_publishes_only_the_payment(
        unit) -> None:
    pid = unit.know(paid_through=NOVEMBER, status="active")
    [outcome] = await pay(unit, line(pid, first_period="2026-12"))
    assert outcome.status_code == 201 and outcome.result is not None
    assert outcome.result["paid_through"] == "2026-12"
    [(_, paid)] = unit.events()
    assert isinstance(paid, ContributionPaid) and paid.first_period == "2026-12"


async def test_a_wrong_amount_is_422_with_the_expected_amount_and_changes_nothing(unit) -> None:
    pid = unit.know()
    [outcome] = await pay(unit, line(pid, amount=1))
    assert outcome.status_code == 422 and outcome.result is None
    assert outcome.errors == [{
        "field": "amount", "message": "must be Rp 16,800, the dues for 1 month from 2026-11, "
                                      "not Rp 1", "expected_amount": MONTHLY}]
    assert unit.payments == [] and unit.outbox == []
    assert unit.members[pid].paid_through is None and unit.members[pid].status == "inactive"


async def test_a_wrong_first_period_is_422_with_the_expected_first_period(unit) -> None:
    pid = unit.know()
    [outcome] = await pay(unit, line(pid, first_period="2026-12"))
    assert outcome.status_code == 422
    assert [(e["field"], e.get("expected_first_period")) for e in outcome.errors] == [
        ("first_period", "2026-11")]
    assert unit.payments == [] and unit.outbox == []


async def test_the_same_line_again_gets_the_first_result_and_records_nothing_more(unit) -> None:
    pid = unit.know()
    [first] = await pay(unit, line(pid))
    [again] = await pay(unit, line(pid))
    assert (again.status_code, again.result, again.errors) == (201, first.result, [])
    assert len(unit.payments) == 1 and len(unit.outbox) == 2
    assert unit.members[pid].paid_through == NOVEMBER


async def test_a_payment_ref_used_for_another_payment_is_409(unit) -> None:
    pid, other = unit.know(), unit.know()
    await pay(unit, line(pid))
    [reused] = await pay(unit, line(other))
    assert reused.status_code == 409 and reused.result is None
    assert reused.errors == [{"field": "payment_ref",
                              "message": "this payment_ref was already used for another payment"}]
    assert len(unit.payments) == 1 and len(unit.outbox) == 2
    assert unit.members[other].paid_through is None


async def test_one_ref_twice_in_a_batch_is_a_replay_when_alike_and_409_when_not(unit) -> None:
    pid, other = unit.know(), unit.know()
    first, same, reused = await pay(unit, line(pid), line(pid), line(other))
    assert first.status_code == 201 and same.result == first.result
    assert reused.status_code == 409
    assert len(unit.payments) == 1 and unit.members[other].paid_through is None


async def test_each_line_of_a_batch_is_judged_on_its_own_and_in_order(unit) -> None:
    pid, other = unit.know(), unit.know()
    outcomes = await pay(unit, line(pid, "A"), line(other, "B", amount=1),
                         line(pid, "C", first_period="2026-12"), line(uuid.uuid4(), "D"))
    assert [o.status_code for o in outcomes] == [201, 422, 201, 422]
    assert outcomes[2].result is not None and outcomes[2].result["paid_through"] == "2026-12"
    assert outcomes[3].errors == [{"field": "participant_id",
                                   "message": "no participant has this id"}]
    assert [p.line.payment_ref for p in unit.payments] == ["A", "C"]
    # the member's events in its order: paid, active, paid again (still active: no change)
    assert [(type(p).__name__, e.sequence) for e, p in unit.events()] == [
        ("ContributionPaid", 1), ("MembershipStatusChanged", 2), ("ContributionPaid", 3)]


@pytest.mark.parametrize("reason", ["death", "jht_withdrawn"])
async def test_a_membership_a_claim_ended_pays_no_more(unit, reason) -> None:
    pid = unit.know(paid_through=Period(2026, 10), status="terminated", ended_reason=reason)
    [outcome] = await pay(unit, line(pid))
    assert outcome.status_code == 422
    assert outcome.errors == [{
        "field": "participant_id",
        "message": f"the membership is terminated ({reason}); no contributions can be paid "
                   "for it"}]
    assert unit.payments == [] and unit.outbox == []


async def test_a_lapsed_membership_pays_no_more_even_before_the_calendar_said_so(unit) -> None:
    pid = unit.know(registered_on=date(2026, 1, 5))  # never paid: more than 3 months overdue
    [outcome] = await pay(unit, line(pid, first_period="2026-01"))
    assert outcome.status_code == 422
    assert [e["field"] for e in outcome.errors] == ["participant_id"]
    assert "lapsed" in outcome.errors[0]["message"]
    assert unit.payments == [] and unit.outbox == []


async def test_a_deregistered_participant_pays_no_more(unit) -> None:
    pid = unit.know(deregistered=True)
    [outcome] = await pay(unit, line(pid))
    assert (outcome.status_code, outcome.errors) == (422, [{
        "field": "participant_id", "message": "this participant is deregistered"}])


async def test_a_government_payment_needs_its_funding_code(unit) -> None:
    pid = unit.know()
    [refused] = await pay(unit, line(pid, "G-1", payer="government"))
    assert refused.status_code == 422 and refused.errors[0]["field"] == "funding_code"
    [accepted] = await pay(unit, line(pid, "G-2", payer="government", funding_code="SD"))
    assert accepted.status_code == 201
    assert unit.payments[0].line.funding_code == "SD"


# --- races on the ref ---------------------------------------------------------------------------
def _paid_elsewhere(pid: uuid.UUID, ref: str) -> NewPayment:
    """A payment another request records under `ref` while ours runs."""
    other = line(pid, ref)
    return NewPayment(other, Receipt(uuid.uuid4(), other.request_hash(), "2026-11", "active"),
                      "key-partner-b")


async def test_a_ref_taken_meanwhile_undoes_the_attempt_and_the_next_one_says_409(unit) -> None:
    pid = unit.know()
    unit.racer = _paid_elsewhere(unit.know(), "SHARED")
    own, shared = await pay(unit, line(pid, "OWN"),
                            line(pid, "SHARED", first_period="2026-12"))
    assert unit.attempts == 2
    assert own.status_code == 201 and shared.status_code == 409
    assert [p.line.payment_ref for p in unit.payments] == ["OWN"]
    # the first attempt's events are gone with it: one payment, one status change
    assert [type(p).__name__ for _, p in unit.events()] == ["ContributionPaid",
                                                            "MembershipStatusChanged"]
    assert unit.members[pid].paid_through == NOVEMBER


async def test_a_ref_taken_meanwhile_by_the_same_line_gets_that_result(unit) -> None:
    pid = unit.know()
    racer = _paid_elsewhere(pid, "VA-1")
    unit.racer = racer
    [outcome] = await pay(unit, line(pid))
    assert (outcome.status_code, outcome.result) == (201, racer.receipt.public())
    assert unit.payments == [] and unit.outbox == []  # the winner queued its own events


async def test_losing_every_race_is_an_error_not_an_answer(unit) -> None:
    class AlwaysTaken(FakeContributionsUnit):
        async def add_payments(self, payments: Sequence[NewPayment]) -> bool:
            return False

    broken = AlwaysTaken()
    pid = broken.know()
    with pytest.raises(RuntimeError):
        await pay(broken, line(pid))
    assert broken.outbox == [] and broken.members[pid].paid_through is None


# --- the calendar -------------------------------------------------------------------------------
async def test_the_calendar_publishes_a_change_once(unit) -> None:
    pid = unit.know(paid_through=NOVEMBER, status="active", next_check_on=date(2026, 12, 16))
    day = date(2026, 12, 16)
    assert await handlers.settle_due_members(unit, day - timedelta(days=1)) == (0, 0)
    assert await handlers.settle_due_members(unit, day) == (1, 1)
    [(envelope, change)] = unit.events()
    assert change == MembershipStatusChanged(participant_id=pid, status="inactive",
                                             reason="arrears", paid_through="2026-11")
    assert (envelope.subject, envelope.sequence) == (str(pid), 1)
    member = unit.members[pid]
    assert (member.status, member.status_reason) == ("inactive", "arrears")
    assert member.next_check_on == date(2027, 3, 16)  # when December's arrears lapse
    assert await handlers.settle_due_members(unit, day) == (0, 0)
    # looked at again on the same day (a replayed pass): nothing moved, nothing published
    unit.members[pid] = replace(member, next_check_on=day)
    assert await handlers.settle_due_members(unit, day) == (1, 0)
    assert len(unit.outbox) == 1


async def test_the_calendar_terminates_a_lapsed_bpu_membership(unit) -> None:
    pid = unit.know(registered_on=date(2026, 1, 5), next_check_on=date(2026, 4, 16))
    assert await handlers.settle_due_members(unit, date(2026, 4, 16)) == (1, 1)
    [(_, change)] = unit.events()
    assert change == MembershipStatusChanged(participant_id=pid, status="terminated",
                                             reason="lapsed", paid_through=None)
    assert unit.members[pid].next_check_on is None


async def test_a_member_the_calendar_cannot_settle_waits_for_tomorrow(unit) -> None:
    day = date(2026, 12, 16)
    odd = unit.know(registered_on=date(9999, 12, 1), next_check_on=day)  # lapses in 10000
    usual = unit.know(paid_through=NOVEMBER, status="active", next_check_on=day)
    assert await handlers.settle_due_members(unit, day) == (2, 1)
    assert unit.members[odd].next_check_on == day + timedelta(days=1)
    assert unit.members[usual].status == "inactive"


async def test_the_calendar_takes_at_most_a_batch(unit) -> None:
    day = date(2026, 12, 16)
    for _ in range(3):
        unit.know(paid_through=NOVEMBER, status="active", next_check_on=day)
    assert await handlers.settle_due_members(unit, day, limit=2) == (2, 2)
    assert await handlers.settle_due_members(unit, day, limit=2) == (1, 1)


# --- learning participants and ended memberships ------------------------------------------------
def registration(pid: uuid.UUID, *, sequence: int = 1, registered_on: str = "2026-11-03",
                 income: int = 1_000_000) -> tuple[Envelope, Payload]:
    payload = ParticipantRegistered(
        participant_id=pid, kpj="00000000018", region_code="12.75.01.1001", segment="BPU",
        monthly_income=income, programs=["JKK", "JKM"], registered_on=registered_on)
    return make_envelope(payload, source="registration", subject=str(pid),
                         sequence=sequence), payload


def claims_ended(pid: uuid.UUID, reason: str = "death") -> tuple[Envelope, Payload]:
    payload = MembershipStatusChanged(participant_id=pid, status="terminated", reason=reason)
    return make_envelope(payload, source="claims", subject=str(pid), sequence=1,
                         occurred_at=datetime(2026, 11, 18, 3, 0, tzinfo=UTC)), payload


async def test_a_new_member_is_first_checked_when_time_alone_changes_its_status(unit) -> None:
    pid = uuid.uuid4()
    assert await handlers.learn(unit, [registration(pid)], TODAY) == 1
    [learnt] = unit.learnt
    assert (learnt.participant_id, learnt.registered_on, learnt.registration_seq) == (
        pid, REGISTERED, 1)
    # BPU, nothing paid: November is overdue already, so it lapses after February's due date
    assert learnt.first_check == date(2027, 2, 16)


async def test_the_newest_registration_event_of_a_batch_wins(unit) -> None:
    pid = uuid.uuid4()
    events = [registration(pid, sequence=2, income=2_000_000), registration(pid, sequence=1)]
    await handlers.learn(unit, events, TODAY)
    [learnt] = unit.learnt
    assert (learnt.registration_seq, learnt.monthly_income) == (2, 2_000_000)


async def test_a_long_lapsed_registration_replayed_is_checked_today(unit) -> None:
    await handlers.learn(unit, [registration(uuid.uuid4(), registered_on="2026-01-05")], TODAY)
    assert unit.learnt[0].first_check == TODAY


async def test_a_deregistration_marks_the_member(unit) -> None:
    pid = uuid.uuid4()
    await handlers.learn(unit, [registration(pid)], TODAY)
    payload = ParticipantDeregistered(participant_id=pid, reason="duplicate")
    envelope = make_envelope(payload, source="registration", subject=str(pid), sequence=2)
    assert await handlers.learn(unit, [(envelope, payload)], TODAY) == 1
    assert unit.members[pid].deregistered and unit.members[pid].next_check_on == TODAY


async def test_an_unusable_event_is_refused_before_anything_is_written(unit) -> None:
    good = registration(uuid.uuid4())
    bad_env, bad = registration(uuid.uuid4())
    bad_env = bad_env.model_copy(update={"sequence": 2**31})
    with pytest.raises(UnusableEvent, match="sequence beyond"):
        await handlers.learn(unit, [good, (bad_env, bad)], TODAY)
    assert unit.learnt == [] and unit.members == {}


async def test_a_claim_ends_the_membership_once(unit) -> None:
    pid = unit.know(paid_through=NOVEMBER, status="active", next_check_on=date(2026, 12, 16))
    assert await handlers.learn(unit, [claims_ended(pid)], TODAY) == 1
    assert await handlers.learn(unit, [claims_ended(pid, "jht_withdrawn")], TODAY) == 0
    member = unit.members[pid]
    assert (member.status, member.ended_reason, member.next_check_on) == (
        "terminated", "death", None)
    assert unit.ended[0] == EndedMembership(pid, "death", date(2026, 11, 18))
    assert unit.outbox == []  # claims said it; contributions does not say it again


async def test_membership_events_of_other_sources_end_nothing(unit) -> None:
    pid = unit.know()
    payload = MembershipStatusChanged(participant_id=pid, status="terminated", reason="lapsed")
    envelope = make_envelope(payload, source="contributions", subject=str(pid), sequence=3)
    assert await handlers.learn(unit, [(envelope, payload)], TODAY) == 0
    assert unit.ended == []
