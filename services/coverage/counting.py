"""Counting rules, pure: what a participant's events say, and what that adds to each region.

The worker keeps one `Facts` per participant: the newest fact each source told (with that
source's sequence number). A participant's counted state is a function of its facts, and an
event only ever moves the counters by the difference between the state before and after it.
A duplicate or replayed event (sequence not newer than the last one seen from its source)
changes no fact, so it changes no counter: counting is exactly once without transactions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.events import (
    Envelope,
    MembershipStatusChanged,
    ParticipantDeregistered,
    ParticipantState,
    Payload,
)
from shared.regions import regency_of

SEGMENTS = ("PU", "BPU", "JAKON", "PMI")
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
    """The facts after an event, or None when the event adds nothing (seen before, or older)."""
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


Villages = dict[str, Counters]  # village code → its counters


class PartitionLedger:
    """Absolute village counters per (source partition, regency), and which of those groups
    changed since the last publication. In memory: rebuilt from the facts table whenever
    partitions are recovered. One message per changed group, not per region, keeps what is
    published small however many villages and levels a burst of events touches."""

    def __init__(self) -> None:
        self._groups: dict[int, dict[str, Villages]] = defaultdict(dict)
        self._dirty: set[tuple[int, str]] = set()

    def add(self, partition: int, deltas: dict[str, Counters]) -> None:
        groups = self._groups[partition]
        for village, changes in deltas.items():
            regency = regency_of(village)
            villages = groups.setdefault(regency, {})
            counters = villages.setdefault(village, {})
            for name, value in changes.items():
                total = counters.get(name, 0) + value
                if total:
                    counters[name] = total
                else:
                    counters.pop(name, None)
            if not counters:
                del villages[village]
            self._dirty.add((partition, regency))

    def rebuild(self, partition: int, states: Iterable[CountedState],
                known_regencies: Iterable[str] = ()) -> None:
        """Counters of one partition from scratch; regencies known to have been published
        before are marked changed too, so a regency left empty is published as empty."""
        self._groups[partition] = {}
        for state in states:
            self.add(partition, transition_deltas(None, state))
        for regency in known_regencies:
            self._groups[partition].setdefault(regency, {})
            self._dirty.add((partition, regency))

    def forget(self, partition: int) -> None:
        self._groups.pop(partition, None)
        self._dirty = {(p, r) for p, r in self._dirty if p != partition}

    def drain_changed(self) -> list[tuple[int, str, Villages]]:
        """(partition, regency, its villages' counters) for every group changed since the last
        call; a copy, so publishing may await while events keep counting."""
        changed = [(p, r, {v: dict(c) for v, c in self._groups.get(p, {}).get(r, {}).items()})
                   for p, r in sorted(self._dirty)]
        self._dirty.clear()
        return changed

    def villages(self, partition: int, regency: str) -> Villages:
        return {v: dict(c) for v, c in self._groups.get(partition, {}).get(regency, {}).items()}
