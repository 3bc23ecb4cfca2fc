"""Registration rules, one test per rule (CONTRACT.md "Registration service", DOMAIN.md).

Villages are real Kemendagri codes: 12.75.01.1001 Pahlawan and 12.75.01.1002 Jati Negara
(Binjai Utara, Kota Binjai), 34.71.01.1001 Kricak (Kota Yogyakarta).
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import date
from typing import Any
from uuid import uuid4

import pytest

from services.registration import domain
from services.registration.csv_upload import rows_from_csv
from services.registration.domain import (
    FieldError,
    Registration,
    age_on,
    check_change,
    check_nik,
    is_valid_kpj,
    kpj_for,
    mask_name,
    mask_nik,
    programs_allowed_for,
)
from services.registration.schemas import (
    ParticipantOut,
    validate_patch,
    validate_row,
)
from shared import events, vocabulary
from shared.regions import directory

TODAY = date(2026, 1, 15)
# Employers are named by the id POST /v1/employers gave them (a UUID).
FACTORY = "0b8f5c1e-2f4d-4a7b-9c1e-5d6f7a8b9c01"
AGENCY = "7d1e2c3b-4a5f-4e6d-8c7b-9a0b1c2d3e04"
REGIONS = directory()
PROVINCES = domain.province_codes(REGIONS)

SITI: dict[str, Any] = {  # the contract's example: a woman, so her NIK day is 05 + 40 = 45
    "nik": "1275014508900001",
    "full_name": "Siti Aminah",
    "birth_date": "1990-08-05",
    "sex": "F",
    "region_code": "12.75.01.1001",
    "segment": "BPU",
    "employer_id": None,
    "occupation": "pedagang",
    "monthly_income": 1_000_000,
    "programs": ["JKK", "JKM"],
}
BUDI: dict[str, Any] = {  # a wage earner born 5 March 1985
    "nik": "1275010503850002",
    "full_name": "Budi Santoso",
    "birth_date": "1985-03-05",
    "sex": "M",
    "region_code": "12.75.01.1002",
    "segment": "PU",
    "employer_id": FACTORY,
    "occupation": "operator mesin",
    "monthly_income": 4_000_000,
    "programs": ["JKK", "JKM", "JHT", "JP", "JKP"],
}


def born(birth_date: date, sex: str = "M", serial: str = "0009") -> dict[str, Any]:
    """Identity fields of a Binjai-issued worker born on birth_date (the NIK built to agree)."""
    day = birth_date.day + (40 if sex == "F" else 0)
    nik = f"127501{day:02d}{birth_date:%m%y}{serial}"
    return {"nik": nik, "birth_date": birth_date.isoformat(), "sex": sex}


def errors_of(base: dict[str, Any], **changes: Any) -> list[dict[str, str]]:
    participant, errors = validate_row({**base, **changes}, TODAY, regions=REGIONS)
    assert (participant is None) == bool(errors)
    return errors


def fields(errors: list[dict[str, str]]) -> list[str]:
    return [e["field"] for e in errors]


def only_error(base: dict[str, Any], **changes: Any) -> dict[str, str]:
    errors = errors_of(base, **changes)
    assert len(errors) == 1, errors
    return errors[0]


def nik_errors(nik: str, birth_date: date, sex: str) -> list[FieldError]:
    return check_nik(nik, birth_date, sex, province_codes=PROVINCES)


# --- the examples are valid -------------------------------------------------------------------


def test_the_contract_example_registers() -> None:
    participant, errors = validate_row(SITI, TODAY, regions=REGIONS)
    assert errors == []
    assert participant is not None and participant.birth_date == date(1990, 8, 5)


def test_a_wage_earner_may_take_every_programme() -> None:
    assert errors_of(BUDI) == []


# --- NIK --------------------------------------------------------------------------------------


def test_nik_day_has_forty_added_for_women() -> None:
    assert nik_errors("1275014508900001", date(1990, 8, 5), "F") == []
    assert nik_errors("1275010508900001", date(1990, 8, 5), "M") == []


def test_nik_without_forty_added_disagrees_with_a_woman() -> None:
    assert nik_errors("1275010508900001", date(1990, 8, 5), "F") == [
        FieldError("nik", "digits 7-8 have no 40 added to the day (a man), but sex is F")
    ]


def test_nik_with_forty_added_disagrees_with_a_man() -> None:
    assert only_error(SITI, sex="M") == {
        "field": "nik",
        "message": "digits 7-8 have 40 added to the day (a woman), but sex is M",
    }


def test_nik_disagreeing_with_birth_date_is_refused() -> None:
    assert only_error(SITI, birth_date="1990-09-05") == {
        "field": "nik", "message": "digits 7-12 (DDMMYY) do not match birth_date",
    }
    assert fields(errors_of(SITI, birth_date="1991-08-05")) == ["nik"]
    assert fields(errors_of(SITI, birth_date="1990-08-06")) == ["nik"]


def test_nik_birth_digits_that_are_no_date_are_refused() -> None:
    assert nik_errors("1275014513900001", date(1990, 8, 5), "F") == [
        FieldError("nik", "digits 7-12 are not a birth date (DDMMYY, 40 added to DD for women)")
    ]


def test_nik_shorter_than_sixteen_digits_is_refused() -> None:
    assert only_error(SITI, nik="127501450890001") == {
        "field": "nik", "message": "must be exactly 16 digits, not 15",
    }


def test_nik_longer_than_sixteen_digits_is_refused() -> None:
    assert only_error(SITI, nik="12750145089000011")["message"] == (
        "must be exactly 16 digits, not 17"
    )


def test_nik_with_arabic_indic_digits_is_refused() -> None:
    arabic_indic = "".join(chr(0x0660 + int(d)) for d in SITI["nik"])
    assert arabic_indic.isdigit() and len(arabic_indic) == 16  # what str.isdigit lets through
    assert only_error(SITI, nik=arabic_indic) == {
        "field": "nik", "message": "must contain only the digits 0-9",
    }


def test_nik_with_full_width_digits_is_refused() -> None:
    full_width = "".join(chr(0xFF10 + int(d)) for d in SITI["nik"])
    assert only_error(SITI, nik=full_width)["message"] == "must contain only the digits 0-9"


def test_nik_with_spaces_or_dots_is_refused() -> None:
    assert fields(errors_of(SITI, nik="12.75.01.450890.0001")) == ["nik"]
    assert fields(errors_of(SITI, nik=" 1275014508900001")) == ["nik"]


def test_nik_must_start_with_a_province_code() -> None:
    assert only_error(SITI, nik="9975014508900001") == {
        "field": "nik", "message": "digits 1-2 (99) are not a province code",
    }
    assert fields(errors_of(SITI, nik="1075014508900001")) == ["nik"]


def test_nik_serial_starts_at_0001() -> None:
    assert only_error(SITI, nik="1275014508900000") == {
        "field": "nik", "message": "serial (digits 13-16) may not be 0000",
    }


def test_nik_issued_elsewhere_may_register_in_another_village() -> None:
    # The NIK prefix is where the card was first issued, not where the worker is counted.
    assert errors_of(SITI, region_code="34.71.01.1001") == []


def test_nik_errors_never_repeat_the_nik() -> None:
    bad = "9975014513900000"
    for error in nik_errors(bad, date(1990, 8, 5), "F"):
        assert bad not in error.message and "4513" not in error.message


def test_nik_as_a_json_number_is_refused() -> None:
    assert only_error(SITI, nik=1275014508900001) == {
        "field": "nik", "message": "Input should be a valid string",
    }


# --- birth date and age -----------------------------------------------------------------------


def test_future_birth_date_is_refused() -> None:
    assert only_error(SITI, **born(date(2026, 2, 1), "F")) == {
        "field": "birth_date", "message": "is in the future",
    }


def test_worker_under_fifteen_is_refused() -> None:
    assert only_error(SITI, **born(date(2011, 1, 16), "F")) == {
        "field": "birth_date", "message": "a worker must be at least 15 years old (is 14)",
    }


def test_worker_turning_fifteen_today_may_register() -> None:
    assert errors_of(SITI, **born(date(2011, 1, 15), "F")) == []


def test_worker_over_a_hundred_is_taken_for_a_typing_error() -> None:
    assert only_error(SITI, **born(date(1925, 1, 1), "F")) == {
        "field": "birth_date", "message": "gives an age of 101; more than 100 is not plausible",
    }


def test_birth_date_must_be_written_yyyy_mm_dd() -> None:
    expected = {"field": "birth_date", "message": "must be a date written YYYY-MM-DD"}
    assert only_error(SITI, birth_date="05/08/1990") == expected
    assert only_error(SITI, birth_date="19900805") == expected
    assert only_error(SITI, birth_date=649814400) == expected  # a Unix timestamp
    assert only_error(SITI, birth_date="1990-08-05T00:00:00") == expected


def test_birth_date_must_be_a_calendar_date() -> None:
    assert only_error(SITI, birth_date="1990-02-30") == {
        "field": "birth_date", "message": "is not a calendar date",
    }


def test_a_leap_day_birthday_counts_from_the_first_of_march() -> None:
    assert age_on(date(2008, 2, 29), date(2023, 2, 28)) == 14
    assert age_on(date(2008, 2, 29), date(2023, 3, 1)) == 15


# --- region -----------------------------------------------------------------------------------


def test_unknown_village_is_refused() -> None:
    assert only_error(SITI, region_code="12.75.01.1099") == {
        "field": "region_code", "message": "12.75.01.1099 is not a known village code",
    }


def test_district_code_instead_of_a_village_is_refused() -> None:
    assert only_error(SITI, region_code="12.75.01") == {
        "field": "region_code",
        "message": "12.75.01 is a district code; give the village (kelurahan/desa) code",
    }


def test_regency_or_province_code_instead_of_a_village_is_refused() -> None:
    assert fields(errors_of(SITI, region_code="12.75")) == ["region_code"]
    assert fields(errors_of(SITI, region_code="12")) == ["region_code"]
    assert fields(errors_of(SITI, region_code="ID")) == ["region_code"]


def test_region_code_without_dots_is_refused() -> None:
    assert only_error(SITI, region_code="1275011001") == {
        "field": "region_code", "message": "is not a Kemendagri code (village: PP.RR.DD.VVVV)",
    }


def test_region_code_as_a_number_is_refused() -> None:
    assert only_error(SITI, region_code=12.75) == {
        "field": "region_code", "message": "Input should be a valid string",
    }


# --- segment and employer ---------------------------------------------------------------------


def test_wage_earner_needs_an_employer() -> None:
    assert only_error(BUDI, employer_id=None) == {
        "field": "employer_id", "message": "is required for PU",
    }


def test_construction_worker_needs_an_employer() -> None:
    jakon = {**BUDI, "segment": "JAKON", "programs": ["JKK", "JKM"]}
    assert errors_of(jakon) == []
    assert only_error(jakon, employer_id=None) == {
        "field": "employer_id", "message": "is required for JAKON",
    }


def test_informal_worker_has_no_employer() -> None:
    assert only_error(SITI, employer_id=FACTORY) == {
        "field": "employer_id", "message": "must be null for BPU (no employer)",
    }


def test_migrant_worker_may_register_with_or_without_employer() -> None:
    pmi = {**SITI, "segment": "PMI"}
    assert errors_of(pmi, employer_id=None) == []
    assert errors_of(pmi, employer_id=AGENCY) == []


def test_blank_employer_id_is_refused() -> None:
    assert only_error(BUDI, employer_id="  ") == {
        "field": "employer_id", "message": "may not be blank; send null when there is none",
    }


def test_unknown_segment_is_refused() -> None:
    assert only_error(SITI, segment="INFORMAL") == {
        "field": "segment", "message": "Input should be 'PU', 'BPU', 'JAKON' or 'PMI'",
    }


# --- programmes -------------------------------------------------------------------------------


def test_programme_table_is_domain_md() -> None:
    assert programs_allowed_for("PU") == {"JKK", "JKM", "JHT", "JP", "JKP"}
    assert programs_allowed_for("BPU") == {"JKK", "JKM", "JHT"}
    assert programs_allowed_for("JAKON") == {"JKK", "JKM"}
    assert programs_allowed_for("PMI") == {"JKK", "JKM", "JHT"}
    assert all(t.required_programs == {"JKK", "JKM"} for t in domain.SEGMENT_TERMS.values())


def test_segments_and_programmes_are_those_of_the_events() -> None:
    assert typing.get_args(vocabulary.Segment) == typing.get_args(events.Segment)
    assert typing.get_args(vocabulary.Program) == typing.get_args(events.Program)
    assert set(domain.SEGMENT_TERMS) == set(vocabulary.SEGMENTS)


@pytest.mark.parametrize("segment", ["PU", "BPU", "JAKON", "PMI"])
def test_jkk_and_jkm_are_required_in_every_segment(segment: str) -> None:
    base = BUDI if segment in ("PU", "JAKON") else SITI
    assert only_error(base, segment=segment, programs=["JKK"]) == {
        "field": "programs", "message": f"must include JKM (required for {segment})",
    }
    assert only_error(base, segment=segment, programs=[]) == {
        "field": "programs", "message": f"must include JKK and JKM (required for {segment})",
    }


def test_bpu_may_not_take_pension() -> None:
    assert only_error(SITI, programs=["JKK", "JKM", "JP"]) == {
        "field": "programs", "message": "BPU may not take JP",
    }


def test_bpu_may_not_take_job_loss() -> None:
    assert only_error(SITI, programs=["JKK", "JKM", "JKP"]) == {
        "field": "programs", "message": "BPU may not take JKP",
    }


def test_bpu_may_take_old_age_savings() -> None:
    assert errors_of(SITI, programs=["JKK", "JKM", "JHT"]) == []


def test_construction_worker_takes_only_jkk_and_jkm() -> None:
    jakon = {**BUDI, "segment": "JAKON"}
    assert errors_of(jakon, programs=["JKK", "JKM", "JHT"]) == [
        {"field": "programs", "message": "JAKON may not take JHT"},
    ]


def test_migrant_worker_may_take_jht_but_not_pension() -> None:
    pmi = {**SITI, "segment": "PMI"}
    assert errors_of(pmi, programs=["JKK", "JKM", "JHT"]) == []
    assert errors_of(pmi, programs=["JKK", "JKM", "JHT", "JP", "JKP"]) == [
        {"field": "programs", "message": "PMI may not take JP"},
        {"field": "programs", "message": "PMI may not take JKP"},
    ]


def test_job_loss_is_for_wage_earners_under_54_at_registration() -> None:
    assert only_error(BUDI, **born(date(1971, 6, 1))) == {
        "field": "programs",
        "message": "JKP is only for workers under 54 when they enrol (this worker is 54)",
    }
    assert errors_of(BUDI, **born(date(1972, 6, 1))) == []
    no_jkp = ["JKK", "JKM", "JHT", "JP"]
    assert errors_of(BUDI, programs=no_jkp, **born(date(1960, 6, 1))) == []


def test_a_programme_listed_twice_is_refused() -> None:
    assert only_error(SITI, programs=["JKK", "JKM", "JKK"]) == {
        "field": "programs", "message": "JKK is listed more than once",
    }


def test_unknown_programme_is_refused() -> None:
    assert only_error(SITI, programs=["JKK", "JKM", "JKN"]) == {
        "field": "programs.2", "message": "Input should be 'JKK', 'JKM', 'JHT', 'JP' or 'JKP'",
    }


def test_more_than_five_programmes_is_refused() -> None:
    assert fields(errors_of(BUDI, programs=["JKK", "JKM", "JHT", "JP", "JKP", "JKK"])) == [
        "programs"
    ]


def test_programmes_as_a_string_in_json_are_refused() -> None:
    assert only_error(SITI, programs="JKK JKM") == {
        "field": "programs", "message": "Input should be a valid list",
    }


def test_domain_refuses_duplicate_and_unknown_programmes_on_its_own() -> None:
    assert domain.check_programs("BPU", ["JKK", "JKM", "JKM", "XYZ"], age_at_enrolment=30) == [
        FieldError("programs", "XYZ is not a programme (JKK JKM JHT JP JKP)"),
        FieldError("programs", "JKM is listed more than once"),
    ]


# --- income -----------------------------------------------------------------------------------


def test_negative_income_is_refused() -> None:
    assert only_error(BUDI, monthly_income=-4_000_000) == {
        "field": "monthly_income", "message": "must be at least Rp 1 for PU",
    }


def test_zero_income_is_refused() -> None:
    assert fields(errors_of(BUDI, monthly_income=0)) == ["monthly_income"]


def test_absurd_income_is_refused() -> None:
    assert only_error(BUDI, monthly_income=10**30) == {
        "field": "monthly_income", "message": "must be at most Rp 1,000,000,000 for PU",
    }
    assert errors_of(BUDI, monthly_income=domain.MONTHLY_INCOME_SANITY_CAP) == []


def test_bpu_declares_at_least_one_million() -> None:
    assert only_error(SITI, monthly_income=999_999) == {
        "field": "monthly_income", "message": "must be at least Rp 1,000,000 for BPU",
    }
    assert errors_of(SITI, monthly_income=1_000_000) == []


def test_bpu_declares_at_most_what_the_jkk_cap_covers() -> None:
    assert errors_of(SITI, monthly_income=20_700_000) == []
    assert only_error(SITI, monthly_income=20_700_001) == {
        "field": "monthly_income", "message": "must be at most Rp 20,700,000 for BPU",
    }


def test_income_as_a_string_is_refused() -> None:
    assert only_error(SITI, monthly_income="1000000") == {
        "field": "monthly_income", "message": "Input should be a valid integer",
    }


def test_income_as_a_float_is_refused() -> None:
    assert only_error(SITI, monthly_income=1000000.0) == {
        "field": "monthly_income", "message": "Input should be a valid integer",
    }


def test_income_as_a_boolean_is_refused() -> None:
    assert only_error(BUDI, monthly_income=True) == {
        "field": "monthly_income", "message": "Input should be a valid integer",
    }


# --- shape of the request ---------------------------------------------------------------------


def test_missing_fields_are_each_named() -> None:
    errors = errors_of({"employer_id": None})
    assert errors == [
        {"field": f, "message": "is required"}
        for f in ("nik", "full_name", "birth_date", "sex", "region_code", "segment",
                  "monthly_income", "programs")
    ]


def test_employer_and_occupation_may_be_left_out() -> None:
    siti = {k: v for k, v in SITI.items() if k not in ("employer_id", "occupation")}
    assert errors_of(siti) == []


def test_unknown_field_is_refused() -> None:
    assert only_error(SITI, programmes=["JKK", "JKM"]) == {
        "field": "programmes", "message": "is not a field of this request",
    }


def test_megabyte_name_is_refused() -> None:
    assert only_error(SITI, full_name="A" * 1_000_000) == {
        "field": "full_name", "message": "String should have at most 200 characters",
    }


def test_megabyte_strings_are_refused_in_every_text_field() -> None:
    huge = "1" * 1_000_000
    errors = errors_of(BUDI, nik=huge, region_code=huge, employer_id=huge, occupation=huge)
    assert fields(errors) == ["nik", "region_code", "employer_id", "occupation"]


def test_blank_name_is_refused() -> None:
    assert only_error(SITI, full_name="   ") == {
        "field": "full_name", "message": "may not be blank",
    }


def test_name_with_a_nul_character_is_refused() -> None:
    assert only_error(SITI, full_name="Siti\x00Aminah") == {
        "field": "full_name", "message": "may not contain control characters",
    }


def test_name_with_a_lone_surrogate_is_refused() -> None:
    assert fields(errors_of(SITI, full_name="Siti \ud800")) == ["full_name"]


def test_a_single_word_name_is_accepted() -> None:
    assert errors_of(BUDI, full_name="Sukarno") == []


def test_a_row_that_is_not_an_object_is_refused() -> None:
    assert validate_row(["nik"], TODAY, regions=REGIONS) == (
        None, [{"field": "", "message": "a participant must be a JSON object"}],
    )


def test_every_rule_broken_by_a_row_is_reported() -> None:
    errors = errors_of(SITI, nik="9975014508900001", region_code="12.75.01",
                       employer_id="NPP-1", monthly_income=500_000, programs=["JKK", "JP"])
    assert fields(errors) == [
        "nik", "region_code", "employer_id", "monthly_income", "programs", "programs",
    ]


# --- bulk as CSV ------------------------------------------------------------------------------

HEADER = (
    "nik,full_name,birth_date,sex,region_code,segment,employer_id,occupation,"
    "monthly_income,programs\n"
)


def test_csv_rows_have_the_json_field_names_and_types() -> None:
    text = HEADER + "1275014508900001,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU,,pedagang," \
                    "1000000,JKK JKM\n"
    assert rows_from_csv(text) == [SITI]
    assert errors_of(rows_from_csv(text)[0]) == []


def test_csv_empty_cells_are_null() -> None:
    text = HEADER + "1275014508900001,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU, ,,1000000,JKK JKM"
    row = rows_from_csv(text)[0]
    assert row["employer_id"] is None and row["occupation"] is None


def test_csv_empty_programmes_cell_names_the_required_programmes() -> None:
    text = HEADER + "1275014508900001,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU,,,1000000,"
    row = rows_from_csv(text)[0]
    assert row["programs"] == []
    assert fields(errors_of(row)) == ["programs"]


def test_csv_may_leave_out_optional_columns_and_use_any_order() -> None:
    text = ("Programs, Monthly_Income ,segment,region_code,sex,birth_date,full_name,nik\n"
            "JKK JKM JHT,1500000,BPU,12.75.01.1001,F,1990-08-05,Siti Aminah,1275014508900001\n")
    assert rows_from_csv(text) == [{
        **{k: v for k, v in SITI.items() if k not in ("employer_id", "occupation")},
        "monthly_income": 1_500_000, "programs": ["JKK", "JKM", "JHT"],
    }]


def test_csv_income_with_thousand_separators_fails_its_row_only() -> None:
    good = "1275014508900001,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU,,,1000000,JKK JKM\n"
    bad = '1275010503850002,Budi,1985-03-05,M,12.75.01.1002,BPU,,,"1.000.000",JKK JKM\n'
    rows = rows_from_csv(HEADER + good + bad)
    assert rows[1]["monthly_income"] == "1.000.000"
    assert errors_of(rows[0]) == []
    assert errors_of(rows[1]) == [
        {"field": "monthly_income", "message": "Input should be a valid integer"}
    ]


def test_csv_quoted_cells_may_hold_commas_and_line_breaks() -> None:
    text = HEADER + ('1275014508900001,"Aminah, Siti",1990-08-05,F,12.75.01.1001,BPU,,'
                     '"pedagang\nsayur",1000000,JKK JKM\n')
    row = rows_from_csv(text)[0]
    assert row["full_name"] == "Aminah, Siti" and row["occupation"] == "pedagang\nsayur"


def test_csv_saved_by_a_spreadsheet_with_semicolons_and_bom_is_read() -> None:
    text = "\ufeff" + HEADER.replace(",", ";") + (
        "1275014508900001;Siti Aminah;1990-08-05;F;12.75.01.1001;BPU;;pedagang;1000000;JKK JKM\r\n"
    )
    assert rows_from_csv(text) == [SITI]


def test_csv_blank_lines_are_skipped() -> None:
    line = "1275014508900001,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU,,pedagang,1000000,JKK JKM\n"
    assert rows_from_csv(HEADER + "\n" + line + "\n\n" + line) == [SITI, SITI]


def test_empty_csv_is_refused() -> None:
    with pytest.raises(ValueError, match="CSV is empty"):
        rows_from_csv("")
    with pytest.raises(ValueError, match="CSV is empty"):
        rows_from_csv("\n\n")


def test_csv_without_a_header_is_refused_without_repeating_the_data() -> None:
    line = "1275014508900001,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU,,,1000000,JKK JKM\n"
    with pytest.raises(ValueError, match="first line must name the columns") as raised:
        rows_from_csv(line)
    assert "1275014508900001" not in str(raised.value) and "Siti" not in str(raised.value)


def test_csv_with_an_unknown_column_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown column.*: npwp"):
        rows_from_csv(HEADER.rstrip("\n") + ",npwp\n")


def test_csv_without_a_required_column_is_refused() -> None:
    with pytest.raises(ValueError, match=r"lacks column\(s\): sex"):
        rows_from_csv(HEADER.replace("sex,", ""))


def test_csv_with_an_unnamed_column_is_refused() -> None:
    with pytest.raises(ValueError, match="no name for column 11"):
        rows_from_csv(HEADER.rstrip("\n") + ",\n")


def test_csv_with_a_repeated_column_is_refused() -> None:
    with pytest.raises(ValueError, match=r"repeats column\(s\): nik"):
        rows_from_csv("nik," + HEADER)


def test_csv_row_with_the_wrong_number_of_cells_is_refused() -> None:
    with pytest.raises(ValueError, match="CSV line 2: 3 cells, but the header names 10 columns"):
        rows_from_csv(HEADER + "1275014508900001,Siti Aminah,1990-08-05\n")


def test_csv_with_a_broken_quote_is_refused() -> None:
    with pytest.raises(ValueError, match="CSV line 2 cannot be read"):
        rows_from_csv(HEADER + '1275014508900001,"Siti" Aminah,1990-08-05,F,x,BPU,,,1,JKK\n')


def test_csv_with_a_megabyte_cell_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot be read"):
        rows_from_csv(HEADER + "1," + "A" * 1_000_000 + ",x,x,x,x,x,x,1,JKK\n")


def test_csv_with_more_rows_than_a_bulk_request_takes_is_refused() -> None:
    line = "1275014508900001,Siti Aminah,1990-08-05,F,12.75.01.1001,BPU,,,1000000,JKK JKM\n"
    assert len(rows_from_csv(HEADER + line * 3, max_rows=3)) == 3
    with pytest.raises(ValueError, match="more than 3 rows"):
        rows_from_csv(HEADER + line * 4, max_rows=3)


# --- what others see --------------------------------------------------------------------------


def test_masked_nik_shows_the_first_six_and_last_four_digits() -> None:
    assert mask_nik("1275014508900001") == "127501******0001"


def test_masked_name_shows_initials_only() -> None:
    assert mask_name("Siti Aminah") == "S*** A***"
    assert mask_name("  Sukarno ") == "S***"


def test_participant_record_is_shown_masked_without_birth_date_or_sex() -> None:
    record = {
        **SITI, "participant_id": uuid4(), "kpj": kpj_for(1), "status": "registered",
        "registered_on": TODAY,
    }
    shown = ParticipantOut.from_record(record).model_dump(mode="json")
    assert shown["nik"] == "127501******0001" and shown["full_name"] == "S*** A***"
    assert "birth_date" not in shown and "sex" not in shown


# --- membership number (KPJ) ------------------------------------------------------------------


def test_kpj_is_ten_digits_of_sequence_and_a_luhn_check_digit() -> None:
    assert domain.luhn_check_digit("7992739871") == "3"  # the textbook Luhn example
    assert kpj_for(1) == "00000000018"
    assert kpj_for(7992739871) == "79927398713"
    assert is_valid_kpj(kpj_for(123456))


def test_kpj_check_digit_catches_a_mistyped_digit() -> None:
    kpj = kpj_for(123456)
    for position in range(len(kpj)):
        typo = kpj[:position] + str((int(kpj[position]) + 1) % 10) + kpj[position + 1:]
        assert not is_valid_kpj(typo)


def test_kpj_sequence_must_fit_ten_digits() -> None:
    for sequence in (0, -1, 10**10):
        with pytest.raises(ValueError):
            kpj_for(sequence)


# --- PATCH ------------------------------------------------------------------------------------


def registration(base: dict[str, Any], **changes: Any) -> Registration:
    participant, errors = validate_row({**base, **changes}, TODAY, regions=REGIONS)
    assert participant is not None, errors
    return participant.to_registration()


def patch_errors(current: Registration, body: dict[str, Any]) -> list[dict[str, str]]:
    patch, errors = validate_patch(body, current, TODAY, regions=REGIONS)
    assert (patch is None) == bool(errors)
    return errors


def test_a_worker_may_move_to_another_village() -> None:
    patch, errors = validate_patch({"region_code": "34.71.01.1001"}, registration(SITI), TODAY,
                                   regions=REGIONS)
    assert errors == [] and patch is not None
    assert patch.changes() == {"region_code": "34.71.01.1001"}
    moved = domain.apply_change(registration(SITI), patch.changes())
    assert moved.region_code == "34.71.01.1001" and moved.nik == SITI["nik"]


def test_moving_to_a_district_code_is_refused() -> None:
    assert fields(patch_errors(registration(SITI), {"region_code": "12.75.01"})) == ["region_code"]


def test_leaving_wage_work_for_bpu_must_drop_the_employer_and_pension() -> None:
    assert patch_errors(registration(BUDI), {"segment": "BPU"}) == [
        {"field": "employer_id", "message": "must be null for BPU (no employer)"},
        {"field": "programs", "message": "BPU may not take JP"},
        {"field": "programs", "message": "BPU may not take JKP"},
    ]
    whole_change = {"segment": "BPU", "employer_id": None, "programs": ["JKK", "JKM", "JHT"]}
    assert patch_errors(registration(BUDI), whole_change) == []


def test_becoming_a_wage_earner_needs_an_employer() -> None:
    assert patch_errors(registration(SITI), {"segment": "PU"}) == [
        {"field": "employer_id", "message": "is required for PU"},
    ]


def test_removing_the_employer_of_a_wage_earner_is_refused() -> None:
    assert patch_errors(registration(BUDI), {"employer_id": None}) == [
        {"field": "employer_id", "message": "is required for PU"},
    ]


def test_bpu_income_lowered_below_one_million_is_refused() -> None:
    assert patch_errors(registration(SITI), {"monthly_income": 900_000}) == [
        {"field": "monthly_income", "message": "must be at least Rp 1,000,000 for BPU"},
    ]


def test_wage_earner_moving_to_bpu_keeps_a_wage_bpu_may_declare() -> None:
    rich = registration(BUDI, monthly_income=25_000_000)
    body = {"segment": "BPU", "employer_id": None, "programs": ["JKK", "JKM"]}
    assert fields(patch_errors(rich, body)) == ["monthly_income"]


def test_dropping_jkm_is_refused() -> None:
    assert patch_errors(registration(SITI), {"programs": ["JKK", "JHT"]}) == [
        {"field": "programs", "message": "must include JKM (required for BPU)"},
    ]


def test_taking_up_job_loss_at_54_is_refused() -> None:
    older = registration(BUDI, programs=["JKK", "JKM", "JHT", "JP"], **born(date(1971, 6, 1)))
    assert fields(patch_errors(older, {"programs": ["JKK", "JKM", "JHT", "JP", "JKP"]})) == [
        "programs"
    ]


def test_a_member_already_in_job_loss_keeps_it_past_54() -> None:
    # Enrolled in JKP years ago; 55 today.
    enrolled_young = dataclasses.replace(
        registration(BUDI), nik="1275010106700003", birth_date=date(1970, 6, 1)
    )
    assert patch_errors(enrolled_young, {"monthly_income": 5_000_000}) == []
    assert patch_errors(enrolled_young, {"programs": ["JKK", "JKM", "JP", "JKP"]}) == []


def test_identity_cannot_be_patched() -> None:
    assert patch_errors(registration(SITI), {"nik": "1275014508900002"}) == [
        {"field": "nik", "message": "is not a field of this request"},
    ]
    assert check_change(registration(SITI), {"full_name": "X"}, regions=REGIONS, today=TODAY) == [
        FieldError("full_name", "cannot be changed; only region_code, segment, employer_id, "
                                "monthly_income, programs can"),
    ]


def test_an_empty_patch_is_refused() -> None:
    expected = "nothing to change; give any of region_code, segment, employer_id, " \
               "monthly_income, programs"
    assert patch_errors(registration(SITI), {}) == [{"field": "", "message": expected}]
    assert check_change(registration(SITI), {}, regions=REGIONS, today=TODAY) == [
        FieldError("", expected)
    ]


def test_patch_may_not_null_what_every_member_has() -> None:
    body = {"region_code": None, "segment": None, "monthly_income": None, "programs": None}
    assert patch_errors(registration(SITI), body) == [
        {"field": f, "message": "may not be null"}
        for f in ("region_code", "segment", "monthly_income", "programs")
    ]


def test_patch_income_keeps_strict_types() -> None:
    assert patch_errors(registration(SITI), {"monthly_income": "2000000"}) == [
        {"field": "monthly_income", "message": "Input should be a valid integer"},
    ]


def test_patch_checks_only_rules_touching_what_changed() -> None:
    # Registered when the floor was lower (or by hand): a move of village is still allowed.
    old_terms = dataclasses.replace(registration(SITI), monthly_income=1)
    assert patch_errors(old_terms, {"region_code": "12.75.01.1002"}) == []
