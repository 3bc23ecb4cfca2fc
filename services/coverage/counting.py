"""Counting rules, pure: what a participant's events say, and what that adds to each region.

The worker keeps one `Facts` per participant: the newest fact each source told (with that
source's sequence number). A participant's counted state is a function of its facts, and an
event only ever moves the counters by the difference between the state before and after it.
A duplicate or replayed event (sequence not newer than the last one seen from its source)
changes no fact, so it changes no counter: counting is exactly once without transactions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from shared.events import (
    Envelope,
    MembershipStatusChanged,
    ParticipantDeregistered,
    ParticipantState,
    Payload,
)

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


def transition_deltas(
    before: CountedState | None, after: CountedState | None, lineage: Callable[[str], list[str]]
) -> dict[str, Counters]:
    """Counter changes per region (the village and all its ancestors) for one state change."""
    deltas: dict[str, Counters] = defaultdict(dict)
    for state, sign in ((before, -1), (after, +1)):
        if state is None:
            continue
        for region in lineage(state.village):
            region_deltas = deltas[region]
            for name, value in contribution(state).items():
                region_deltas[name] = region_deltas.get(name, 0) + sign * value
    return {r: {k: v for k, v in c.items() if v} for r, c in deltas.items()
            if any(c.values())}


class PartitionLedger:
    """Absolute counters per (source partition, region), and which ones changed since the last
    publication. In memory: rebuilt from the facts table whenever partitions are recovered."""

    def __init__(self) -> None:
        self._counters: dict[int, dict[str, Counters]] = defaultdict(dict)
        self._dirty: set[tuple[int, str]] = set()

    def add(self, partition: int, deltas: dict[str, Counters]) -> None:
        regions = self._counters[partition]
        for region, changes in deltas.items():
            counters = regions.setdefault(region, {})
            for name, value in changes.items():
                counters[name] = counters.get(name, 0) + value
            self._dirty.add((partition, region))

    def rebuild(self, partition: int, states: Iterable[CountedState],
                lineage: Callable[[str], list[str]], known_regions: Iterable[str] = ()) -> None:
        """Counters of one partition from scratch; regions known to have been published before
        are marked changed too, so a region that dropped to zero is published as zero."""
        self._counters[partition] = {}
        for state in states:
            self.add(partition, transition_deltas(None, state, lineage))
        for region in known_regions:
            self._counters[partition].setdefault(region, {})
            self._dirty.add((partition, region))

    def forget(self, partition: int) -> None:
        self._counters.pop(partition, None)
        self._dirty = {(p, r) for p, r in self._dirty if p != partition}

    def drain_changed(self) -> list[tuple[int, str, Counters]]:
        changed = [(p, r, dict(self._counters.get(p, {}).get(r, {}))) for p, r in self._dirty]
        self._dirty.clear()
        return changed

    def counters(self, partition: int, region: str) -> Counters:
        return {k: v for k, v in self._counters.get(partition, {}).get(region, {}).items() if v}
