"""Counting rules, pure: what a participant's events say, and what that adds to each region.

The worker keeps one `Facts` per participant: the newest fact each source told (with that
source's sequence number). A participant's counted state is a function of its facts, and an
event only ever moves the counters by the difference between the state before and after it.
A duplicate or replayed event (sequence not newer than the last one seen from its source)
changes no fact, so it changes no counter: counting is exactly once without transactions.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.events import (
    ClaimState,
    Envelope,
    MembershipStatusChanged,
    ParticipantDeregistered,
    ParticipantState,
    Payload,
)

REGISTRATION = "registration"

Counters = dict[str, int]


@dataclass(frozen=True, slots=True)
class CountedState:
    """Where a participant is counted, in which segment, with which membership status."""

    village: str
    segment: str
    status: str  # active | inactive | terminated


@dataclass(frozen=True, slots=True)
class Facts:
    """The newest facts about one participant, per source of events."""

    sequences: tuple[tuple[str, int], ...] = ()  # (source, last sequence applied)
    village: str | None = None
    segment: str | None = None
    deregistered: bool = False
    statuses: tuple[tuple[str, str], ...] = ()  # (source, status) from membership events

    def sequence_of(self, source: str) -> int:
        return dict(self.sequences).get(source, 0)

    def to_json(self) -> dict[str, Any]:
        return {"seq": dict(self.sequences), "village": self.village, "segment": self.segment,
                "dereg": self.deregistered, "status": dict(self.statuses)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Facts:
        if not data:
            return cls()
        return cls(
            sequences=tuple(sorted(data.get("seq", {}).items())),
            village=data.get("village"),
            segment=data.get("segment"),
            deregistered=bool(data.get("dereg")),
            statuses=tuple(sorted(data.get("status", {}).items())),
        )


def apply_event(facts: Facts, envelope: Envelope, payload: Payload) -> Facts | None:
    """The facts after an event, or None when the event adds nothing (seen before, or older).

    Claim events are about a claim (their subject and sequence are the claim's), not the
    participant's membership: a claim that ends a membership says so with a membership event
    of its own. They move no participant fact."""
    if isinstance(payload, ClaimState):
        return None
    source = envelope.source
    if envelope.sequence <= facts.sequence_of(source):
        return None
    sequences = tuple(sorted({**dict(facts.sequences), source: envelope.sequence}.items()))
    if isinstance(payload, ParticipantState):
        return Facts(sequences, payload.region_code, payload.segment, facts.deregistered,
                     facts.statuses)
    if isinstance(payload, ParticipantDeregistered):
        return Facts(sequences, facts.village, facts.segment, True, facts.statuses)
    if isinstance(payload, MembershipStatusChanged):
        statuses = tuple(sorted({**dict(facts.statuses), source: payload.status}.items()))
        return Facts(sequences, facts.village, facts.segment, facts.deregistered, statuses)
    # An event type that does not move coverage: remember its sequence only.
    return Facts(sequences, facts.village, facts.segment, facts.deregistered, facts.statuses)


def membership_status(facts: Facts) -> str:
    """terminated if any source ended the membership, active if paid up, else inactive.

    A new registrant is inactive until the contributions service says otherwise.
    """
    statuses = dict(facts.statuses)
    if facts.deregistered or "terminated" in statuses.values():
        return "terminated"
    return "active" if "active" in statuses.values() else "inactive"


def counted_state(facts: Facts) -> CountedState | None:
    """None until the registration is known (a membership event may arrive first)."""
    if facts.village is None or facts.segment is None:
        return None
    return CountedState(facts.village, facts.segment, membership_status(facts))


def contribution(state: CountedState) -> Counters:
    """What one participant in `state` adds to its region's counters."""
    counters = {state.status: 1}
    if state.status != "terminated":
        counters["registered"] = 1
        counters[f"{state.segment}.registered"] = 1
        if state.status == "active":
            counters[f"{state.segment}.active"] = 1
    return counters


def transition_deltas(before: CountedState | None, after: CountedState | None
                      ) -> dict[str, Counters]:
    """Counter changes per village for one state change. Districts, regencies and above are
    sums of their villages: readers add them up (services/coverage/counters_view.py)."""
    deltas: dict[str, Counters] = defaultdict(dict)
    for state, sign in ((before, -1), (after, +1)):
        if state is None:
            continue
        village_deltas = deltas[state.village]
        for name, value in contribution(state).items():
            village_deltas[name] = village_deltas.get(name, 0) + sign * value
    return {v: {k: n for k, n in c.items() if n} for v, c in deltas.items() if any(c.values())}


CellKey = tuple[int, str]  # (source partition, village)


@dataclass(frozen=True, slots=True)
class CounterCell:
    """One absolute counter of one village, as one source partition counts it."""

    partition: int
    village: str
    name: str
    value: int


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """One decoded event and where it came from: its source partition, which is also the
    partition of its participant (the relay sends a subject's events to the partition its key
    hashes to)."""

    partition: int
    envelope: Envelope
    payload: Payload


@dataclass
class FoldedBatch:
    """What a batch of events changes: the new facts of the participants it moved, the counter
    deltas per (source partition, village), and the events refused (their index, the reason)."""

    facts: dict[str, tuple[int, Facts]]
    deltas: dict[CellKey, Counters]
    refused: list[tuple[int, str]]
    claims: dict[str, tuple[int, ClaimFacts]] = field(default_factory=dict)


class Unappliable(ValueError):
    """An event that decodes but cannot be counted (impossible values): a dead letter."""


def check_countable(envelope: Envelope, payload: Payload, is_village: Callable[[str], bool]
                    ) -> str:
    """The participant id the event is about (canonical form); raises Unappliable when the
    event decodes but says something impossible."""
    try:
        subject = uuid.UUID(envelope.subject)
    except ValueError:
        raise Unappliable("subject is not a participant id (a UUID)") from None
    participant = getattr(payload, "participant_id", None)
    if participant is not None and participant != subject:
        raise Unappliable("the payload's participant_id is not the event's subject")
    if envelope.sequence > MAX_SEQUENCE:
        raise Unappliable(f"sequence above {MAX_SEQUENCE}")
    if isinstance(payload, ParticipantState) and not is_village(payload.region_code):
        raise Unappliable("region_code is not a village code of the Kemendagri list")
    return str(subject)


MAX_SEQUENCE = 2**53  # exact in any JSON reader


def fold_batch(before: Mapping[str, Facts], events: Iterable[SourceEvent],
               is_village: Callable[[str], bool],
               claims_before: Mapping[str, ClaimFacts] | None = None) -> FoldedBatch:
    """Fold events, in order, onto the participants' facts as they were before the batch (and
    claim events onto the claims' facts, `claims_before`).

    `before` holds the stored facts of (at least) every subject in the batch; a subject it
    lacks has no facts yet. Each participant's counters move by the difference between its
    counted state before and after the whole batch: the same result as event by event.
    """
    current: dict[str, Facts] = {}
    partition_of: dict[str, int] = {}
    refused: list[tuple[int, str]] = []
    claims: dict[str, tuple[int, ClaimFacts]] = {}
    claims_before = claims_before or {}
    for index, event in enumerate(events):
        envelope = event.envelope
        if isinstance(event.payload, ClaimState):
            try:
                claim_key, claim = check_claim(envelope, event.payload, is_village)
            except Unappliable as exc:
                refused.append((index, str(exc)))
                continue
            seen = claims.get(claim_key, (event.partition, claims_before.get(claim_key)))
            if seen[1] is None or envelope.sequence > seen[1].sequence:
                claims[claim_key] = (seen[0], replace(claim, sequence=envelope.sequence))
            continue
        try:
            key = check_countable(envelope, event.payload, is_village)
        except Unappliable as exc:
            refused.append((index, str(exc)))
            continue
        facts = current.get(key) or before.get(key) or Facts()
        after = apply_event(facts, envelope, event.payload)
        if after is not None:
            current[key] = after
            partition_of.setdefault(key, event.partition)
    deltas: dict[CellKey, Counters] = {}
    for key, after in current.items():
        partition = partition_of[key]
        moved = transition_deltas(counted_state(before.get(key) or Facts()), counted_state(after))
        for village, changes in moved.items():
            cell = deltas.setdefault((partition, village), {})
            for name, value in changes.items():
                cell[name] = cell.get(name, 0) + value
    for key, (partition, claim) in claims.items():
        moved = claim_deltas(claims_before.get(key), claim)
        for village, changes in moved.items():
            cell = deltas.setdefault((partition, village), {})
            for name, value in changes.items():
                cell[name] = cell.get(name, 0) + value
    deltas = {k: {n: v for n, v in c.items() if v} for k, c in deltas.items()}
    return FoldedBatch({k: (partition_of[k], f) for k, f in current.items()},
                       {k: c for k, c in deltas.items() if c}, refused, claims)


# --- claims -----------------------------------------------------------------------------------
# A claim is counted in its worker's village, under its programme, by status: each claim once
# (its newest status), and the benefit of an approved one. Its facts are kept per claim, with
# the claim's own sequence (submitted 1, decided 2): a replay changes nothing.

CLAIM_STATUSES = ("submitted", "approved", "rejected")


@dataclass(frozen=True, slots=True)
class ClaimFacts:
    sequence: int
    village: str
    program: str
    status: str
    benefit_amount: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.sequence, "village": self.village, "program": self.program,
                "status": self.status, "benefit": self.benefit_amount}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClaimFacts:
        return cls(int(data["seq"]), data["village"], data["program"], data["status"],
                   int(data.get("benefit") or 0))


