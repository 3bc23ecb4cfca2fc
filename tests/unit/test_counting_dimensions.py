"""Who pays and who is missing (issue 11): the dimension counters the coverage workers fold
beside the region counters, and how the API reads them (services/coverage/dimensions.py)."""

from __future__ import annotations

import uuid
from datetime import date

from services.coverage.counting import (
    Facts,
    SourceEvent,
    contribution,
    counted_state,
    fold_batch,
)
from services.coverage.dimensions import (
    agent_counts,
    agent_fee,
    agent_figures,
    channel_months,
    compliance,
    declared_for,
    employer_counts,
    months_back,
    programme_counts,
    programme_figures,
    to_be_dropped,
)
from shared.events import (
    ContributionPaid,
    EmployerRegistered,
    MembershipStatusChanged,
    ParticipantRegistered,
    ProgrammeCreated,
    ProgrammeEnrolmentChanged,
    make_envelope,
)
from shared.regions import directory

PID = uuid.uuid4()
EMPLOYER = str(uuid.uuid4())
PROGRAMME = uuid.uuid4()
VILLAGE = "12.72.01.1001"
IS_VILLAGE = directory().is_village


def registered(sequence=1, **fields):
    payload = ParticipantRegistered(**{
        "participant_id": PID, "kpj": "00000000018", "region_code": VILLAGE, "segment": "BPU",
        "monthly_income": 1_000_000, "programs": ["JKK", "JKM"],
        "registered_on": "2026-10-03", **fields})
    return make_envelope(payload, source="registration", subject=str(PID),
                         sequence=sequence), payload


def contributions_event(payload, sequence):
    return make_envelope(payload, source="contributions", subject=str(PID),
                         sequence=sequence), payload


def paid(sequence, months_paid, last="2026-12", agent=None, programme=None, amount=16_800):
    return contributions_event(ContributionPaid(
        participant_id=PID, first_period=last, last_period=last, paid_on="2026-12-01",
        amount=amount, by_program={"JKK": 10_000, "JKM": 6_800}, months_paid=months_paid,
        agent_id=agent, programme_id=programme,
        payer="government" if programme else "self",
        funding_code="SG" if programme else None), sequence)


def status(value, sequence):
    return contributions_event(MembershipStatusChanged(participant_id=PID, status=value),
                               sequence)


def enrolled(sequence, is_enrolled=True):
    return contributions_event(ProgrammeEnrolmentChanged(
        participant_id=PID, programme_id=PROGRAMME, first_period="2026-01",
        last_period="2026-12", enrolled=is_enrolled), sequence)


def counters_after(*events, batch=False):
    """The participant's village counters after the events (one batch each, or one batch)."""
    facts = Facts()
    groups = [events] if batch else [[e] for e in events]
    for group in groups:
        folded = fold_batch({str(PID): facts},
                            [SourceEvent(2, envelope, payload) for envelope, payload in group],
                            IS_VILLAGE)
        assert not folded.refused, folded.refused
        facts = folded.facts.get(str(PID), (2, facts))[1]
    state = counted_state(facts)
    return facts, (contribution(state) if state else {})


def test_a_worker_counts_for_its_employer_by_status():
    _, counters = counters_after(registered(segment="PU", employer_id=EMPLOYER),
                                 status("active", 1))
    assert counters[f"employer/{EMPLOYER}/registered"] == 1
    assert counters[f"employer/{EMPLOYER}/active"] == 1
    assert f"employer/{EMPLOYER}/inactive" not in counters


def test_registrations_count_per_channel_agent_and_month_and_stay_counted():
    events = [registered(channel="agent", agent_id="AG-001"), status("active", 1)]
    _, counters = counters_after(*events)
    assert counters["channel/agent/2026-10/registered"] == 1
    assert counters["channel/agent/2026-10/active"] == 1
    assert counters["agent/AG-001/2026-10/registered"] == 1
    _, counters = counters_after(*events, status("terminated", 2))
    assert counters["channel/agent/2026-10/registered"] == 1  # a registration of that month
    assert "channel/agent/2026-10/active" not in counters


def test_the_kpi_counts_an_active_worker_after_six_paid_months():
    _, five = counters_after(registered(), paid(1, 5), status("active", 2))
    _, six = counters_after(registered(), paid(1, 5), status("active", 2), paid(3, 6))
    assert "kpi_active" not in five and six["kpi_active"] == 1
    _, lapsed = counters_after(registered(), paid(1, 6), status("active", 2),
                               status("inactive", 3))
    assert "kpi_active" not in lapsed


def test_what_an_agent_collects_adds_up_once_whatever_is_replayed():
    events = [registered(), paid(1, 1, agent="AG-7"), paid(2, 2, agent="AG-7", amount=33_600)]
    _, counters = counters_after(*events)
    assert counters["agent/AG-7/2026-12/collected"] == 50_400
    _, again = counters_after(*events, *events)  # every event delivered twice
    assert again == counters
    _, batched = counters_after(*events, batch=True)
    assert batched == counters


def test_a_programme_counts_enrolled_active_paid_through_and_spent():
    _, counters = counters_after(registered(), enrolled(1),
                                 paid(2, 1, programme=PROGRAMME), status("active", 3))
    assert counters[f"programme/{PROGRAMME}/enrolled"] == 1
    assert counters[f"programme/{PROGRAMME}/active"] == 1
    assert counters[f"programme/{PROGRAMME}/paid_through/2026-12"] == 1
    assert counters[f"programme/{PROGRAMME}/spent"] == 16_800
    _, withdrawn = counters_after(registered(), enrolled(1),
                                  paid(2, 1, programme=PROGRAMME), enrolled(3, False))
    assert f"programme/{PROGRAMME}/enrolled" not in withdrawn
    assert withdrawn[f"programme/{PROGRAMME}/spent"] == 16_800  # money spent stays spent


