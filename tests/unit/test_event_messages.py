"""Kafka messages carry one event or a batch of them; the relay cuts batches per partition."""

from __future__ import annotations

import uuid

import orjson

from shared import outbox
from shared.events import (
    Envelope,
    MembershipStatusChanged,
    UnknownEventType,
    decode_message,
    events_in,
    make_envelope,
)


def status_event(sequence: int, subject: uuid.UUID | None = None) -> bytes:
    pid = subject or uuid.uuid4()
    payload = MembershipStatusChanged(participant_id=pid, status="active")
    return make_envelope(payload, source="contributions", subject=str(pid),
                         sequence=sequence).to_bytes()


def test_a_message_of_one_event_is_that_event():
    raw = status_event(1)
    [(part, (envelope, payload))] = decode_message(raw)
    assert part == raw and envelope.sequence == 1 and payload.status == "active"


def test_a_batch_is_its_events_in_order():
    pid = uuid.uuid4()
    raw = b"[" + b",".join(status_event(s, pid) for s in (1, 2, 3)) + b"]"
    decoded = decode_message(raw)
    assert [result[0].sequence for _, result in decoded] == [1, 2, 3]
    # Well formed: validated at once, the bytes stand in the envelope (to_bytes()).
    assert [part for part, _ in decoded] == [b"", b"", b""]
    assert [orjson.loads(result[0].to_bytes()) for _, result in decoded] == [
        orjson.loads(Envelope.model_validate(e).to_bytes()) for e in orjson.loads(raw)]


def test_in_a_batch_with_a_malformed_event_each_event_comes_with_its_bytes():
    raw = b"[" + status_event(1) + b',{"type": 1}]'
    decoded = decode_message(raw)
    assert orjson.loads(decoded[0][0]) == orjson.loads(raw)[0]
    assert orjson.loads(decoded[1][0]) == {"type": 1}


def test_a_malformed_event_in_a_batch_is_refused_alone():
    raw = b"[" + status_event(1) + b',{"type": "membership.status_changed"},' + \
        status_event(2) + b"]"
    results = [result for _, result in decode_message(raw)]
    assert isinstance(results[1], ValueError) and not isinstance(results[1], UnknownEventType)
    assert results[0][0].sequence == 1 and results[2][0].sequence == 2


def test_an_unknown_type_in_a_batch_is_skipped_not_refused():
    unknown = orjson.dumps({**orjson.loads(status_event(1)), "type": "claim.filed"})
    [(_, result)] = decode_message(b"[" + unknown + b"]")
    assert isinstance(result, UnknownEventType)


def test_a_batch_that_is_not_json_is_one_malformed_event():
    [(part, result)] = decode_message(b"[{not json")
    assert part == b"[{not json" and isinstance(result, ValueError)


def test_an_empty_message_is_one_malformed_event():
    assert events_in(None) == [b""]
    [(_, result)] = decode_message(None)
    assert isinstance(result, ValueError)


def test_the_relay_cuts_batches_at_200_events():
    events = [(b"k", b"x" * 100) for _ in range(450)]
    assert [len(b) for b in outbox.batches(events)] == [200, 200, 50]


def test_the_relay_cuts_batches_at_about_200_kib():
    events = [(b"k", b"x" * 60_000) for _ in range(7)]
    assert [len(b) for b in outbox.batches(events)] == [3, 3, 1]


def test_an_event_larger_than_a_batch_still_travels_alone():
    events = [(b"k", b"x" * 300_000), (b"k", b"y")]
    assert [len(b) for b in outbox.batches(events)] == [1, 1]


def test_the_bytes_of_a_well_formed_batch_event_are_cut_out_of_its_message_when_needed():
    from shared.events import event_bytes_in

    events = [status_event(s, uuid.uuid4()) for s in (1, 2)]
    raw = b"[" + b",".join(events) + b"]"
    assert [part for part, _ in decode_message(raw)] == [b"", b""]
    assert orjson.loads(event_bytes_in(raw, 1)) == orjson.loads(events[1])
    assert event_bytes_in(events[0], 0) == events[0]  # a message of one event is that event
