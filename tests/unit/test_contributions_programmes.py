"""Funded programmes: the pure rules (services/contributions/programmes.py) and the use cases
over the in-memory unit (programme_handlers.py, and payments naming a programme in
handlers.py). The same flows on a real database: tests/integration/test_programmes_api.py.

The programme: Kota Binjai (12.75) funds JKK and JKM of BPU workers for 2026 (SG, the city
budget); today is 20 November 2026, so an enrolment covers November and December.
"""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from services.contributions import handlers, programme_handlers
from services.contributions.programmes import (
    CONFLICT,
    INVALID,
    Enrolment,
    Programme,
    Worker,
    budget_refusal,
    change_refusals,
    enrolment_months,
    enrolment_refusal,
    months_paid,
    overlaps,
    paid_for_active,
    programme_errors,
    programme_payment_refusals,
    programme_period,
    within_region,
)
from services.contributions.schemas import ProgrammeChangeIn, ProgrammeIn
from shared.events import (
    ContributionPaid,
    ProgrammeChanged,
    ProgrammeCreated,
    ProgrammeEnrolmentChanged,
    decode,
)
from shared.membership import Period
from tests.unit.test_contributions_handlers import (
    CALLER,
    MONTHLY,
    TODAY,
    FakeContributionsUnit,
    line,
)

BINJAI = "12.75"
VILLAGE = "12.75.01.1001"
JAN, OCT, NOV, DEC = Period(2026, 1), Period(2026, 10), Period(2026, 11), Period(2026, 12)


def programme(**overrides) -> Programme:
    fields = dict(programme_id=uuid.uuid4(), name="Binjai BPU 2026", funder_region=BINJAI,
                  year=2026, quota=5000, budget_rupiah=1_000_000_000, funding_code="SG",
                  programs=("JKK", "JKM"), first_period=JAN, last_period=DEC)
    fields.update(overrides)
    return Programme(**fields)  # type: ignore[arg-type]


def worker(**overrides) -> Worker:
    fields = dict(participant_id=uuid.uuid4(), segment="BPU", region_code=VILLAGE,
                  terminated=False)
    fields.update(overrides)
    return Worker(**fields)  # type: ignore[arg-type]


# --- the programme ----------------------------------------------------------------------------


def test_a_programme_funds_its_months_from_january_of_its_year_unless_told() -> None:
    assert programme_period(2026, 12, None) == ((JAN, DEC), [])
    assert programme_period(2026, 6, "2026-10") == ((OCT, Period(2027, 3)), [])


@pytest.mark.parametrize(("months", "first", "field"), [
    (0, None, "months"), (13, None, "months"), (6, "2025-12", "first_period"),
    (6, "2026-13", "first_period"),
])
def test_a_programme_funds_1_to_12_months_starting_in_its_year(months, first, field) -> None:
    period, errors = programme_period(2026, months, first)
    assert period is None and [e.field for e in errors] == [field]


def test_a_funder_is_a_province_regency_district_or_village() -> None:
    for level in ("province", "regency", "district", "village"):
        assert programme_errors(level, ["JKK", "JKM"]) == []
    assert [e.field for e in programme_errors(None, ["JKK", "JKM"])] == ["funder_region"]
    assert [e.field for e in programme_errors("national", ["JKK", "JKM"])] == ["funder_region"]


def test_a_programme_funds_jkk_and_jkm_and_may_add_jht_only() -> None:
    assert programme_errors("regency", ["JKK", "JKM", "JHT"]) == []
    assert [e.field for e in programme_errors("regency", ["JKK"])] == ["programs"]
    assert [e.field for e in programme_errors("regency", ["JKK", "JKM", "JP"])] == ["programs"]


def test_a_new_programme_from_a_request() -> None:
    data = ProgrammeIn.model_validate({
        "name": "Binjai", "funder_region": BINJAI, "year": 2026, "quota": 10,
        "budget_rupiah": 168_000, "funding_code": "SG", "programs": ["JKK", "JKM"],
        "months": 3, "first_period": "2026-11"})
    made, errors = programme_handlers.new_programme(data, "regency")
    assert errors == [] and made is not None
    assert (made.first_period, made.last_period, made.months) == (NOV, Period(2027, 1), 3)
    refused, errors = programme_handlers.new_programme(data, None)
    assert refused is None and [e.field for e in errors] == ["funder_region"]


def test_quota_and_budget_never_fall_below_what_is_enrolled_and_spent() -> None:
    prog = programme()
    assert change_refusals(prog, quota=10, budget_rupiah=100, enrolled=10, spent=100) == []
    refused = change_refusals(prog, quota=9, budget_rupiah=99, enrolled=10, spent=100)
    assert [(r.status, r.error.field) for r in refused] == [(CONFLICT, "quota"),
                                                             (CONFLICT, "budget_rupiah")]


