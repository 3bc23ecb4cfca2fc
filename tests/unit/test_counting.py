"""Counting rules of the coverage worker: transitions, not events, move the counters."""

from __future__ import annotations

import uuid

from services.coverage.counting import (
    CountedState,
    Facts,
    PartitionLedger,
    apply_event,
    counted_state,
    transition_deltas,
)
from shared.events import (
    MembershipStatusChanged,
    ParticipantChanged,
    ParticipantDeregistered,
    ParticipantRegistered,
    make_envelope,
)

PID = uuid.uuid4()
BINJAI = "12.75.01.1001"
MEDAN = "12.71.01.1001"


def registered(village=BINJAI, segment="BPU", sequence=1):
    payload = ParticipantRegistered(participant_id=PID, kpj="00000000018", region_code=village,
                                    segment=segment, monthly_income=1_000_000,
                                    programs=["JKK", "JKM"], registered_on="2026-11-25")
    envelope = make_envelope(payload, source="registration", subject=str(PID), sequence=sequence)
    return envelope, payload


def changed(village, sequence, segment="BPU"):
    payload = ParticipantChanged(participant_id=PID, kpj="00000000018", region_code=village,
                                 segment=segment, monthly_income=1_000_000,
                                 programs=["JKK", "JKM"], registered_on="2026-11-25",
                                 changed=["region_code"])
    envelope = make_envelope(payload, source="registration", subject=str(PID), sequence=sequence)
    return envelope, payload


def status(value, sequence, source="contributions"):
    payload = MembershipStatusChanged(participant_id=PID, status=value)
    return make_envelope(payload, source=source, subject=str(PID), sequence=sequence), payload


def fold(*events):
    facts, deltas = Facts(), []
    for envelope, payload in events:
        after = apply_event(facts, envelope, payload)
        if after is None:
            deltas.append({})
            continue
        deltas.append(transition_deltas(counted_state(facts), counted_state(after)))
        facts = after
    return facts, deltas


def test_a_new_registrant_counts_as_registered_and_inactive_in_its_village():
    _, [deltas] = fold(registered())
    assert deltas == {BINJAI: {"registered": 1, "inactive": 1, "BPU.registered": 1}}


def test_a_duplicate_event_changes_no_counter():
    event = registered()
    _, [first, again] = fold(event, event)
    assert first and again == {}


def test_a_replayed_older_event_changes_no_counter():
    _, deltas = fold(registered(), changed(MEDAN, 2), registered())
    assert deltas[2] == {}


def test_a_move_takes_the_worker_out_of_the_old_village_and_into_the_new():
    _, [_, move] = fold(registered(), changed(MEDAN, 2))
    assert move == {BINJAI: {"registered": -1, "inactive": -1, "BPU.registered": -1},
                    MEDAN: {"registered": 1, "inactive": 1, "BPU.registered": 1}}


def test_a_segment_change_moves_the_segment_counters_only():
    _, [_, move] = fold(registered(), changed(BINJAI, 2, segment="PU"))
    assert move == {BINJAI: {"BPU.registered": -1, "PU.registered": 1}}


def test_paying_makes_the_worker_active_and_lapsing_inactive_again():
    _, [_, paid, lapsed] = fold(registered(), status("active", 1), status("inactive", 2))
    assert paid[BINJAI] == {"inactive": -1, "active": 1, "BPU.active": 1}
    assert lapsed[BINJAI] == {"inactive": 1, "active": -1, "BPU.active": -1}


def test_a_terminated_membership_leaves_registered_and_counts_as_terminated():
    _, [_, _, ended] = fold(registered(), status("active", 1), status("terminated", 2,
                                                                       source="claims"))
    assert ended[BINJAI] == {"active": -1, "BPU.active": -1, "registered": -1,
                           "BPU.registered": -1, "terminated": 1}


def test_a_status_before_the_registration_counts_once_the_registration_arrives():
    _, [early, reg] = fold(status("active", 1), registered())
    assert early == {}
    assert reg[BINJAI] == {"registered": 1, "active": 1, "BPU.registered": 1, "BPU.active": 1}


def test_deregistration_terminates():
    payload = ParticipantDeregistered(participant_id=PID, reason="deregistered")
    envelope = make_envelope(payload, source="registration", subject=str(PID), sequence=2)
    facts, _ = fold(registered(), (envelope, payload))
    assert counted_state(facts) == CountedState(BINJAI, "BPU", "terminated")


def test_facts_survive_their_json_form():
    facts, _ = fold(registered(), status("active", 3))
    assert Facts.from_json(facts.to_json()) == facts


def test_the_ledger_groups_village_counters_by_regency():
    ledger = PartitionLedger()
    ledger.add(2, {BINJAI: {"registered": 1, "inactive": 1}, MEDAN: {"registered": 1}})
    ledger.add(2, {"12.75.01.1002": {"registered": 2}})
    assert ledger.drain_changed() == [
        (2, "12.71", {MEDAN: {"registered": 1}}),
        (2, "12.75", {BINJAI: {"registered": 1, "inactive": 1},
                      "12.75.01.1002": {"registered": 2}}),
    ]
    ledger.add(2, {MEDAN: {"registered": -1}})
    assert ledger.drain_changed() == [(2, "12.71", {})]  # a village left at zero is dropped
    assert ledger.drain_changed() == []


def test_the_ledger_rebuild_publishes_an_empty_group_for_regencies_left_empty():
    ledger = PartitionLedger()
    ledger.rebuild(3, [CountedState(MEDAN, "PU", "active")], known_regencies=["12.75"])
    changed = {(p, r): c for p, r, c in ledger.drain_changed()}
    assert changed[(3, "12.75")] == {}
    assert changed[(3, "12.71")] == {MEDAN: {"active": 1, "registered": 1, "PU.registered": 1,
                                             "PU.active": 1}}
    assert ledger.drain_changed() == []


def test_the_ledger_forgets_a_partition_another_worker_now_owns():
    ledger = PartitionLedger()
    ledger.add(1, {BINJAI: {"registered": 1}})
    ledger.forget(1)
    assert ledger.drain_changed() == [] and ledger.villages(1, "12.75") == {}


def test_the_fast_event_writer_makes_the_same_event_as_the_models():
    from shared.events import decode, envelope_bytes

    envelope, payload = registered()
    raw = envelope_bytes(ParticipantRegistered, payload.model_dump(mode="json"),
                         source="registration", subject=str(PID), sequence=1,
                         occurred_at=envelope.occurred_at)
    fast_envelope, fast_payload = decode(raw)
    assert fast_payload == payload
    assert fast_envelope.model_dump(exclude={"id"}) == envelope.model_dump(exclude={"id"})
