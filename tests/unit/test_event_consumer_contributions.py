"""The contributions worker refuses, before its database sees them, registration events it can
never store: each becomes a dead letter with a reason that quotes no input value."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import pytest

from services.contributions.handlers import unusable_participant_event
from shared.events import ParticipantDeregistered, ParticipantRegistered, decode

TODAY = date(2026, 11, 20)


def envelope_bytes(payload_type, data: dict, *, source: str, subject: str,
                   sequence: int) -> bytes:
    """As shared.events.envelope_bytes, with the standard library's JSON: it writes integers of
    any size, as a misbehaving producer may."""
    return json.dumps({"id": str(uuid.uuid4()), "type": payload_type.TYPE, "version": 1,
                       "source": source, "occurred_at": datetime.now(UTC).isoformat(),
                       "subject": subject, "sequence": sequence, "data": data}).encode()


def registered(sequence: int = 1, source: str = "registration", **changes):
    pid = str(uuid.uuid4())
    data = {"participant_id": pid, "kpj": "99000000001", "region_code": "12.75.01.1002",
            "segment": "BPU", "employer_id": None, "monthly_income": 1_000_000,
            "programs": ["JKK", "JKM"], "registered_on": "2026-11-20", **changes}
    return decode(envelope_bytes(ParticipantRegistered, data, source=source, subject=pid,
                                 sequence=sequence))


def test_a_sound_registration_is_applied():
    assert unusable_participant_event(*registered(), TODAY) is None


@pytest.mark.parametrize(("changes", "sequence", "words"), [
    ({"registered_on": "2026-13-45"}, 1, "registered_on that is not an ISO date"),
    ({"registered_on": "20 November 2026"}, 1, "registered_on that is not an ISO date"),
    ({"registered_on": "9999-12-31"}, 1, "registered_on too near the calendar's ends"),
    ({"monthly_income": 10**30}, 1, "monthly_income below 0 or beyond 2^63-1"),
    ({"monthly_income": -5}, 1, "monthly_income below 0"),
    ({}, 2**40, "sequence beyond 2^31-1"),
    ({"region_code": "12.75\x00.01"}, 1, "region_code with a NUL character"),
], ids=["month 13", "not ISO", "year 9999", "income 10^30", "income negative",
        "sequence 2^40", "NUL byte"])
def test_a_registration_the_members_table_or_the_calendar_cannot_take_is_refused(
        changes, sequence, words):
    envelope, payload = registered(sequence, **changes)
    problem = unusable_participant_event(envelope, payload, TODAY)
    assert problem is not None and words in problem
    for value in changes.values():
        assert str(value) not in problem


def test_text_postgresql_cannot_hold_is_refused_even_when_no_json_carries_it():
    # A lone surrogate never decodes from JSON (a malformed event); another producer of
    # payloads in-process could still build one.
    envelope, payload = registered()
    odd = payload.model_copy(update={"employer_id": "E\ud800"})
    assert "employer_id" in (unusable_participant_event(envelope, odd, TODAY) or "")


def test_a_deregistration_is_refused_only_for_a_sequence_the_table_cannot_hold():
    pid = str(uuid.uuid4())

    def ended(sequence: int):
        return decode(envelope_bytes(ParticipantDeregistered,
                                     {"participant_id": pid, "reason": "died"},
                                     source="registration", subject=pid, sequence=sequence))

    assert unusable_participant_event(*ended(2), TODAY) is None
    assert "sequence" in (unusable_participant_event(*ended(2**31), TODAY) or "")


def test_events_of_other_sources_are_not_applied_so_not_refused():
    assert unusable_participant_event(*registered(2**40, source="elsewhere"), TODAY) is None
