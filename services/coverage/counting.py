"""Counting rules, pure: what a participant's events say, and what that adds to each region.

The worker keeps one `Facts` per participant: the newest fact each source told (with that
source's sequence number). A participant's counted state is a function of its facts, and an
event only ever moves the counters by the difference between the state before and after it.
A duplicate or replayed event (sequence not newer than the last one seen from its source)
changes no fact, so it changes no counter: counting is exactly once without transactions.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.events import (
    ClaimState,
    ContributionPaid,
    EmployerState,
    Envelope,
    MembershipStatusChanged,
    ParticipantDeregistered,
    ParticipantState,
    Payload,
    ProgrammeEnrolmentChanged,
    ProgrammeState,
)

REGISTRATION = "registration"
# A worker counts toward a region's KPI after this many paid months (DOMAIN.md).
KPI_MONTHS = 6
# Agent ids travel in counter names: letters, digits, dot, dash, underscore (never a slash).
AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
PERIOD = re.compile(r"(20[0-9]{2}|2100)-(0[1-9]|1[0-2])")
MAX_AMOUNT = 10**15  # rupiah: beyond any real payment, exact in any JSON reader

Counters = dict[str, int]


@dataclass(frozen=True, slots=True)
class CountedState:
    """Where a participant is counted, in which segment, with which membership status, and
    what the who-pays-and-who-is-missing counters (issue 11) need: its employer, how it was
    registered (channel, agent, month), whether it counts toward the KPI, its funded
    programme and how far it is paid, what agents collected from it and programmes paid."""

    village: str
    segment: str
    status: str  # active | inactive | terminated
    employer: str | None = None
    channel: str | None = None
    agent: str | None = None
    registered_in: str | None = None  # YYYY-MM
    kpi: bool = False  # active with at least KPI_MONTHS paid months
    programmes: tuple[str, ...] = ()  # the funded programmes it is enrolled in now
    paid_through: str | None = None  # YYYY-MM; kept only for programmes' workers
    collected: tuple[tuple[str, int], ...] = ()  # ("agent|YYYY-MM", rupiah)
    funded: tuple[tuple[str, int], ...] = ()  # (programme id, rupiah)


@dataclass(frozen=True, slots=True)
class Facts:
    """The newest facts about one participant, per source of events."""

    sequences: tuple[tuple[str, int], ...] = ()  # (source, last sequence applied)
    village: str | None = None
    segment: str | None = None
    deregistered: bool = False
    statuses: tuple[tuple[str, str], ...] = ()  # (source, status) from membership events
    # From registration events (issue 11): employer, channel, agent, month of registration.
    employer: str | None = None
    channel: str | None = None
    agent: str | None = None
    registered_in: str | None = None
    # From contributions events: months paid in all, the last month paid, the programmes it is
    # enrolled in, and running sums of what agents collected and programmes paid.
    months_paid: int = 0
    paid_through: str | None = None
    programmes: tuple[str, ...] = ()
    collected: tuple[tuple[str, int], ...] = ()
    funded: tuple[tuple[str, int], ...] = ()

    def sequence_of(self, source: str) -> int:
        return dict(self.sequences).get(source, 0)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "seq": dict(self.sequences), "village": self.village, "segment": self.segment,
            "dereg": self.deregistered, "status": dict(self.statuses)}
        # The issue 11 facts only when present: older facts read back the same.
        for key, value in (("emp", self.employer), ("ch", self.channel), ("agent", self.agent),
                           ("reg", self.registered_in), ("paid", self.months_paid),
                           ("through", self.paid_through), ("prog", list(self.programmes)),
                           ("coll", dict(self.collected)), ("fund", dict(self.funded))):
            if value:
                data[key] = value
        return data

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
            employer=data.get("emp"),
            channel=data.get("ch"),
            agent=data.get("agent"),
            registered_in=data.get("reg"),
            months_paid=int(data.get("paid") or 0),
            paid_through=data.get("through"),
            programmes=tuple(sorted(data.get("prog") or ())),
            collected=tuple(sorted((data.get("coll") or {}).items())),
            funded=tuple(sorted((data.get("fund") or {}).items())),
        )


def apply_event(facts: Facts, envelope: Envelope, payload: Payload) -> Facts | None:
    """The facts after an event, or None when the event adds nothing (seen before, or older).

    Claim events are about a claim (their subject and sequence are the claim's), not the
    participant's membership: a claim that ends a membership says so with a membership event
    of its own. They move no participant fact."""
    if isinstance(payload, ClaimState | EmployerState | ProgrammeState):
        return None
    source = envelope.source
    if envelope.sequence <= facts.sequence_of(source):
        return None
    sequences = tuple(sorted({**dict(facts.sequences), source: envelope.sequence}.items()))
    seen = replace(facts, sequences=sequences)
    if isinstance(payload, ParticipantState):
        return replace(seen, village=payload.region_code, segment=payload.segment,
                       employer=payload.employer_id, channel=payload.channel,
                       agent=payload.agent_id, registered_in=payload.registered_on[:7])
    if isinstance(payload, ParticipantDeregistered):
        return replace(seen, deregistered=True)
    if isinstance(payload, MembershipStatusChanged):
        statuses = tuple(sorted({**dict(facts.statuses), source: payload.status}.items()))
        return replace(seen, statuses=statuses)
    if isinstance(payload, ContributionPaid):
        through = max(facts.paid_through or "", payload.last_period)
        collected, funded = facts.collected, facts.funded
        if payload.agent_id:
            collected = _added(collected, f"{payload.agent_id}|{payload.paid_on[:7]}",
                               payload.amount)
        if payload.programme_id:
            funded = _added(funded, str(payload.programme_id), payload.amount)
        return replace(seen, months_paid=max(facts.months_paid, payload.months_paid or 0),
                       paid_through=through, collected=collected, funded=funded)
    if isinstance(payload, ProgrammeEnrolmentChanged):
        enrolled = set(facts.programmes) - {str(payload.programme_id)}
        if payload.enrolled:
            enrolled.add(str(payload.programme_id))
        return replace(seen, programmes=tuple(sorted(enrolled)))
    # An event type that does not move coverage: remember its sequence only.
    return seen


def _added(sums: tuple[tuple[str, int], ...], key: str, amount: int
           ) -> tuple[tuple[str, int], ...]:
    totals = dict(sums)
    totals[key] = totals.get(key, 0) + amount
    return tuple(sorted(totals.items()))


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
    status = membership_status(facts)
    return CountedState(
        facts.village, facts.segment, status, facts.employer, facts.channel, facts.agent,
        facts.registered_in, kpi=status == "active" and facts.months_paid >= KPI_MONTHS,
        programmes=facts.programmes,
        paid_through=facts.paid_through if facts.programmes else None,
        collected=facts.collected, funded=facts.funded)


def contribution(state: CountedState) -> Counters:
    """What one participant in `state` adds to its region's counters: the region's own
    (statuses, segments, `kpi_active`) and the dimensions of issue 11, whose names hold a
    slash (services/coverage/dimensions.py reads them): per employer, per channel and agent
    and month of registration, what agents collected per month, per funded programme."""
    active = state.status == "active"
    counters = {state.status: 1}
    if state.status != "terminated":
        counters["registered"] = 1
        counters[f"{state.segment}.registered"] = 1
        if active:
            counters[f"{state.segment}.active"] = 1
            if state.kpi:
                counters["kpi_active"] = 1
    if state.employer:
        counters[f"employer/{state.employer}/{state.status}"] = 1
        if state.status != "terminated":
            counters[f"employer/{state.employer}/registered"] = 1
    if state.registered_in:
        # Registrations of the month stay counted whatever became of them; `active` is how
        # many of them are active now.
        for who in (f"channel/{state.channel or 'partner_api'}",
                    *((f"agent/{state.agent}",) if state.agent else ())):
            counters[f"{who}/{state.registered_in}/registered"] = 1
            if active:
                counters[f"{who}/{state.registered_in}/active"] = 1
    for key, amount in state.collected:
        agent, month = key.split("|", 1)
        counters[f"agent/{agent}/{month}/collected"] = amount
    for programme in state.programmes:
        counters[f"programme/{programme}/enrolled"] = 1
        if active:
            counters[f"programme/{programme}/active"] = 1
        if state.paid_through:
            counters[f"programme/{programme}/paid_through/{state.paid_through}"] = 1
    for programme, amount in state.funded:
        counters[f"programme/{programme}/spent"] = amount
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
    organisations: dict[str, tuple[int, Organisation]] = field(default_factory=dict)


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
    if isinstance(payload, ParticipantState):
        if not is_village(payload.region_code):
            raise Unappliable("region_code is not a village code of the Kemendagri list")
        _check_name_part("employer_id", payload.employer_id)
        _check_agent(payload.agent_id)
        if not PERIOD.fullmatch(payload.registered_on[:7]):
            raise Unappliable("registered_on is not a date of 2000-2100")
    if isinstance(payload, ContributionPaid):
        _check_agent(payload.agent_id)
        if not (PERIOD.fullmatch(payload.last_period) and PERIOD.fullmatch(payload.paid_on[:7])):
            raise Unappliable("last_period or paid_on is not a month of 2000-2100")
        if not 0 <= payload.amount <= MAX_AMOUNT:
            raise Unappliable("amount is negative or too large")
        if not 0 <= (payload.months_paid or 0) <= 12 * 200:
            raise Unappliable("months_paid is negative or too large")
    return str(subject)


def _check_agent(agent_id: str | None) -> None:
    if agent_id is not None and not AGENT_ID.fullmatch(agent_id):
        raise Unappliable("agent_id is not an agent id (letters, digits, . _ -; at most 40)")


def _check_name_part(field_name: str, value: str | None) -> None:
    """A value that goes into counter names: short, no slash or bar."""
    if value is not None and (not value or len(value) > 64 or "/" in value or "|" in value):
        raise Unappliable(f"{field_name} cannot name a counter (empty, too long, / or |)")


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
    organisations: dict[str, tuple[int, Organisation]] = {}
    for index, event in enumerate(events):
        envelope = event.envelope
        if isinstance(event.payload, EmployerState | ProgrammeState):
            try:
                organisation = check_organisation(envelope, event.payload)
            except Unappliable as exc:
                refused.append((index, str(exc)))
                continue
            kept = organisations.get(organisation.id)
            if kept is None or organisation.sequence > kept[1].sequence:
                organisations[organisation.id] = (event.partition, organisation)
            continue
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
                       {k: c for k, c in deltas.items() if c}, refused, claims, organisations)


# --- organisations ----------------------------------------------------------------------------
# Employers (OPDs included) and funded programmes: reference data the dimension counters are
# read against (declared workers, quota, budget). Kept whole, newest sequence wins; they move
# no counter.


@dataclass(frozen=True, slots=True)
class Organisation:
    id: str
    kind: str  # employer | programme
    sequence: int
    data: dict[str, Any]


def check_organisation(envelope: Envelope, payload: EmployerState | ProgrammeState
                       ) -> Organisation:
    try:
        subject = uuid.UUID(envelope.subject)
    except ValueError:
        raise Unappliable("subject is not an employer's or programme's id (a UUID)") from None
    kind = "employer" if isinstance(payload, EmployerState) else "programme"
    own_id = payload.employer_id if isinstance(payload, EmployerState) else payload.programme_id
    if own_id != subject:
        raise Unappliable(f"the payload's {kind}_id is not the event's subject")
    if envelope.sequence > MAX_SEQUENCE:
        raise Unappliable(f"sequence above {MAX_SEQUENCE}")
    if isinstance(payload, ProgrammeState) and not (
            0 <= payload.quota <= 100_000_000 and 0 <= payload.budget_rupiah <= MAX_AMOUNT):
        raise Unappliable("quota or budget_rupiah is negative or too large")
    return Organisation(str(subject), kind, envelope.sequence, payload.model_dump(mode="json"))


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
