"""The claims use cases (services/claims/handlers.py) over an in-memory ClaimsUnit: filing
(judged, idempotent by claim_ref, one open JKM per worker, races on the ref) and deciding
(once, ending the membership once, with its event). No Kafka, no PostgreSQL: the same flows on
a real database are tests/integration/test_claims_api.py.

Workers: a BPU worker registered on 3 November 2026 who paid November on the 5th (active on
18 November, the day of death in these claims); claims are filed on 20 November 2026.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import pytest

from services.claims import handlers, rules
from services.claims.handlers import KnownMember, NewClaim, StoredClaim, Topic
from services.claims.rules import Member, Payment
from shared.events import ClaimDecided, ClaimSubmitted, MembershipStatusChanged, Payload
from shared.membership import Period, due_date
from shared.problems import Problem

TODAY = date(2026, 11, 20)
DEATH = date(2026, 11, 18)
PARTNER = "partner-a"
OFFICER = "officer-key"
REGION = "12.75.01.1001"
NOVEMBER = Period(2026, 11)


@dataclass(frozen=True, slots=True)
class Published:
    topic: Topic
    key: str
    payload: Payload
    subject: str
    sequence: int


class FakeClaimsUnit:
    """handlers.ClaimsUnit in memory, with the meaning of store.PgClaimsUnit's SQL. One fake is
    the database across transactions: the tests read what it holds after each call."""

    def __init__(self) -> None:
        self.members: dict[uuid.UUID, KnownMember] = {}
        self.claims: dict[uuid.UUID, StoredClaim] = {}
        self.published: list[Published] = []
        # A claim "another request" stores first: the next add() for its claim_ref finds the
        # ref taken (as INSERT ... ON CONFLICT DO NOTHING after the other transaction commits).
        self.racer: StoredClaim | None = None
        self.ended: list[tuple[uuid.UUID, str, date]] = []  # every end_membership call

    # --- ClaimsUnit ---
    async def member(self, participant_id: uuid.UUID) -> KnownMember | None:
        return self.members.get(participant_id)

    async def claim(self, claim_id: uuid.UUID) -> StoredClaim | None:
        return self.claims.get(claim_id)

    async def claim_with_ref(self, claim_ref: str) -> StoredClaim | None:
        return next((c for c in self.claims.values() if c.claim_ref == claim_ref), None)

    async def has_open_jkm(self, participant_id: uuid.UUID) -> bool:
        return any(c.participant_id == participant_id and c.program == "JKM"
                   and c.status in ("submitted", "approved") for c in self.claims.values())

    async def add(self, claim: StoredClaim) -> bool:
        if self.racer is not None and self.racer.claim_ref == claim.claim_ref:
            self.claims[self.racer.id] = self.racer
            self.racer = None
        if await self.claim_with_ref(claim.claim_ref) is not None:
            return False
        assert claim.id not in self.claims, "claim ids are unique"
        self.claims[claim.id] = claim
        return True

    async def save_decision(self, claim: StoredClaim) -> None:
        # UPDATE claims SET status, reason, decided_by WHERE id: nothing else changes
        stored = self.claims[claim.id]
        self.claims[claim.id] = replace(stored, status=claim.status, reason=claim.reason,
                                        decided_by=claim.decided_by)

    async def end_membership(self, participant_id: uuid.UUID, reason: str, on: date) -> bool:
        self.ended.append((participant_id, reason, on))
        member = self.members.get(participant_id)
        if member is None or member.ended_reason is not None:
            return False
        self.members[participant_id] = replace(
            member, ended_reason=reason, facts=replace(member.facts, terminated_on=on))
        return True

    async def publish(self, topic: Topic, key: str, payload: Payload, *, subject: str,
                      sequence: int) -> None:
        self.published.append(Published(topic, key, payload, subject, sequence))

    # --- for the tests ---
    def know(self, facts: Member, *, ended_reason: str | None = None) -> uuid.UUID:
        pid = uuid.uuid4()
        self.members[pid] = KnownMember(pid, REGION, PARTNER, ended_reason, facts)
        return pid


# --- workers and claims --------------------------------------------------------------------------
def bpu_worker(*, paid: bool = True,
               programs: frozenset[str] = frozenset({"JKK", "JKM"})) -> Member:
    """Registered 2026-11-03; paid November on 2026-11-05 (when `paid`): active on DEATH."""
    payments = (Payment(NOVEMBER, NOVEMBER, date(2026, 11, 5)),) if paid else ()
    return Member("BPU", programs, date(2026, 11, 3), 1_000_000, Period(1990, 8), payments)


def pu_worker() -> Member:
    """A wage earner in every programme since January 2026, every month paid on its due date
    (October's on 15 November): active on DEATH, and may withdraw JHT for stopping work."""
    first = Period(2026, 1)
    payments = tuple(Payment(first + i, first + i, due_date("PU", first + i),
                             jht_amount=342_000, jp_amount=180_000) for i in range(10))
    return Member("PU", frozenset(rules.PROGRAMS), date(2026, 1, 5), 6_000_000,
                  Period(1975, 3), payments)


def jkm(pid: uuid.UUID, ref: str = "KLAIM-1", **changes: Any) -> NewClaim:
    return replace(NewClaim(ref, pid, "JKM", DEATH), **changes)


def jht_stopped_work(pid: uuid.UUID, ref: str = "KLAIM-JHT") -> NewClaim:
    return NewClaim(ref, pid, "JHT", date(2026, 10, 9), "stopped_work")


async def file(unit: FakeClaimsUnit, new: NewClaim) -> tuple[int, dict[str, Any]]:
    return await handlers.file_claim(unit, new, partner=PARTNER, today=TODAY)


async def decide(unit: FakeClaimsUnit, claim_id: str | uuid.UUID, decision: str = "approve",
                 reason: str | None = None) -> tuple[int, dict[str, Any]]:
    cid = claim_id if isinstance(claim_id, uuid.UUID) else uuid.UUID(claim_id)
    return await handlers.decide_claim(unit, cid, decision, reason, officer=OFFICER)


async def filed(unit: FakeClaimsUnit, new: NewClaim) -> dict[str, Any]:
    status, claim = await file(unit, new)
    assert status == 201, claim
    return claim


def topics_and_types(unit: FakeClaimsUnit) -> list[tuple[str, str]]:
    return [(p.topic, p.payload.TYPE) for p in unit.published]


def membership_events(unit: FakeClaimsUnit) -> list[Published]:
    return [p for p in unit.published if p.topic == "memberships"]


@pytest.fixture
def unit() -> FakeClaimsUnit:
    return FakeClaimsUnit()


# --- the fake itself ------------------------------------------------------------------------------
def test_the_fake_implements_every_method_of_the_claims_unit() -> None:
    wanted = {name for name in vars(handlers.ClaimsUnit)
              if not name.startswith("_") and callable(getattr(handlers.ClaimsUnit, name))}
    assert wanted == {"member", "claim", "claim_with_ref", "has_open_jkm", "add",
                      "save_decision", "end_membership", "publish"}
    assert all(callable(getattr(FakeClaimsUnit, name, None)) for name in wanted)
    typed: handlers.ClaimsUnit = FakeClaimsUnit()  # mypy checks the signatures
    assert typed is not None


async def test_the_fake_refuses_a_taken_ref_and_ends_a_membership_once(unit) -> None:
    pid = unit.know(bpu_worker())
    claim = StoredClaim(
        id=uuid.uuid4(), claim_ref="R", request_hash=b"h", participant_id=pid, program="JKK",
        incident_date=DEATH, cause=None, filed_on=TODAY, filed_by=PARTNER, status="submitted",
        rule="r", reason=None, benefit=None, terminates=None, region_code=REGION)
    assert await unit.add(claim)
    assert not await unit.add(replace(claim, id=uuid.uuid4()))
    assert list(unit.claims) == [claim.id]
    assert await unit.end_membership(pid, "death", DEATH)
    assert not await unit.end_membership(pid, "jht_withdrawn", TODAY)
    assert unit.members[pid].ended_reason == "death"
    assert unit.members[pid].facts.terminated_on == DEATH
    assert not await unit.end_membership(uuid.uuid4(), "death", DEATH)


# --- filing ---------------------------------------------------------------------------------------
async def test_an_eligible_death_claim_is_submitted_with_42_million_and_one_event(unit) -> None:
    pid = unit.know(bpu_worker())
    status, claim = await file(unit, jkm(pid))
    assert status == 201
    assert claim["status"] == "submitted" and claim["reason"] is None
    assert claim["rule"] == "jkm.active_on_date_of_death"
    assert claim["benefit"]["amount"] == 42_000_000
    assert claim["ends_membership"] == "death"
    assert claim["claim_ref"] == "KLAIM-1" and claim["participant_id"] == str(pid)
    assert claim["filed_on"] == "2026-11-20" and claim["incident_date"] == "2026-11-18"
    stored = unit.claims[uuid.UUID(claim["claim_id"])]
    assert stored.filed_by == PARTNER and stored.region_code == REGION
    assert stored.public() == claim
    [event] = unit.published
    assert (event.topic, event.key, event.subject, event.sequence) == (
        "claims", str(pid), claim["claim_id"], 1)
    assert event.payload == ClaimSubmitted(
        claim_id=stored.id, participant_id=pid, program="JKM", status="submitted",
        region_code=REGION, benefit_amount=42_000_000, reason=None)
    assert unit.members[pid].ended_reason is None  # filing ends nothing


async def test_an_ineligible_claim_is_kept_as_rejected_with_the_rule_and_reason(unit) -> None:
    pid = unit.know(bpu_worker(paid=False))
    status, claim = await file(unit, jkm(pid))
    assert status == 201
    assert claim["status"] == "rejected"
    assert claim["rule"] == "jkm.active_on_date_of_death"
    assert claim["reason"].startswith("Not active on the date of death 2026-11-18")
    assert claim["benefit"] is None and claim["ends_membership"] is None
    assert len(unit.claims) == 1
    [event] = unit.published
    assert isinstance(event.payload, ClaimSubmitted)
    assert event.payload.status == "rejected" and event.payload.benefit_amount is None
    assert event.payload.reason == claim["reason"]
    assert (event.key, event.subject, event.sequence) == (str(pid), claim["claim_id"], 1)


@pytest.mark.parametrize(("changes", "field"), [
    ({"program": "JHT", "cause": "age"}, "program"),  # not enrolled
    ({"program": "XYZ"}, "program"),
    ({"incident_date": date(2026, 11, 21)}, "incident_date"),  # after today
    ({"incident_date": date(2026, 11, 2)}, "incident_date"),  # before registration
    ({"cause": "accident"}, "cause"),  # JKM takes no cause
])
async def test_bad_input_is_422_with_the_field_and_writes_nothing(unit, changes, field) -> None:
    pid = unit.know(bpu_worker())
    new = jkm(pid, **changes)
    with pytest.raises(Problem) as raised:
        await file(unit, new)
    problem = raised.value
    expected = rules.problem_with(unit.members[pid].facts, rules.Claim(
        new.program, new.incident_date, TODAY, new.cause))
    assert expected is not None and expected[0] == field
    assert problem.status == 422
    assert problem.errors == [{"field": field, "message": expected[1]}]
    assert problem.detail == expected[1]
    assert unit.claims == {} and unit.published == []


async def test_a_jht_claim_without_a_cause_is_bad_input(unit) -> None:
    pid = unit.know(pu_worker())
    with pytest.raises(Problem) as raised:
        await file(unit, NewClaim("K", pid, "JHT", date(2026, 10, 9)))
    assert raised.value.status == 422 and raised.value.errors[0]["field"] == "cause"
    assert unit.claims == {} and unit.published == []


async def test_an_unknown_participant_raises_unknown_participant(unit) -> None:
    with pytest.raises(handlers.UnknownParticipant):
        await file(unit, jkm(uuid.uuid4()))
    assert unit.claims == {} and unit.published == []


async def test_the_same_request_again_gets_the_first_result_and_publishes_nothing(unit) -> None:
    pid = unit.know(bpu_worker())
    first = await filed(unit, jkm(pid))
    status, again = await file(unit, jkm(pid))
    assert (status, again) == (200, first)
    assert len(unit.claims) == 1 and len(unit.published) == 1


async def test_a_replayed_rejection_is_still_the_rejection(unit) -> None:
    pid = unit.know(bpu_worker(paid=False))
    first = await filed(unit, jkm(pid))
    unit.members[pid] = replace(unit.members[pid], facts=bpu_worker())  # paid since: no matter
    assert await file(unit, jkm(pid)) == (200, first)
    assert len(unit.published) == 1


@pytest.mark.parametrize("other", [
    {"incident_date": date(2026, 11, 17)},
    {"program": "JKK"},
    {"participant_id": "another worker"},
    {"participant_id": "unknown"},
])
async def test_the_same_ref_for_another_request_is_409(unit, other) -> None:
    pid = unit.know(bpu_worker())
    first = await filed(unit, jkm(pid))
    if other.get("participant_id") == "another worker":
        other = {"participant_id": unit.know(bpu_worker())}
    elif other.get("participant_id") == "unknown":
        other = {"participant_id": uuid.uuid4()}  # the ref is checked first: 409, not unknown
    with pytest.raises(Problem) as raised:
        await file(unit, jkm(pid, **other))
    assert raised.value.status == 409
    assert raised.value.errors[0]["field"] == "claim_ref"
    assert list(unit.claims) == [uuid.UUID(first["claim_id"])]
    assert len(unit.published) == 1


async def test_a_second_death_claim_while_one_is_submitted_is_409(unit) -> None:
    pid = unit.know(bpu_worker())
    await filed(unit, jkm(pid))
    with pytest.raises(Problem) as raised:
        await file(unit, jkm(pid, "KLAIM-2"))
    assert raised.value.status == 409 and raised.value.errors[0]["field"] == "program"
    assert len(unit.claims) == 1 and len(unit.published) == 1


async def test_a_second_death_claim_once_one_is_approved_is_409(unit) -> None:
    pid = unit.know(bpu_worker())
    claim = await filed(unit, jkm(pid))
    await decide(unit, claim["claim_id"])
    published = len(unit.published)
    with pytest.raises(Problem) as raised:
        await file(unit, jkm(pid, "KLAIM-2"))
    assert raised.value.status == 409 and raised.value.errors[0]["field"] == "program"
    assert len(unit.claims) == 1 and len(unit.published) == published


async def test_a_death_claim_for_another_worker_is_not_blocked(unit) -> None:
    await filed(unit, jkm(unit.know(bpu_worker())))
    assert (await file(unit, jkm(unit.know(bpu_worker()), "KLAIM-2")))[0] == 201


async def test_a_rejected_death_claim_does_not_block_a_new_one(unit) -> None:
    pid = unit.know(bpu_worker(paid=False))
    rejected = await filed(unit, jkm(pid))
    assert rejected["status"] == "rejected"
    unit.members[pid] = replace(unit.members[pid], facts=bpu_worker())  # the payment arrived
    status, second = await file(unit, jkm(pid, "KLAIM-2"))
    assert status == 201 and second["status"] == "submitted"
    assert second["claim_id"] != rejected["claim_id"] and len(unit.claims) == 2


async def test_a_death_claim_rejected_by_an_officer_does_not_block_a_new_one(unit) -> None:
    pid = unit.know(bpu_worker())
    first = await filed(unit, jkm(pid))
    await decide(unit, first["claim_id"], "reject", "the death certificate is forged")
    assert (await file(unit, jkm(pid, "KLAIM-2")))[0] == 201


async def test_other_programmes_are_not_limited_to_one_claim(unit) -> None:
    pid = unit.know(bpu_worker())
    await filed(unit, NewClaim("JKK-1", pid, "JKK", DEATH))
    assert (await file(unit, NewClaim("JKK-2", pid, "JKK", DEATH)))[0] == 201
    assert (await file(unit, jkm(pid)))[0] == 201


async def _claim_of_another_request(unit: FakeClaimsUnit, new: NewClaim) -> StoredClaim:
    """What the same handler, in another transaction on the same data, stores for `new`."""
    other = FakeClaimsUnit()
    other.members = dict(unit.members)
    _, claim = await file(other, new)
    return other.claims[uuid.UUID(claim["claim_id"])]


async def test_a_race_on_the_ref_with_the_same_request_gets_the_first_result(unit) -> None:
    pid = unit.know(bpu_worker())
    winner = await _claim_of_another_request(unit, jkm(pid))
    unit.racer = winner
    status, claim = await file(unit, jkm(pid))
    assert (status, claim) == (200, winner.public())
    assert list(unit.claims) == [winner.id]
    assert unit.published == []  # the winner published its own event, in its transaction


async def test_a_race_on_the_ref_with_another_request_is_409(unit) -> None:
    pid = unit.know(bpu_worker())
    unit.racer = await _claim_of_another_request(unit, NewClaim("KLAIM-1", pid, "JKK", DEATH))
    with pytest.raises(Problem) as raised:
        await file(unit, jkm(pid))
    assert raised.value.status == 409 and raised.value.errors[0]["field"] == "claim_ref"
    assert len(unit.claims) == 1 and unit.published == []


async def test_a_ref_taken_yet_held_by_no_claim_is_an_error_not_an_answer(unit) -> None:
    class Inconsistent(FakeClaimsUnit):
        async def add(self, claim: StoredClaim) -> bool:
            return False

    broken = Inconsistent()
    pid = broken.know(bpu_worker())
    with pytest.raises(RuntimeError):
        await file(broken, jkm(pid))
    assert broken.published == []


# --- deciding -------------------------------------------------------------------------------------
async def test_approving_a_death_claim_ends_the_membership_with_one_event(unit) -> None:
    pid = unit.know(bpu_worker())
    claim = await filed(unit, jkm(pid))
    status, decided = await decide(unit, claim["claim_id"])
    assert status == 200
    assert decided == {**claim, "status": "approved"}
    stored = unit.claims[uuid.UUID(claim["claim_id"])]
    assert stored.status == "approved" and stored.decided_by == OFFICER
    assert topics_and_types(unit) == [("claims", "claim.submitted"),
                                      ("claims", "claim.decided"),
                                      ("memberships", "membership.status_changed")]
    _, decision, ending = unit.published
    assert (decision.key, decision.subject, decision.sequence) == (
        str(pid), claim["claim_id"], 2)
    assert decision.payload == ClaimDecided(
        claim_id=stored.id, participant_id=pid, program="JKM", status="approved",
        region_code=REGION, benefit_amount=42_000_000, reason=None)
    assert (ending.topic, ending.key, ending.subject, ending.sequence) == (
        "memberships", str(pid), str(pid), 1)
    assert ending.payload == MembershipStatusChanged(participant_id=pid, status="terminated",
                                                     reason="death")
    member = unit.members[pid]
    assert member.ended_reason == "death" and member.facts.terminated_on == DEATH


async def test_approving_a_second_ending_claim_publishes_no_second_membership_event(
        unit) -> None:
    pid = unit.know(pu_worker())
    death = await filed(unit, jkm(pid))
    withdrawal = await filed(unit, jht_stopped_work(pid))
    assert withdrawal["status"] == "submitted"
    assert withdrawal["ends_membership"] == "jht_withdrawn"
    await decide(unit, death["claim_id"])
    assert len(membership_events(unit)) == 1
    status, decided = await decide(unit, withdrawal["claim_id"])
    assert status == 200 and decided["status"] == "approved"
    assert topics_and_types(unit)[-1] == ("claims", "claim.decided")
    [ending] = membership_events(unit)
    assert isinstance(ending.payload, MembershipStatusChanged)
    assert ending.payload.reason == "death"
    assert unit.members[pid].ended_reason == "death"  # the first end stays
    assert unit.members[pid].facts.terminated_on == DEATH


async def test_a_withdrawal_ends_the_membership_for_jht_withdrawn(unit) -> None:
    pid = unit.know(pu_worker())
    claim = await filed(unit, jht_stopped_work(pid))
    await decide(unit, claim["claim_id"])
    [ending] = membership_events(unit)
    assert ending.payload == MembershipStatusChanged(participant_id=pid, status="terminated",
                                                     reason="jht_withdrawn")
    assert unit.members[pid].facts.terminated_on == date(2026, 10, 9)


async def test_approving_a_death_claim_of_a_lapsed_membership_publishes_no_event(unit) -> None:
    pid = unit.know(bpu_worker())
    claim = await filed(unit, jkm(pid))
    unit.members[pid] = replace(unit.members[pid], ended_reason="lapsed")  # contributions said
    status, decided = await decide(unit, claim["claim_id"])
    assert status == 200 and decided["status"] == "approved"
    assert membership_events(unit) == []
    assert unit.members[pid].ended_reason == "lapsed"


async def test_rejecting_keeps_the_reason_and_ends_nothing(unit) -> None:
    pid = unit.know(bpu_worker())
    claim = await filed(unit, jkm(pid))
    status, decided = await decide(unit, claim["claim_id"], "reject", "no death certificate")
    assert status == 200
    assert decided["status"] == "rejected" and decided["reason"] == "no death certificate"
    stored = unit.claims[uuid.UUID(claim["claim_id"])]
    assert stored.status == "rejected" and stored.reason == "no death certificate"
    assert stored.decided_by == OFFICER
    assert topics_and_types(unit) == [("claims", "claim.submitted"), ("claims", "claim.decided")]
    event = unit.published[-1]
    assert isinstance(event.payload, ClaimDecided)
    assert event.payload.status == "rejected" and event.payload.reason == "no death certificate"
    assert event.sequence == 2 and event.subject == claim["claim_id"]
    assert unit.ended == [] and unit.members[pid].ended_reason is None
    # a rejected claim pays nothing and ends nothing, in the answer and in the event
    assert decided["benefit"] is None and decided["ends_membership"] is None
    assert event.payload.benefit_amount is None


async def test_a_decision_other_than_approve_or_reject_is_refused(unit) -> None:
    pid = unit.know(bpu_worker())
    claim = await filed(unit, jkm(pid))
    with pytest.raises(Problem) as refused:
        await decide(unit, claim["claim_id"], "maybe", None)
    assert refused.value.status == 422
    assert unit.claims[uuid.UUID(claim["claim_id"])].status == "submitted"


async def test_another_partner_reusing_a_claim_ref_gets_409_not_the_claim(unit) -> None:
    pid = unit.know(bpu_worker())
    await filed(unit, jkm(pid))
    with pytest.raises(Problem) as refused:
        await handlers.file_claim(unit, jkm(pid), partner="partner-b", today=TODAY)
    assert refused.value.status == 409


async def test_rejecting_without_a_reason_says_an_officer_rejected_it(unit) -> None:
    claim = await filed(unit, jkm(unit.know(bpu_worker())))
    _, decided = await decide(unit, claim["claim_id"], "reject")
    assert decided["status"] == "rejected" and decided["reason"] == "rejected by an officer"


@pytest.mark.parametrize("first", ["approve", "reject"])
@pytest.mark.parametrize("second", ["approve", "reject"])
async def test_a_decided_claim_cannot_be_decided_again(unit, first, second) -> None:
    pid = unit.know(bpu_worker())
    claim = await filed(unit, jkm(pid))
    _, decided = await decide(unit, claim["claim_id"], first, "reason")
    published, stored = list(unit.published), dict(unit.claims)
    with pytest.raises(Problem) as raised:
        await decide(unit, claim["claim_id"], second, "again")
    assert raised.value.status == 409 and raised.value.errors[0]["field"] == "decision"
    assert decided["status"] in str(raised.value.detail)
    assert unit.published == published and unit.claims == stored


async def test_a_claim_rejected_on_filing_cannot_be_decided(unit) -> None:
    pid = unit.know(bpu_worker(paid=False))
    claim = await filed(unit, jkm(pid))
    with pytest.raises(Problem) as raised:
        await decide(unit, claim["claim_id"])
    assert raised.value.status == 409
    assert len(unit.published) == 1 and unit.ended == []
    assert unit.claims[uuid.UUID(claim["claim_id"])].status == "rejected"


async def test_an_unknown_claim_is_404(unit) -> None:
    with pytest.raises(Problem) as raised:
        await decide(unit, uuid.uuid4())
    assert raised.value.status == 404
    assert unit.published == []


async def test_approving_a_claim_that_ends_nothing_ends_nothing(unit) -> None:
    pid = unit.know(bpu_worker())
    claim = await filed(unit, NewClaim("JKK-1", pid, "JKK", DEATH))
    assert claim["ends_membership"] is None
    status, decided = await decide(unit, claim["claim_id"])
    assert status == 200 and decided["status"] == "approved"
    assert topics_and_types(unit) == [("claims", "claim.submitted"), ("claims", "claim.decided")]
    decision = unit.published[-1].payload
    assert isinstance(decision, ClaimDecided) and decision.benefit_amount is None
    assert unit.ended == [] and unit.members[pid].ended_reason is None

