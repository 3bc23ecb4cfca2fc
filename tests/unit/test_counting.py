"""Counting rules of the coverage worker: transitions, not events, move the counters."""

from __future__ import annotations

import uuid

from services.coverage.counting import (
    CountedState,
    Facts,
    SourceEvent,
    counted_state,
    fold_batch,
)
from shared.events import (
    MembershipStatusChanged,
    ParticipantChanged,
    ParticipantDeregistered,
    ParticipantRegistered,
    make_envelope,
)
from shared.regions import directory

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


IS_VILLAGE = directory().is_village
PARTITION = 4


def fold(*events):
    """Each event in a batch of its own, as the worker folds them: the facts after the last,
    and the counter deltas per village of each."""
    facts, deltas = Facts(), []
    for envelope, payload in events:
        folded = fold_batch({str(PID): facts}, [SourceEvent(PARTITION, envelope, payload)],
                            IS_VILLAGE)
        assert not folded.refused
        facts = folded.facts.get(str(PID), (PARTITION, facts))[1]
        deltas.append(core({village: c for (_, village), c in folded.deltas.items()}))
    return facts, deltas


def core(deltas):
    """The region counters of these deltas, without the dimension counters of issue 11 (their
    names hold a slash; tests/unit/test_counting_dimensions.py is about those)."""
    kept = {v: {n: x for n, x in c.items() if "/" not in n} for v, c in deltas.items()}
    return {v: c for v, c in kept.items() if c}


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
    assert counted_state(facts) == CountedState(BINJAI, "BPU", "terminated",
                                                channel="partner_api", registered_in="2026-11")


def test_facts_survive_their_json_form():
    facts, _ = fold(registered(), status("active", 3))
    assert Facts.from_json(facts.to_json()) == facts


def test_a_batch_moves_the_counters_as_its_events_one_by_one_would():
    events = [registered(), status("active", 1), changed(MEDAN, 2), status("inactive", 2)]
    _, one_by_one = fold(*events)
    batch = fold_batch({}, [SourceEvent(PARTITION, e, p) for e, p in events], IS_VILLAGE)
    summed: dict = {}
    for deltas in one_by_one:
        for village, counters in deltas.items():
            for name, value in counters.items():
                summed.setdefault(village, {}).setdefault(name, 0)
                summed[village][name] += value
    summed = {v: {n: x for n, x in c.items() if x} for v, c in summed.items()}
    assert core({v: c for (_, v), c in batch.deltas.items()}) == core(
        {v: c for v, c in summed.items() if c})
    assert core(batch.deltas) == {(PARTITION, MEDAN): {"registered": 1, "inactive": 1,
                                                 "BPU.registered": 1}}


def test_a_batch_replayed_onto_its_own_result_counts_nothing():
    events = [SourceEvent(PARTITION, *registered()), SourceEvent(PARTITION, *status("active", 1))]
    first = fold_batch({}, events, IS_VILLAGE)
    again = fold_batch({k: f for k, (_, f) in first.facts.items()}, events, IS_VILLAGE)
    assert again.deltas == {} and again.facts == {}


def test_an_event_that_cannot_be_counted_is_refused_alone():
    envelope, payload = registered(village="12.75.01.9999")  # no such village
    bad_subject = registered()[0].model_copy(update={"subject": "not-a-uuid"})
    events = [SourceEvent(PARTITION, envelope, payload),
              SourceEvent(PARTITION, bad_subject, registered()[1]),
              SourceEvent(PARTITION, *registered(sequence=2))]
    folded = fold_batch({}, events, IS_VILLAGE)
    assert [i for i, _ in folded.refused] == [0, 1]
    assert "village" in folded.refused[0][1] and "subject" in folded.refused[1][1]
    assert core(folded.deltas) == {(PARTITION, BINJAI): {"registered": 1, "inactive": 1,
                                                   "BPU.registered": 1}}


def test_the_fast_event_writer_makes_the_same_event_as_the_models():
    from shared.events import decode, envelope_bytes

    envelope, payload = registered()
    raw = envelope_bytes(ParticipantRegistered, payload.model_dump(mode="json"),
                         source="registration", subject=str(PID), sequence=1,
                         occurred_at=envelope.occurred_at)
    fast_envelope, fast_payload = decode(raw)
    assert fast_payload == payload
    assert fast_envelope.model_dump(exclude={"id"}) == envelope.model_dump(exclude={"id"})