def test_a_worker_lives_in_the_funders_region_when_its_village_lies_below_it() -> None:
    assert within_region(VILLAGE, "12") and within_region(VILLAGE, BINJAI)
    assert within_region(VILLAGE, "12.75.01") and within_region(VILLAGE, VILLAGE)
    assert not within_region(VILLAGE, "12.76") and not within_region(VILLAGE, "12.75.02")
    assert not within_region("12.75.01.10012", VILLAGE)


def test_active_means_paid_through_the_last_month_fallen_due() -> None:
    assert paid_for_active(date(2026, 11, 15)) == OCT
    assert paid_for_active(date(2026, 11, 16)) == NOV


def test_months_paid_count_from_the_registration_month() -> None:
    assert months_paid(NOV, None) == 0
    assert months_paid(NOV, NOV) == 1
    assert months_paid(Period(2026, 6), Period(2027, 1)) == 8


# --- enrolment --------------------------------------------------------------------------------


def test_an_enrolment_covers_the_programmes_months_from_the_current_month() -> None:
    assert enrolment_months(programme(), TODAY) == (NOV, DEC)
    future = programme(year=2027, first_period=Period(2027, 1), last_period=Period(2027, 6))
    assert enrolment_months(future, TODAY) == (Period(2027, 1), Period(2027, 6))
    assert enrolment_months(programme(last_period=OCT), TODAY) is None


def test_a_bpu_worker_of_the_region_may_be_enrolled() -> None:
    assert enrolment_refusal(worker(), programme(), TODAY, [], 0) is None


@pytest.mark.parametrize("segment", ["PU", "JAKON", "PMI"])
def test_only_bpu_workers_may_be_enrolled(segment) -> None:
    refusal = enrolment_refusal(worker(segment=segment), programme(), TODAY, [], 0)
    assert refusal is not None and refusal.status == INVALID
    assert "only BPU" in refusal.error.message


def test_a_worker_living_outside_the_funders_region_may_not_be_enrolled() -> None:
    refusal = enrolment_refusal(worker(region_code="12.76.01.1001"), programme(), TODAY, [], 0)
    assert refusal is not None and refusal.status == INVALID
    assert "region 12.75" in refusal.error.message


def test_a_terminated_membership_may_not_be_enrolled() -> None:
    refusal = enrolment_refusal(worker(terminated=True), programme(), TODAY, [], 0)
    assert refusal is not None and refusal.status == INVALID


def test_a_programme_whose_months_are_over_enrols_no_one() -> None:
    refusal = enrolment_refusal(worker(), programme(last_period=OCT), TODAY, [], 0)
    assert refusal is not None and refusal.error.field == "programme_id"


def test_one_programme_at_a_time_for_overlapping_months() -> None:
    w = worker()
    other = Enrolment(uuid.uuid4(), w.participant_id, DEC, Period(2027, 5))
    refusal = enrolment_refusal(w, programme(), TODAY, [other], 0)
    assert refusal is not None and refusal.status == CONFLICT
    assert "one programme at a time" in refusal.error.message
    before = Enrolment(uuid.uuid4(), w.participant_id, JAN, OCT)  # over before November
    assert enrolment_refusal(w, programme(), TODAY, [before], 0) is None


def test_periods_overlap_when_they_share_a_month() -> None:
    assert overlaps(JAN, NOV, NOV, DEC) and not overlaps(JAN, OCT, NOV, DEC)


def test_the_quota_is_never_exceeded() -> None:
    assert enrolment_refusal(worker(), programme(quota=3), TODAY, [], 2) is None
    full = enrolment_refusal(worker(), programme(quota=3), TODAY, [], 3)
    assert full is not None and full.status == CONFLICT and "full" in full.error.message


# --- payments naming a programme --------------------------------------------------------------


def refusals(prog, enrolment, payer="government", code="SG", first=NOV, last=NOV, programs=()):
    return [e.field for e in programme_payment_refusals(
        prog, enrolment, payer=payer, funding_code=code, first=first, last=last,
        programs=programs)]


def test_a_programme_pays_as_its_funder_for_months_the_worker_is_enrolled_in() -> None:
    prog = programme()
    enrolled = Enrolment(prog.programme_id, uuid.uuid4(), NOV, DEC)
    assert refusals(prog, enrolled) == []
    assert refusals(prog, enrolled, first=NOV, last=DEC) == []


def test_a_payment_naming_no_known_programme_is_refused() -> None:
    assert refusals(None, None) == ["programme_id"]


