"""The claims service's use cases: file a claim, decide it. Over a `ClaimsUnit` (one
transaction: what the service knows, and the events it queues), so that the rules of the flow
are tested with an in-memory fake (tests/unit/test_claims_handlers.py) and the SQL lives in
store.py alone.

- Filing: the rules (rules.py) first tell bad input (422, nothing written) from a claim that
  fails eligibility (kept, status `rejected`, with the rule's reason). `claim_ref` is
  idempotent: the same request again returns the first result; the same ref for another
  request is 409. A second JKM for a worker (one submitted or approved) is 409.
- Deciding: only a `submitted` claim (409 otherwise). Approving a claim whose rule ends the
  membership (JKM: death; JHT for stopping work: jht_withdrawn) ends it once, with a
  membership event for contributions, coverage and registration.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Literal, Protocol

import orjson

from services.claims import rules
from shared.events import ClaimDecided, ClaimSubmitted, MembershipStatusChanged, Payload
from shared.problems import Problem

SOURCE = "claims"
ClaimStatus = Literal["submitted", "approved", "rejected"]
Topic = Literal["claims", "memberships"]


@dataclass(frozen=True, slots=True)
class KnownMember:
    participant_id: uuid.UUID
    region_code: str
    owner: str | None
    ended_reason: str | None
    facts: rules.Member


@dataclass(frozen=True, slots=True)
class NewClaim:
    claim_ref: str
    participant_id: uuid.UUID
    program: str
    incident_date: date
    cause: str | None = None

    def request_hash(self) -> bytes:
        return hashlib.sha256(orjson.dumps(
            [self.participant_id, self.program, self.incident_date, self.cause])).digest()


@dataclass(frozen=True, slots=True)
class StoredClaim:
    id: uuid.UUID
    claim_ref: str
    request_hash: bytes
    participant_id: uuid.UUID
    program: str
    incident_date: date
    cause: str | None
    filed_on: date
    filed_by: str
    status: ClaimStatus
    rule: str
    reason: str | None
    benefit: dict[str, Any] | None
    terminates: str | None
    region_code: str
    decided_by: str | None = None

    def public(self) -> dict[str, Any]:
        return {"claim_id": str(self.id), "claim_ref": self.claim_ref,
                "participant_id": str(self.participant_id), "program": self.program,
                "incident_date": str(self.incident_date), "cause": self.cause,
                "filed_on": str(self.filed_on), "status": self.status, "rule": self.rule,
                "reason": self.reason, "benefit": self.benefit,
                "ends_membership": self.terminates}


class UnknownParticipant(Exception):
    """No participant with this id is known (yet): the API says which."""


class ClaimsUnit(Protocol):
    """One transaction of the claims service."""

    async def member(self, participant_id: uuid.UUID) -> KnownMember | None:
        """The member, locked for the rest of the transaction."""

    async def claim(self, claim_id: uuid.UUID) -> StoredClaim | None:
        """The claim, locked for the rest of the transaction."""

    async def claim_with_ref(self, claim_ref: str) -> StoredClaim | None: ...

    async def has_open_jkm(self, participant_id: uuid.UUID) -> bool:
        """Whether a JKM claim for the participant is submitted or approved."""

    async def add(self, claim: StoredClaim) -> bool:
        """Store a new claim; False when its claim_ref was taken meanwhile (nothing stored)."""

    async def save_decision(self, claim: StoredClaim) -> None: ...

    async def end_membership(self, participant_id: uuid.UUID, reason: str,
                             on: date) -> bool:
        """End the membership; False when it had already ended."""

    async def publish(self, topic: Topic, key: str, payload: Payload, *, subject: str,
                      sequence: int) -> None: ...


def _conflict(detail: str, field: str) -> Problem:
    return Problem(409, "Conflict", detail, errors=[{"field": field, "message": detail}])


async def file_claim(unit: ClaimsUnit, new: NewClaim, *, partner: str,
                     today: date) -> tuple[int, dict[str, Any]]:
    """(201, the claim) for a new claim, judged; (200, the claim) for the same request again."""
    member = await unit.member(new.participant_id)
    earlier = await unit.claim_with_ref(new.claim_ref)
    if earlier is not None:
        return _replayed(earlier, new, partner)
    if member is None:
        raise UnknownParticipant
    claim = rules.Claim(program=new.program, incident_date=new.incident_date, filed_on=today,
                        cause=new.cause)
    problem = rules.problem_with(member.facts, claim)
    if problem is not None:
        field, message = problem
        raise Problem(422, "Invalid request", message,
                      errors=[{"field": field, "message": message}])
    if new.program == "JKM" and await unit.has_open_jkm(new.participant_id):
        raise _conflict("a JKM (death) claim for this worker is already submitted or approved",
                        "program")
    judged = rules.judge(member.facts, claim)
    stored = StoredClaim(
        id=uuid.uuid4(), claim_ref=new.claim_ref, request_hash=new.request_hash(),
        participant_id=new.participant_id, program=new.program,
        incident_date=new.incident_date, cause=new.cause, filed_on=today, filed_by=partner,
        status="submitted" if judged.eligible else "rejected", rule=judged.rule,
        reason=judged.reason, benefit=judged.benefit if judged.eligible else None,
        terminates=judged.terminates if judged.eligible else None,
        region_code=member.region_code)
    if not await unit.add(stored):  # the same ref, filed by a request that raced this one
        raced = await unit.claim_with_ref(new.claim_ref)
        if raced is None:
            raise RuntimeError("claim_ref taken, yet no claim holds it")
        return _replayed(raced, new, partner)
    await _publish_claim(unit, ClaimSubmitted, stored, sequence=1)
    return 201, stored.public()


def _replayed(earlier: StoredClaim, new: NewClaim, partner: str) -> tuple[int, dict[str, Any]]:
    """The first result for the same request from the same partner; 409 otherwise (another
    partner's ref is not read back to it)."""
    if earlier.request_hash != new.request_hash() or earlier.filed_by != partner:
        raise _conflict("this claim_ref was already used for another claim", "claim_ref")
    return 200, earlier.public()


async def decide_claim(unit: ClaimsUnit, claim_id: uuid.UUID, decision: str,
                       reason: str | None, *, officer: str) -> tuple[int, dict[str, Any]]:
    claim = await unit.claim(claim_id)
    if claim is None:
        raise Problem(404, "Not found", "no claim has this id")
    if claim.status != "submitted":
        raise _conflict(f"this claim is already {claim.status}; a decided claim cannot be "
                        "decided again", "decision")
    if decision == "reject":
        decided = replace(claim, status="rejected", reason=reason or "rejected by an officer",
                          benefit=None, terminates=None, decided_by=officer)
    elif decision == "approve":
        decided = replace(claim, status="approved", decided_by=officer)
    else:
        raise Problem(422, "Invalid request", "decision must be approve or reject",
                      errors=[{"field": "decision", "message": "approve or reject"}])
    await unit.save_decision(decided)
    await _publish_claim(unit, ClaimDecided, decided, sequence=2)
    if decided.status == "approved" and decided.terminates:
        await _end_membership(unit, decided)
    return 200, decided.public()


async def _end_membership(unit: ClaimsUnit, claim: StoredClaim) -> None:
    member = await unit.member(claim.participant_id)
    reason = claim.terminates or "ended"
    if member is None or not await unit.end_membership(claim.participant_id, reason,
                                                       claim.incident_date):
        return  # ended already (by another claim, or a lapse): said once, by whoever ended it
    subject = str(claim.participant_id)
    # One membership event per participant from this service: a membership ends once.
    await unit.publish("memberships", subject, MembershipStatusChanged(
        participant_id=claim.participant_id, status="terminated", reason=reason),
        subject=subject, sequence=1)


async def _publish_claim(unit: ClaimsUnit, kind: type[ClaimSubmitted] | type[ClaimDecided],
                         claim: StoredClaim, *, sequence: int) -> None:
    amount = claim.benefit.get("amount") if claim.benefit else None
    payload = kind(claim_id=claim.id, participant_id=claim.participant_id,
                   program=claim.program, status=claim.status,  # type: ignore[arg-type]
                   region_code=claim.region_code,
                   benefit_amount=amount if isinstance(amount, int) else None,
                   reason=claim.reason)
    # Keyed by the participant (co-partitioned with the other source topics); the claim is the
    # event's subject, with its own sequence.
    await unit.publish("claims", str(claim.participant_id), payload, subject=str(claim.id),
                       sequence=sequence)
