"""The funded programmes' use cases: create or change a programme, enrol workers, withdraw
one. Over a `ProgrammesUnit` (one transaction); the rules are programmes.py, the SQL store.py.

- Creating stores the programme and queues `programme.created` (topic organisations, subject
  the programme, sequence 1) in the same transaction; a change (name, quota, budget, never
  below what is enrolled or spent) queues `programme.changed` with the next sequence.
- Enrolling locks the workers (their event sequence moves), then the programme: one enrolment
  at a time per programme, so its quota holds under concurrent requests. Each worker is
  enrolled or refused on its own; the same worker again is the enrolment made before (no new
  event). An enrolment queues `programme.enrolment_changed` (topic memberships, subject the
  worker) with the worker's next sequence, the one its payments and status changes share.
- Withdrawing ends a worker's enrolment and queues the event with `enrolled` false.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Protocol

from services.contributions.handlers import SOURCE, MemberState, QueuedEvent
from services.contributions.programmes import (
    Enrolment,
    Programme,
    Refusal,
    Worker,
    change_refusals,
    enrolment_months,
    enrolment_refusal,
    programme_errors,
    programme_period,
)
from services.contributions.schemas import ProgrammeChangeIn, ProgrammeIn
from shared.events import ProgrammeChanged, ProgrammeCreated, ProgrammeState, envelope_bytes
from shared.field_errors import FieldError


class ProgrammesUnit(Protocol):
    """One transaction of the contributions service, as the programmes' use cases need it."""

    async def lock_members(self, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, MemberState]: ...

    async def save(self, states: Sequence[MemberState]) -> None: ...

    async def add_programme(self, programme: Programme, event: QueuedEvent, *,
                            created_by: str) -> None:
        """Store a new programme and queue its event (topic organisations)."""

    async def lock_programme(self, programme_id: uuid.UUID) -> Programme | None:
        """The programme, locked for the rest of the transaction (after the members)."""

    async def programme_spent(self, programme_id: uuid.UUID) -> int:
        """What the payments naming the programme took so far (rupiah)."""

    async def change_programme(self, programme: Programme) -> int:
        """Write a programme's new name, quota and budget; its next event sequence."""

    async def queue_programme_event(self, event: QueuedEvent) -> None:
        """Queue a programme's event (topic organisations)."""

    async def enrolled_count(self, programme_id: uuid.UUID) -> int:
        """How many workers the programme has enrolled now (withdrawn ones not counted)."""

    async def enrolments_of(self, participant_ids: Sequence[uuid.UUID]
                            ) -> dict[uuid.UUID, list[Enrolment]]: ...

    async def add_enrolments(self, enrolments: Sequence[Enrolment], *, on: date,
                             by: str) -> None:
        """Record enrolments (one withdrawn before comes back with these months)."""

    async def withdraw_enrolment(self, enrolment: Enrolment, *, on: date) -> None: ...


@dataclass(frozen=True)
class EnrolmentOutcome:
    """One worker's result: enrolled (now, or before: `created` false) or refused."""

    enrolment: Enrolment | None
    created: bool
    errors: list[dict[str, str]]
    status_code: int  # 201 enrolled now, 200 enrolled before, or the refusal's 4xx

    def public(self) -> dict[str, Any]:
        if self.enrolment is None:
            return {"errors": self.errors}
        return enrolment_public(self.enrolment) | {"created": self.created}


def enrolment_public(enrolment: Enrolment, *, enrolled: bool = True) -> dict[str, Any]:
    return {"programme_id": str(enrolment.programme_id),
            "participant_id": str(enrolment.participant_id),
            "first_period": str(enrolment.first_period),
            "last_period": str(enrolment.last_period), "enrolled": enrolled}


def programme_public(programme: Programme) -> dict[str, Any]:
    """A programme as its event and its answers state it."""
    return {"programme_id": str(programme.programme_id), "name": programme.name,
            "funder_region": programme.funder_region, "year": programme.year,
            "quota": programme.quota, "budget_rupiah": programme.budget_rupiah,
            "funding_code": programme.funding_code, "programs": list(programme.programs),
            "first_period": str(programme.first_period),
            "last_period": str(programme.last_period), "months": programme.months}


# --- creating ---------------------------------------------------------------------------------


def new_programme(data: ProgrammeIn, funder_level: str | None
                  ) -> tuple[Programme | None, list[FieldError]]:
    """The programme a request describes, or what is wrong with it. `funder_level`: the level
    of its funder_region in the region directory (None: no such region)."""
    period, errors = programme_period(data.year, data.months, data.first_period)
    errors = [*programme_errors(funder_level, data.programs), *errors]
    if errors or period is None:
        return None, errors
    return Programme(uuid.uuid4(), data.name, data.funder_region, data.year, data.quota,
                     data.budget_rupiah, data.funding_code, tuple(data.programs), *period), []


