"""Claims in the coverage fold: each claim counted once in its worker's village, under its
programme, by its newest status, with the benefit of an approved one; replays change nothing."""

from __future__ import annotations

import uuid

from services.coverage.counting import ClaimFacts, SourceEvent, fold_batch
from shared.events import ClaimDecided, ClaimSubmitted, ParticipantRegistered, make_envelope
from tests.unit.test_counting import core

VILLAGE = "12.73.01.1001"


def is_village(code: str) -> bool:
    return code.count(".") == 3


def claim_event(claim_id, pid, kind=ClaimSubmitted, sequence=1, status="submitted",
                amount=42_000_000, region=VILLAGE) -> SourceEvent:
    payload = kind(claim_id=claim_id, participant_id=pid, program="JKM", status=status,
                   region_code=region, benefit_amount=amount)
    return SourceEvent(3, make_envelope(payload, source="claims", subject=str(claim_id),
                                        sequence=sequence), payload)


def test_a_submitted_then_approved_claim_counts_once_as_approved_with_its_benefit():
    cid, pid = uuid.uuid4(), uuid.uuid4()
    folded = fold_batch({}, [claim_event(cid, pid),
                             claim_event(cid, pid, ClaimDecided, 2, "approved")], is_village)
    assert core(folded.deltas) == {(3, VILLAGE): {"claims.JKM.approved": 1,
                                            "claims.JKM.benefit_paid": 42_000_000}}
    assert folded.facts == {} and folded.refused == []
    [(partition, facts)] = folded.claims.values()
    assert partition == 3 and facts.status == "approved" and facts.sequence == 2


def test_a_decision_in_a_later_batch_moves_the_claim_from_submitted():
    cid, pid = uuid.uuid4(), uuid.uuid4()
    first = fold_batch({}, [claim_event(cid, pid)], is_village)
    assert first.deltas == {(3, VILLAGE): {"claims.JKM.submitted": 1}}
    stored = {k: f for k, (_, f) in first.claims.items()}
    second = fold_batch({}, [claim_event(cid, pid, ClaimDecided, 2, "rejected", amount=None)],
                        is_village, stored)
    assert second.deltas == {(3, VILLAGE): {"claims.JKM.submitted": -1,
                                            "claims.JKM.rejected": 1}}


def test_a_replayed_or_older_claim_event_changes_nothing():
    cid, pid = uuid.uuid4(), uuid.uuid4()
    stored = {str(cid): ClaimFacts(2, VILLAGE, "JKM", "approved", 42_000_000)}
    for event in (claim_event(cid, pid), claim_event(cid, pid, ClaimDecided, 2, "approved")):
        folded = fold_batch({}, [event], is_village, stored)
        assert folded.deltas == {} and folded.claims == {}


def test_an_impossible_claim_event_is_refused_and_the_rest_counts():
    cid, pid = uuid.uuid4(), uuid.uuid4()
    registered = ParticipantRegistered(
        participant_id=pid, kpj="1", region_code=VILLAGE, segment="BPU",
        monthly_income=1_000_000, programs=["JKK", "JKM"], registered_on="2026-11-20")
    events = [claim_event(cid, pid, region="12.73"),
              SourceEvent(3, make_envelope(registered, source="registration", subject=str(pid),
                                           sequence=1), registered),
              claim_event(uuid.uuid4(), pid, amount=-5)]
    folded = fold_batch({}, events, is_village)
    assert [index for index, _ in folded.refused] == [0, 2]
    assert core(folded.deltas) == {(3, VILLAGE): {"inactive": 1, "registered": 1,
                                            "BPU.registered": 1}}
