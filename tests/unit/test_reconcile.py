"""Reconciliation, pure parts: the truth from the source rows, added up to every level, and the
drift between it and the live counters."""

from __future__ import annotations

import argparse
import json
import uuid

import pytest

from services.coverage.counting import Facts, contribution, counted_state
from services.coverage.reconcile import (
    Drift,
    InternalDrift,
    MembershipRow,
    ParticipantRow,
    Result,
    StateRules,
    Tally,
    by_region,
    compare,
    drift_between,
    fact_key_of,
    facts_from_sources,
    partition_of,
    render,
    rules_for,
    source_urls,
)

BINJAI_1 = "12.75.01.1001"
BINJAI_2 = "12.75.02.1001"
MEDAN = "12.71.01.1001"
BINJAI_LINE = [BINJAI_1, "12.75.01", "12.75", "12", "ID"]


def participant(village=BINJAI_1, segment="BPU", status="registered", version=1):
    return ParticipantRow(str(uuid.uuid4()), village, segment, status, version)


def paid(status="active", sequence=1):
    return MembershipRow("contributions", status, sequence)


def tally(*facts: Facts) -> Tally:
    counted = Tally()
    for f in facts:
        counted.add(f)
    return counted


def test_a_registrant_without_a_published_status_is_counted_inactive():
    facts = facts_from_sources(participant(version=3))
    assert facts.sequence_of("registration") == 3
    assert facts.sequence_of("contributions") == 0
    assert counted_state(facts).status == "inactive"


def test_the_facts_carry_each_sources_sequence_so_later_events_apply_on_top():
    facts = facts_from_sources(participant(version=2), [paid("active", 7)])
    assert facts.to_json() == {"seq": {"registration": 2, "contributions": 7},
                               "village": BINJAI_1, "segment": "BPU", "dereg": False,
                               "status": {"contributions": "active"}}


def test_a_deregistered_participant_is_counted_terminated_whatever_contributions_says():
    facts = facts_from_sources(participant(status="terminated", version=2), [paid("active")])
    assert counted_state(facts).status == "terminated"


def test_the_truth_counts_each_participant_by_the_counting_rules():
    counted = tally(facts_from_sources(participant(), [paid("active")]),
                    facts_from_sources(participant()),
                    facts_from_sources(participant(segment="PU"), [paid("inactive", 2)]),
                    facts_from_sources(participant(village=MEDAN, status="terminated")))
    assert counted.participants == 4
    assert counted.villages() == {
        BINJAI_1: {"registered": 3, "active": 1, "inactive": 2, "BPU.registered": 2,
                   "BPU.active": 1, "PU.registered": 1},
        MEDAN: {"terminated": 1},
    }


def test_villages_add_up_to_district_regency_province_and_nation():
    regions = by_region({BINJAI_1: {"active": 2}, BINJAI_2: {"active": 3, "inactive": 1},
                         MEDAN: {"active": 5}})
    assert regions[BINJAI_1] == {"active": 2}
    assert regions["12.75.01"] == {"active": 2}
    assert regions["12.75"] == {"active": 5, "inactive": 1}
    assert regions["12.71"] == {"active": 5}
    assert regions["12"] == regions["ID"] == {"active": 10, "inactive": 1}


def test_a_village_the_directory_does_not_know_still_adds_up_by_its_code():
    regions = by_region({"12.75.01.9999": {"active": 1}})
    assert regions["12.75.01"] == regions["12.75"] == regions["ID"] == {"active": 1}


def test_no_drift_when_live_equals_truth():
    counted = tally(facts_from_sources(participant(), [paid("active")]),
                    facts_from_sources(participant(village=MEDAN)))
    result = compare(counted.villages(), counted)
    assert result.drift == []
    assert result.ok
    assert result.regions_compared == 8  # 2 villages, 2 districts, 2 regencies, 12, ID
    assert result.summary().startswith("OK: 2 participants, 8 regions compared, 0 with drift")


def test_one_wrong_village_counter_drifts_at_every_level_above_it():
    counted = tally(*(facts_from_sources(participant(), [paid("active")]) for _ in range(3)))
    live = counted.villages()
    live[BINJAI_1] = {**live[BINJAI_1], "active": 8}
    result = compare(live, counted)
    assert [(d.region, d.level, d.counter, d.live, d.truth, d.drift) for d in result.drift] == [
        ("ID", "national", "active", 8, 3, 5),
        ("12", "province", "active", 8, 3, 5),
        ("12.75", "regency", "active", 8, 3, 5),
        ("12.75.01", "district", "active", 8, 3, 5),
        (BINJAI_1, "village", "active", 8, 3, 5),
    ]
    assert not result.ok
    assert (result.regions_with_drift, result.national_drift) == (5, 5)