def test_a_bad_agent_id_is_refused_alone():
    envelope, payload = registered(channel="agent", agent_id="AG/../x")
    folded = fold_batch({}, [SourceEvent(1, envelope, payload)], IS_VILLAGE)
    assert [i for i, _ in folded.refused] == [0]
    assert folded.deltas == {}


def test_organisations_are_kept_newest_first_and_move_no_counter():
    employer_id = uuid.uuid4()

    def employer(name, sequence):
        payload = EmployerRegistered(employer_id=employer_id, name=name, kind="opd",
                                     region_code="12.72", declared_workers=[])
        return SourceEvent(5, make_envelope(payload, source="registration",
                                            subject=str(employer_id), sequence=sequence), payload)

    programme = ProgrammeCreated(
        programme_id=PROGRAMME, name="APBD Tanjungbalai 2026", funder_region="12.72",
        year=2026, quota=690, budget_rupiah=100_000_000, funding_code="SG",
        programs=["JKK", "JKM"], first_period="2026-01", last_period="2026-12")
    folded = fold_batch({}, [employer("Dinas A", 2), employer("Dinas old", 1),
                             SourceEvent(6, make_envelope(programme, source="contributions",
                                                          subject=str(PROGRAMME), sequence=1),
                                         programme)], IS_VILLAGE)
    assert not folded.refused and folded.deltas == {} and folded.facts == {}
    assert folded.organisations[str(employer_id)][1].data["name"] == "Dinas A"
    assert folded.organisations[str(PROGRAMME)][1].data["quota"] == 690


def test_facts_with_every_dimension_survive_their_json_form():
    facts, _ = counters_after(registered(segment="PU", employer_id=EMPLOYER, channel="agent",
                                         agent_id="AG-1"),
                              enrolled(1), paid(2, 3, agent="AG-1", programme=PROGRAMME))
    assert Facts.from_json(facts.to_json()) == facts


# --- reading them -----------------------------------------------------------------------------


def test_employers_and_compliance_are_read_from_the_counters():
    counts = employer_counts({"employer/e1/active": 3, "employer/e1/registered": 4,
                              "employer/e1/inactive": 1, "employer/e2/terminated": 2,
                              "active": 99})
    assert counts["e1"] == {"registered": 4, "active": 3, "inactive": 1, "terminated": 0}
    assert counts["e2"]["terminated"] == 2
    assert compliance(3, 4) == 0.75 and compliance(3, 0) is None and compliance(0, None) is None
    declared = [{"year": 2024, "count": 10}, {"year": 2026, "count": 12}]
    assert declared_for(declared, 2025) == {"year": 2024, "count": 10}
    assert declared_for(declared, 2023) is None


def test_a_programme_reads_paid_this_month_and_budget_left():
    counts = programme_counts({"programme/p/enrolled": 690, "programme/p/active": 345,
                               "programme/p/paid_through/2026-11": 10,
                               "programme/p/paid_through/2026-12": 300,
                               "programme/p/paid_through/2027-01": 45,
                               "programme/p/spent": 5_796_000})
    figures = programme_figures({"programme_id": "p", "quota": 690, "budget_rupiah": 6_000_000},
                                counts["p"], date(2026, 12, 2))
    assert figures["paid_this_month"] == 345 and figures["not_paid_this_month"] == 345
    assert figures["budget_left"] == 204_000 and figures["places_left"] == 0


def test_channels_and_agents_per_month():
    counters = {"channel/agent/2026-11/registered": 4, "channel/agent/2026-11/active": 2,
                "channel/pemda/2025-01/registered": 9, "agent/A1/2026-11/registered": 4,
                "agent/A1/2026-12/collected": 100_000, "agent/A2/2026-07/registered": 1}
    assert channel_months(counters, "2026-01", "2026-12") == {
        "agent": {"2026-11": {"registered": 4, "active": 2}}}
    agents = agent_counts(counters)
    figures = agent_figures("A1", agents["A1"], "2026-01", "2026-12", date(2026, 12, 2))
    assert figures["registered"] == 4 and figures["collected"] == 100_000
    assert figures["fee"] == 7_500 and not figures["to_be_dropped"]
    assert to_be_dropped(agents["A2"].last_registration(), date(2026, 12, 2))
    assert not to_be_dropped("2026-09", date(2026, 12, 2))
    assert agent_fee(16_800) == 1_260 and months_back("2026-02", 3) == "2025-11"


def test_the_sources_give_the_facts_the_events_give():
    """reconcile's truth (the source databases' rows) counts what the folded events count."""
    from services.coverage.reconcile import (
        MembershipRow,
        ParticipantRow,
        fact_key_of,
        facts_from_sources,
        rules_for,
    )

    folded, counters = counters_after(
        registered(segment="PU", employer_id=EMPLOYER, channel="agent", agent_id="AG-1"),
        enrolled(1), paid(2, 6, agent="AG-1", programme=PROGRAMME), status("active", 3))
    sourced = facts_from_sources(
        ParticipantRow(str(PID), VILLAGE, "PU", "registered", 1, EMPLOYER, "agent", "AG-1",
                       "2026-10-03"),
        [MembershipRow("contributions", "active", 3, months_paid=6, paid_through="2026-12",
                       programmes=(str(PROGRAMME),), collected=(("AG-1|2026-12", 16_800),),
                       funded=((str(PROGRAMME), 16_800),))])
    assert sourced == folded
    assert counters["kpi_active"] == 1
    rules = rules_for([fact_key_of(sourced.to_json())])
    assert {name: value for _, name, value in rules} == counters