def programme_event(kind: type[ProgrammeState], programme: Programme,
                    sequence: int) -> QueuedEvent:
    subject = str(programme.programme_id)
    data = programme_public(programme)
    del data["months"]
    return (subject, kind.TYPE, envelope_bytes(kind, data, source=SOURCE, subject=subject,
                                               sequence=sequence))


async def create_programme(unit: ProgrammesUnit, programme: Programme, *,
                           created_by: str) -> None:
    await unit.add_programme(programme, programme_event(ProgrammeCreated, programme, 1),
                             created_by=created_by)


async def change_programme(unit: ProgrammesUnit, programme_id: uuid.UUID,
                           change: ProgrammeChangeIn) -> Programme | list[Refusal] | None:
    """Change a programme's name, quota or budget and queue `programme.changed` with its next
    sequence; the refusals when the quota or budget would fall below what is enrolled or spent;
    None when no programme has this id. A change that changes nothing queues nothing."""
    programme = await unit.lock_programme(programme_id)
    if programme is None:
        return None
    changed = replace(programme, name=change.name if change.name is not None else programme.name,
                      quota=change.quota if change.quota is not None else programme.quota,
                      budget_rupiah=(change.budget_rupiah if change.budget_rupiah is not None
                                     else programme.budget_rupiah))
    if changed == programme:
        return programme
    refusals = change_refusals(changed, quota=changed.quota,
                               budget_rupiah=changed.budget_rupiah,
                               enrolled=await unit.enrolled_count(programme_id),
                               spent=await unit.programme_spent(programme_id))
    if refusals:
        return refusals
    sequence = await unit.change_programme(changed)
    await unit.queue_programme_event(programme_event(ProgrammeChanged, changed, sequence))
    return changed


# --- enrolling --------------------------------------------------------------------------------


async def enrol(unit: ProgrammesUnit, programme_id: uuid.UUID,
                participant_ids: Sequence[uuid.UUID], *, today: date,
                by: str) -> list[EnrolmentOutcome] | None:
    """Enrol workers in order, each on its own. None when no programme has this id."""
    wanted = sorted(set(participant_ids))
    states = await unit.lock_members(wanted)  # members first, then the programme: one order
    programme = await unit.lock_programme(programme_id)
    if programme is None:
        return None
    current = await unit.enrolments_of(wanted)
    enrolled = await unit.enrolled_count(programme_id)
    outcomes: list[EnrolmentOutcome] = []
    new: list[Enrolment] = []
    for pid in participant_ids:
        state = states.get(pid)
        if state is None:
            outcomes.append(EnrolmentOutcome(None, False, [{
                "field": "participant_id", "message": "no participant has this id"}], 422))
            continue
        mine = current.setdefault(pid, [])
        before = next((e for e in mine if e.programme_id == programme_id), None)
        if before is not None:
            outcomes.append(EnrolmentOutcome(before, False, [], 200))
            continue
        worker = Worker(pid, state.member.segment, state.region_code,
                        terminated=state.live_status(today).status == "terminated")
        refusal = enrolment_refusal(worker, programme, today, mine, enrolled)
        months = enrolment_months(programme, today)
        if refusal is not None or months is None:
            errors = [refusal.error.as_dict()] if refusal else []
            outcomes.append(EnrolmentOutcome(None, False, errors,
                                             refusal.status if refusal else 422))
            continue
        enrolment = Enrolment(programme_id, pid, *months)
        mine.append(enrolment)
        new.append(enrolment)
        enrolled += 1
        state.record_enrolment(enrolment, enrolled=True)
        outcomes.append(EnrolmentOutcome(enrolment, True, [], 201))
    if new:
        await unit.add_enrolments(new, on=today, by=by)
    await unit.save(list(states.values()))
    return outcomes


async def withdraw(unit: ProgrammesUnit, programme_id: uuid.UUID, participant_id: uuid.UUID,
                   *, today: date) -> Enrolment | None:
    """End a worker's enrolment; None when it is not enrolled in this programme."""
    states = await unit.lock_members([participant_id])
    state = states.get(participant_id)
    if state is None:
        return None
    current = await unit.enrolments_of([participant_id])
    enrolment = next((e for e in current.get(participant_id, ())
                      if e.programme_id == programme_id), None)
    if enrolment is None:
        return None
    await unit.withdraw_enrolment(enrolment, on=today)
    state.record_enrolment(enrolment, enrolled=False)
    await unit.save([state])
    return enrolment