def claim_counters(claim: ClaimFacts) -> Counters:
    """What one claim adds to its village's counters."""
    counters = {f"claims.{claim.program}.{claim.status}": 1}
    if claim.status == "approved" and claim.benefit_amount:
        counters[f"claims.{claim.program}.benefit_paid"] = claim.benefit_amount
    return counters


def claim_deltas(before: ClaimFacts | None, after: ClaimFacts) -> dict[str, Counters]:
    deltas: dict[str, Counters] = defaultdict(dict)
    for state, sign in ((before, -1), (after, +1)):
        if state is None:
            continue
        for name, value in claim_counters(state).items():
            deltas[state.village][name] = deltas[state.village].get(name, 0) + sign * value
    return {v: {k: n for k, n in c.items() if n} for v, c in deltas.items() if any(c.values())}


def check_claim(envelope: Envelope, payload: ClaimState, is_village: Callable[[str], bool]
                ) -> tuple[str, ClaimFacts]:
    """The claim id (canonical) and its facts; Unappliable for an impossible claim event."""
    try:
        subject = uuid.UUID(envelope.subject)
    except ValueError:
        raise Unappliable("subject is not a claim id (a UUID)") from None
    if payload.claim_id != subject:
        raise Unappliable("the payload's claim_id is not the event's subject")
    if envelope.sequence > MAX_SEQUENCE:
        raise Unappliable(f"sequence above {MAX_SEQUENCE}")
    if not is_village(payload.region_code):
        raise Unappliable("region_code is not a village code of the Kemendagri list")
    amount = payload.benefit_amount or 0
    if not 0 <= amount <= MAX_SEQUENCE:
        raise Unappliable("benefit_amount is negative or too large")
    return str(subject), ClaimFacts(envelope.sequence, payload.region_code, payload.program,
                                    payload.status, amount)
