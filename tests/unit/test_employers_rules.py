"""Issue 11 rules on registration: employers (OPDs included) and the workers they declare, the
kinds of employer each segment may name, and the channel a worker came through. Pure rules
(services/registration/employers.py, domain.py) and the bodies that carry them (schemas.py,
csv_upload.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from services.registration import domain, employers
from services.registration.csv_upload import rows_from_csv
from services.registration.employers import Declared, Employer
from services.registration.schemas import validate_declared, validate_employer, validate_row
from shared.regions import directory
from shared.vocabulary import EMPLOYER_KINDS

TODAY = date(2026, 1, 15)
REGIONS = directory()
FACTORY = "0b8f5c1e-2f4d-4a7b-9c1e-5d6f7a8b9c01"

DINAS = {"name": "Dinas Kebersihan Kota Binjai", "kind": "opd", "region_code": "12.75",
         "npp": "NPP-12.750.001", "declared_workers": {"year": 2025, "count": 310,
                                                        "source": "SK Walikota 2025"}}
SITI: dict[str, Any] = {
    "nik": "1275014508900001", "full_name": "Siti Aminah", "birth_date": "1990-08-05",
    "sex": "F", "region_code": "12.75.01.1001", "segment": "BPU", "employer_id": None,
    "occupation": "pedagang", "monthly_income": 1_000_000, "programs": ["JKK", "JKM"],
}
BUDI: dict[str, Any] = {
    "nik": "1275010503850002", "full_name": "Budi Santoso", "birth_date": "1985-03-05",
    "sex": "M", "region_code": "12.75.01.1002", "segment": "PU", "employer_id": FACTORY,
    "occupation": "operator mesin", "monthly_income": 4_000_000, "programs": ["JKK", "JKM"],
}


def employer_errors(**changes: Any) -> list[dict[str, str]]:
    employer, errors = validate_employer({**DINAS, **changes}, regions=REGIONS)
    assert (employer is None) == bool(errors)
    return errors


def row_errors(base: dict[str, Any], **changes: Any) -> list[dict[str, str]]:
    participant, errors = validate_row({**base, **changes}, TODAY, regions=REGIONS)
    assert (participant is None) == bool(errors)
    return errors


def fields(errors: list[dict[str, str]]) -> list[str]:
    return [e["field"] for e in errors]


# --- employers ----------------------------------------------------------------------------------


def test_a_city_agency_with_its_declared_workers_may_be_registered() -> None:
    employer, errors = validate_employer(DINAS, regions=REGIONS)
    assert errors == [] and employer is not None
    assert employer.to_employer() == Employer(
        "Dinas Kebersihan Kota Binjai", "opd", "12.75", "NPP-12.750.001",
        (Declared(2025, 310, "SK Walikota 2025"),))


@pytest.mark.parametrize("kind", EMPLOYER_KINDS)
def test_every_kind_of_employer_may_be_registered(kind: str) -> None:
    assert employer_errors(kind=kind) == []


def test_an_employer_may_sit_at_any_region_level_below_national() -> None:
    for code in ("12", "12.75", "12.75.01", "12.75.01.1001"):
        assert employer_errors(region_code=code) == [], code


def test_an_employer_needs_a_known_region_below_national() -> None:
    assert fields(employer_errors(region_code="ID")) == ["region_code"]
    assert employer_errors(region_code="99.99") == [
        {"field": "region_code", "message": "99.99 is not a known regency code"}]
    assert fields(employer_errors(region_code="12,75")) == ["region_code"]


def test_an_unknown_kind_of_employer_is_refused() -> None:
    assert fields(employer_errors(kind="ngo")) == ["kind"]


def test_an_employer_name_may_be_neither_blank_nor_too_long() -> None:
    assert employer_errors(name="   ") == [{"field": "name", "message": "may not be blank"}]
    assert fields(employer_errors(name="")) == ["name"]
    assert fields(employer_errors(name="x" * 201)) == ["name"]
    assert employer_errors(name="x" * 200) == []


def test_an_employer_name_with_a_control_character_is_refused() -> None:
    assert fields(employer_errors(name="PT Maju\x00Jaya")) == ["name"]


def test_the_npp_is_optional_and_has_a_shape() -> None:
    assert employer_errors(npp=None) == []
    assert fields(employer_errors(npp="NPP 123")) == ["npp"]
    assert fields(employer_errors(npp="-123")) == ["npp"]


def test_the_declared_workers_are_optional() -> None:
    assert employer_errors(declared_workers=None) == []
    body = {k: v for k, v in DINAS.items() if k != "declared_workers"}
    assert validate_employer(body, regions=REGIONS)[1] == []


def test_a_negative_or_absurd_declared_count_is_refused() -> None:
    assert employer_errors(declared_workers={"year": 2025, "count": -1}) == [
        {"field": "declared_workers.count", "message": "may not be negative"}]
    assert fields(employer_errors(declared_workers={"year": 2025, "count": 10_000_001})) == [
        "declared_workers.count"]
    assert employer_errors(declared_workers={"year": 2025, "count": 10_000_000}) == []
    assert employer_errors(declared_workers={"year": 2025, "count": 0}) == []


def test_a_declared_year_outside_2000_to_2100_is_refused() -> None:
    for year in (1999, 2101):
        assert fields(employer_errors(declared_workers={"year": year, "count": 5})) == [
            "declared_workers.year"]
    for year in (2000, 2100):
        assert employer_errors(declared_workers={"year": year, "count": 5}) == []


def test_an_employer_body_is_strict_about_types_and_fields() -> None:
    assert fields(employer_errors(declared_workers={"year": "2025", "count": 5})) == [
        "declared_workers.year"]
    assert fields(employer_errors(website="x")) == ["website"]
    assert validate_employer([DINAS], regions=REGIONS)[1] == [
        {"field": "", "message": "an employer must be a JSON object"}]


def test_a_declared_figure_body_names_the_field_that_is_wrong() -> None:
    assert validate_declared({"year": 2025, "count": 12}) == (Declared(2025, 12), [])
    assert validate_declared({"year": 1990, "count": -3})[1] == [
        {"field": "year", "message": "must be between 2000 and 2100"},
        {"field": "count", "message": "may not be negative"}]
    assert fields(validate_declared({"year": 2025})[1]) == ["count"]


def test_a_declared_figure_replaces_the_same_year_and_keeps_the_others_in_order() -> None:
    now = (Declared(2024, 300), Declared(2025, 310))
    assert employers.with_declared(now, Declared(2025, 320, "revisi")) == (
        Declared(2024, 300), Declared(2025, 320, "revisi"))
    assert employers.with_declared(now, Declared(2023, 280)) == (
        Declared(2023, 280), Declared(2024, 300), Declared(2025, 310))


def test_an_employer_lies_in_its_region_and_every_region_containing_it() -> None:
    for region in ("ID", "12", "12.75", "12.75.01", "12.75.01.1001"):
        assert employers.in_region("12.75.01.1001", region)
    assert not employers.in_region("12.75.01.1001", "12.7")
    assert not employers.in_region("12.75", "12.75.01")


# --- which employers a segment may name -----------------------------------------------------------


@pytest.mark.parametrize("kind", EMPLOYER_KINDS)
def test_a_wage_earner_may_work_for_any_kind_of_employer(kind: str) -> None:
    """Non-ASN staff of an agency (OPD) or a village government register as its PU workers."""
    assert domain.check_employer_kind("PU", FACTORY, kind) == []


def test_a_construction_worker_works_for_a_company_or_an_enterprise() -> None:
    for kind in ("private", "bumn", "bumd"):
        assert domain.check_employer_kind("JAKON", FACTORY, kind) == []
    for kind in ("opd", "village_gov"):
        [error] = domain.check_employer_kind("JAKON", FACTORY, kind)
        assert error.field == "employer_id" and kind in error.message


def test_a_migrant_worker_names_a_placement_agency_or_no_one() -> None:
    assert domain.check_employer_kind("PMI", FACTORY, "private") == []
    assert domain.check_employer_kind("PMI", None, None) == []
    assert [e.field for e in domain.check_employer_kind("PMI", FACTORY, "opd")] == [
        "employer_id"]


def test_an_employer_that_does_not_exist_is_refused() -> None:
    [error] = domain.check_employer_kind("PU", FACTORY, None)
    assert error.field == "employer_id" and "no employer has this id" in error.message


def test_an_employer_id_must_be_the_id_the_employers_api_gave() -> None:
    assert fields(row_errors(BUDI, employer_id="NPP-12345678")) == ["employer_id"]
    assert row_errors(BUDI, employer_id=FACTORY.upper()) == []


def test_an_employer_id_in_capitals_is_stored_in_its_one_spelling() -> None:
    participant, _ = validate_row({**BUDI, "employer_id": FACTORY.upper()}, TODAY,
                                  regions=REGIONS)
    assert participant is not None and participant.employer_id == FACTORY


# --- channels -----------------------------------------------------------------------------------


def test_a_registration_without_a_channel_came_through_a_partner_api() -> None:
    participant, errors = validate_row(SITI, TODAY, regions=REGIONS)
    assert errors == [] and participant is not None
    assert participant.channel == "partner_api" and participant.agent_id is None
    participant, _ = validate_row({**SITI, "channel": None}, TODAY, regions=REGIONS)
    assert participant is not None and participant.channel == "partner_api"


def test_an_agent_names_itself() -> None:
    assert row_errors(SITI, channel="agent", agent_id="perisai-binjai.007") == []
    assert row_errors(SITI, channel="agent") == [
        {"field": "agent_id", "message": "is required on the agent channel"}]


@pytest.mark.parametrize("agent_id", ["", "-agent", "agen 7", "a" * 41, "agen/7", "agén"])
def test_an_agent_id_has_a_shape(agent_id: str) -> None:
    assert fields(row_errors(SITI, channel="agent", agent_id=agent_id)) == ["agent_id"]


def test_only_the_agent_channel_names_an_agent() -> None:
    for channel in ("partner_api", "village_office", "employer", "pemda"):
        errors = row_errors(BUDI, channel=channel, agent_id="agent-7",
                            office_village="12.75.01.1001" if channel == "village_office"
                            else None)
        assert fields(errors) == ["agent_id"], channel


def test_a_village_office_names_its_village() -> None:
    assert row_errors(SITI, channel="village_office", office_village="12.75.01.1001") == []
    assert fields(row_errors(SITI, channel="village_office")) == ["office_village"]
    for code in ("12.75.01", "12.75.01.9999", "99.99.99.9999"):
        assert fields(row_errors(SITI, channel="village_office", office_village=code)) == [
            "office_village"], code


def test_only_the_village_office_channel_names_an_office() -> None:
    assert fields(row_errors(SITI, office_village="12.75.01.1001")) == ["office_village"]
    assert fields(row_errors(SITI, channel="agent", agent_id="a1",
                             office_village="12.75.01.1001")) == ["office_village"]


def test_the_employer_channel_needs_an_employer() -> None:
    assert row_errors(BUDI, channel="employer") == []
    pmi = {**SITI, "segment": "PMI"}
    assert row_errors(pmi, channel="employer") == [
        {"field": "employer_id", "message": "is required on the employer channel"}]


def test_an_unknown_channel_is_refused() -> None:
    assert fields(row_errors(SITI, channel="whatsapp")) == ["channel"]
    assert domain.check_channel("whatsapp", None, None, None, regions=REGIONS)[0].field == (
        "channel")


def test_a_local_government_drive_is_a_channel_of_its_own() -> None:
    assert row_errors(SITI, channel="pemda") == []


def test_the_channel_is_not_changed_by_a_patch() -> None:
    from services.registration.schemas import validate_patch

    current = domain.Registration(
        nik=SITI["nik"], full_name=SITI["full_name"], birth_date=date(1990, 8, 5), sex="F",
        region_code=SITI["region_code"], segment="BPU", employer_id=None, occupation=None,
        monthly_income=1_000_000, programs=("JKK", "JKM"), channel="agent", agent_id="a1")
    for body in ({"channel": "pemda"}, {"agent_id": "a2"}, {"office_village": "12.75.01.1001"}):
        patch, errors = validate_patch(body, current, TODAY, regions=REGIONS)
        assert patch is None and errors == [{
            "field": next(iter(body)),
            "message": "cannot be changed: it records how the worker was registered"}], body


# --- CSV ----------------------------------------------------------------------------------------

HEADER = ("nik,full_name,birth_date,sex,region_code,segment,employer_id,occupation,"
          "monthly_income,programs,channel,agent_id,office_village\n")


def test_csv_rows_carry_the_channel_columns() -> None:
    text = HEADER + (
        "1275014508900001,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU,,pedagang,1000000,"
        "JKK JKM,agent,perisai-007,\n"
        "1275014508900002,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU,,pedagang,1000000,"
        "JKK JKM,,,\n"
        "1275014508900003,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU,,pedagang,1000000,"
        "JKK JKM,village_office,,12.75.01.1002\n")
    rows = rows_from_csv(text)
    judged = [validate_row(row, TODAY, regions=REGIONS) for row in rows]
    assert [errors for _, errors in judged] == [[], [], []]
    channels = [(p.channel, p.agent_id, p.office_village) for p, _ in judged if p is not None]
    assert channels == [("agent", "perisai-007", None), ("partner_api", None, None),
                        ("village_office", None, "12.75.01.1002")]


def test_csv_rows_without_the_channel_columns_came_through_a_partner_api() -> None:
    text = ("nik,full_name,birth_date,sex,region_code,segment,monthly_income,programs\n"
            "1275014508900001,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU,1000000,JKK JKM\n")
    [row] = rows_from_csv(text)
    participant, errors = validate_row(row, TODAY, regions=REGIONS)
    assert errors == [] and participant is not None and participant.channel == "partner_api"


def test_a_csv_row_breaking_a_channel_rule_names_the_field() -> None:
    text = HEADER + ("1275014508900001,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU,,pedagang,"
                     "1000000,JKK JKM,agent,,\n")
    [row] = rows_from_csv(text)
    assert fields(validate_row(row, TODAY, regions=REGIONS)[1]) == ["agent_id"]