@pytest.mark.parametrize(("payer", "code"), [("self", None), ("employer", None), ("csr", "SC")])
def test_a_programme_pays_as_government_or_csr_per_its_funding_code(payer, code) -> None:
    prog = programme()
    enrolled = Enrolment(prog.programme_id, uuid.uuid4(), NOV, DEC)
    assert refusals(prog, enrolled, payer=payer, code=code) == ["payer"]


def test_a_programme_pays_under_its_own_funding_code() -> None:
    prog = programme()
    enrolled = Enrolment(prog.programme_id, uuid.uuid4(), NOV, DEC)
    assert refusals(prog, enrolled, code="SD") == ["funding_code"]
    csr = programme(funding_code="SB")
    assert refusals(csr, Enrolment(csr.programme_id, uuid.uuid4(), NOV, DEC), payer="csr",
                    code="SB") == []


def test_a_programme_pays_only_for_enrolled_workers_and_their_months() -> None:
    prog = programme()
    assert refusals(prog, None) == ["participant_id"]
    enrolled = Enrolment(prog.programme_id, uuid.uuid4(), NOV, DEC)
    assert refusals(prog, enrolled, first=NOV, last=Period(2027, 1)) == ["months"]


def test_a_programme_pays_only_for_the_programmes_it_funds() -> None:
    prog = programme()
    enrolled = Enrolment(prog.programme_id, uuid.uuid4(), NOV, DEC)
    assert refusals(prog, enrolled, programs=("JKK", "JKM")) == []
    assert refusals(prog, enrolled, programs=("JKK", "JKM", "JHT")) == ["programme_id"]
    with_jht = programme(programs=("JKK", "JKM", "JHT"))
    assert refusals(with_jht, Enrolment(with_jht.programme_id, uuid.uuid4(), NOV, DEC),
                    programs=("JKK", "JKM", "JHT")) == []


def test_a_payment_may_spend_the_budget_to_the_last_rupiah_and_no_further() -> None:
    prog = programme(budget_rupiah=50_400)
    assert budget_refusal(prog, 33_600, 16_800) is None
    beyond = budget_refusal(prog, 33_601, 16_800)
    assert beyond is not None and beyond.status == CONFLICT and beyond.error.field == "amount"


# --- the use cases over the in-memory unit ----------------------------------------------------


@pytest.fixture
def unit() -> FakeContributionsUnit:
    return FakeContributionsUnit()


async def created(unit: FakeContributionsUnit, **overrides) -> Programme:
    prog = programme(**overrides)
    await programme_handlers.create_programme(unit, prog, created_by=CALLER)
    return prog


async def enrol(unit, prog, *pids):
    outcomes = await programme_handlers.enrol(unit, prog.programme_id, list(pids), today=TODAY,
                                              by=CALLER)
    assert outcomes is not None
    return outcomes


def events_of(unit: FakeContributionsUnit, pid: uuid.UUID):
    return [decode(wire) for key, _, wire in unit.outbox if key == str(pid)]


async def test_a_new_programme_queues_programme_created_with_sequence_1(unit) -> None:
    prog = await created(unit)
    [(key, kind, wire)] = unit.organisations
    envelope, payload = decode(wire)
    assert key == str(prog.programme_id) == envelope.subject and envelope.sequence == 1
    assert envelope.source == "contributions" and isinstance(payload, ProgrammeCreated)
    assert (payload.first_period, payload.last_period, payload.quota) == ("2026-01", "2026-12",
                                                                          5000)


async def test_an_enrolment_takes_the_workers_next_contributions_sequence(unit) -> None:
    prog = await created(unit)
    pid = unit.know()
    await handlers.pay(unit, [line(pid)], caller=CALLER, today=TODAY)  # paid 1, status 2
    [outcome] = await enrol(unit, prog, pid)
    assert outcome.status_code == 201 and outcome.created
    events = events_of(unit, pid)
    assert [e.sequence for e, _ in events] == [1, 2, 3]
    envelope, payload = events[-1]
    assert isinstance(payload, ProgrammeEnrolmentChanged) and payload.enrolled
    assert envelope.source == "contributions" and envelope.subject == str(pid)
    assert (payload.first_period, payload.last_period) == ("2026-11", "2026-12")
    assert unit.members[pid].status_seq == 3


async def test_enrolling_the_same_worker_again_returns_the_enrolment_made(unit) -> None:
    prog = await created(unit)
    pid = unit.know()
    [first] = await enrol(unit, prog, pid)
    [again] = await enrol(unit, prog, pid)
    assert again.status_code == 200 and not again.created
    assert again.enrolment == first.enrolment
    assert len(events_of(unit, pid)) == 1