def test_a_counter_missing_on_one_side_counts_as_zero():
    drift = drift_between({"ID": {"active": 1}}, {"ID": {"inactive": 1}})
    assert [(d.counter, d.live, d.truth) for d in drift] == [("active", 1, 0),
                                                              ("inactive", 0, 1)]


def test_counters_that_fell_to_zero_are_no_drift():
    assert drift_between({BINJAI_1: {"active": 0}}, {}) == []
    assert compare({BINJAI_1: {"active": 0}}, Tally()).ok


def test_national_drift_sums_the_absolute_drift_of_every_counter():
    result = Result(0, 1, [Drift("ID", "national", "active", 3, 5),
                           Drift("ID", "national", "inactive", 7, 5),
                           Drift("12", "province", "active", 3, 5)])
    assert result.national_drift == 4
    assert result.regions_with_drift == 2


def test_an_internal_inconsistency_is_not_ok_even_without_drift():
    result = Result(1, 5, [], [InternalDrift(3, BINJAI_1, "active", 2, 1)], internal_total=1)
    assert not result.ok
    assert "1 village counters do not follow from the facts" in result.summary()
    assert "internal" in render(result, 10)
    assert result.to_json()["internal"] == [{"partition": 3, "village": BINJAI_1,
                                             "counter": "active", "counters": 2, "facts": 1}]


@pytest.mark.parametrize("facts", [
    facts_from_sources(participant(), [paid("active")]),
    facts_from_sources(participant(segment="PMI"), [paid("inactive")]),
    facts_from_sources(participant(status="terminated")),
    facts_from_sources(participant(segment="JAKON"), [paid("terminated")]),
    Facts(sequences=(("contributions", 1),), statuses=(("contributions", "active"),)),
])
def test_the_rules_handed_to_the_database_are_the_counting_rules(facts):
    data = json.loads(json.dumps(facts.to_json()))  # as stored in participant_facts
    state = counted_state(facts)
    expected = contribution(state) if state else {}
    assert {name: value for _, name, value in rules_for([fact_key_of(data)])} == expected


def test_participants_are_placed_in_the_partition_their_events_travel_in():
    from aiokafka.partitioner import DefaultPartitioner

    pid = str(uuid.uuid4())
    assert partition_of(pid) == DefaultPartitioner()(pid.encode(), list(range(12)),
                                                     list(range(12)))
    assert all(0 <= partition_of(str(uuid.uuid4())) < 12 for _ in range(100))


def test_database_urls_default_to_the_local_stacks(tmp_path):
    (tmp_path / "stack.json").write_text(json.dumps({"databases": {
        "ucj_registration": "postgresql://r", "ucj_contributions": "postgresql://c",
        "ucj_claims": "postgresql://x", "ucj_coverage": "postgresql://v"}}))
    args = argparse.Namespace(registration_db=None, contributions_db="postgresql://other",
                              coverage_db=None)
    urls = source_urls(args, tmp_path)
    assert (urls.registration, urls.contributions, urls.coverage) == (
        "postgresql://r", "postgresql://other", "postgresql://v")
    with pytest.raises(ValueError, match="registration"):
        source_urls(args, tmp_path / "nowhere")


def test_one_rule_per_segment_and_status_whatever_the_village():
    rules = StateRules()
    binjai = counted_state(facts_from_sources(participant(), [paid("active")]))
    medan = counted_state(facts_from_sources(participant(village=MEDAN), [paid("active")]))
    assert contribution(binjai) == contribution(medan)
    assert rules.id_of(binjai) == rules.id_of(medan) == 0
    assert rules.id_of(counted_state(facts_from_sources(participant()))) == 1
    assert rules.id_of(None) is None
    ids, names, values = rules.arrays()
    assert sorted(zip(ids, names, values, strict=True)) == sorted(
        [(0, name, value) for name, value in contribution(binjai).items()]
        + [(1, name, value) for name, value in contribution(
            counted_state(facts_from_sources(participant()))).items()])