async def test_a_bulk_enrolment_stops_at_the_quota_row_by_row(unit) -> None:
    prog = await created(unit, quota=2)
    pids = [unit.know() for _ in range(3)]
    outside = unit.know(region_code="12.76.01.1001")
    outcomes = await enrol(unit, prog, *pids, outside, pids[0])
    assert [o.status_code for o in outcomes] == [201, 201, 409, 422, 200]
    assert len(unit.enrolments) == 2


async def test_an_unknown_programme_enrols_no_one(unit) -> None:
    outcomes = await programme_handlers.enrol(unit, uuid.uuid4(), [unit.know()], today=TODAY,
                                              by=CALLER)
    assert outcomes is None


async def test_a_withdrawal_frees_the_place_and_says_so_in_an_event(unit) -> None:
    prog = await created(unit, quota=1)
    pid, other = unit.know(), unit.know()
    await enrol(unit, prog, pid)
    withdrawn = await programme_handlers.withdraw(unit, prog.programme_id, pid, today=TODAY)
    assert withdrawn is not None
    envelope, payload = events_of(unit, pid)[-1]
    assert isinstance(payload, ProgrammeEnrolmentChanged) and not payload.enrolled
    assert envelope.sequence == 2
    assert await programme_handlers.withdraw(unit, prog.programme_id, pid, today=TODAY) is None
    [outcome] = await enrol(unit, prog, other)
    assert outcome.status_code == 201


def funded(pid, ref="APBD-1", prog=None, **overrides):
    return line(pid, ref, payer="government", funding_code="SG",
                programme_id=str(prog.programme_id) if prog else None, **overrides)


async def test_a_programme_payment_carries_who_paid_in_its_event(unit) -> None:
    prog = await created(unit)
    pid = unit.know()
    await enrol(unit, prog, pid)
    [outcome] = await handlers.pay(unit, [funded(pid, prog=prog, agent_id="AGT-7")],
                                   caller=CALLER, today=TODAY)
    assert outcome.status_code == 201, outcome.errors
    [paid] = [p for _, p in events_of(unit, pid) if isinstance(p, ContributionPaid)]
    assert paid.programme_id == prog.programme_id and paid.payer == "government"
    assert paid.funding_code == "SG" and paid.agent_id == "AGT-7" and paid.months_paid == 1


async def test_a_programme_pays_no_worker_it_has_not_enrolled(unit) -> None:
    prog = await created(unit)
    pid = unit.know()
    [outcome] = await handlers.pay(unit, [funded(pid, prog=prog)], caller=CALLER, today=TODAY)
    assert outcome.status_code == 422
    assert [e["field"] for e in outcome.errors] == ["participant_id"]
    assert unit.payments == [] and unit.outbox == []


async def test_the_budget_refuses_the_line_that_would_exceed_it_and_only_that(unit) -> None:
    prog = await created(unit, budget_rupiah=MONTHLY)
    first, second = unit.know(), unit.know()
    await enrol(unit, prog, first, second)
    outcomes = await handlers.pay(unit, [funded(first, "A", prog), funded(second, "B", prog)],
                                  caller=CALLER, today=TODAY)
    assert [o.status_code for o in outcomes] == [201, 409]
    assert "budget" in outcomes[1].errors[0]["message"]
    assert [p.line.payment_ref for p in unit.payments] == ["A"]
    assert events_of(unit, second)[-1][1].__class__ is ProgrammeEnrolmentChanged


async def test_a_programme_change_queues_programme_changed_with_the_next_sequence(unit) -> None:
    prog = await created(unit, quota=2)
    await enrol(unit, prog, unit.know(), unit.know())
    refused = await programme_handlers.change_programme(
        unit, prog.programme_id, ProgrammeChangeIn(quota=1))
    assert isinstance(refused, list) and refused[0].error.field == "quota"
    changed = await programme_handlers.change_programme(
        unit, prog.programme_id, ProgrammeChangeIn(quota=3, name="Binjai sehat"))
    assert isinstance(changed, Programme) and changed.quota == 3
    envelope, payload = decode(unit.organisations[-1][2])
    assert isinstance(payload, ProgrammeChanged) and envelope.sequence == 2
    assert payload.name == "Binjai sehat" and payload.quota == 3
    same = await programme_handlers.change_programme(unit, prog.programme_id,
                                                     ProgrammeChangeIn(quota=3))
    assert same == changed and len(unit.organisations) == 2
    assert await programme_handlers.change_programme(unit, uuid.uuid4(),
                                                     ProgrammeChangeIn(quota=3)) is None
