"""Text hygiene (shared/text.py): what no text field of a request may hold, and that every
text field of every request body is checked for it."""

from __future__ import annotations

import typing
import uuid
from typing import Annotated

import pytest
from pydantic import BaseModel, Field, ValidationError

from services.contributions.schemas import PaymentIn, parse_line
from services.coverage.api import WorkforceIn
from services.registration.schemas import (
    DeclaredWorkersIn,
    EmployerIn,
    ParticipantIn,
    ParticipantPatch,
)
from shared.text import (
    CONTROL_CHARACTERS,
    CleanMultilineText,
    CleanText,
    NoControls,
    control_character,
    refuse_controls,
)

C0_BUT_TAB = [chr(c) for c in range(0x20) if c != 0x09]
C1 = [chr(c) for c in range(0x80, 0xA0)]
LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
REFUSED = C0_BUT_TAB + ["\x7f"] + C1 + LONE_SURROGATES


@pytest.mark.parametrize("char", REFUSED, ids=[f"U+{ord(c):04X}" for c in REFUSED])
def test_c0_and_c1_controls_del_and_lone_surrogates_are_refused(char: str) -> None:
    assert control_character(f"Siti{char}Aminah") == f"U+{ord(char):04X}"
    assert control_character(char) == f"U+{ord(char):04X}"


def test_the_first_refused_character_is_named() -> None:
    assert control_character("a\tb\x1bc\x00") == "U+001B"


@pytest.mark.parametrize("text", [
    "Siti Aminah", "", " ", "Siti\tAminah", "Ñoño Ōtsuka", "Nguyễn Thị Ánh", "سيتي",
    "王小明", "Siti 👩🏽‍🌾", "Jl.\u00a0Merdeka", "BPS Sakernas (Agustus 2024)", "x" * 10_000,
    "a\u200bb",  # zero-width space: a format character, not a control
])
def test_printable_text_of_any_script_and_tab_are_clean(text: str) -> None:
    assert control_character(text) is None
    assert refuse_controls(text) == text


def test_line_breaks_are_clean_only_in_multi_line_text() -> None:
    assert control_character("baris satu\nbaris dua") == "U+000A"
    assert control_character("baris satu\r\nbaris dua") == "U+000D"
    assert control_character("baris satu\r\nbaris dua\n", multiline=True) is None
    for char in ("\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\ud800"):
        assert control_character(f"satu\n{char}", multiline=True) == f"U+{ord(char):04X}"


class _Note(BaseModel):
    title: Annotated[str, Field(max_length=5), NoControls]
    body: CleanMultilineText | None = None
    tag: CleanText | None = None


def _errors(**fields: object) -> list[tuple[str, str, str]]:
    try:
        _Note.model_validate(fields)
    except ValidationError as exc:
        return [(".".join(map(str, e["loc"])), e["type"], e["msg"]) for e in exc.errors()]
    return []


def test_a_field_with_a_control_character_is_refused_by_name_without_echoing_it() -> None:
    assert _errors(title="a\x00b") == [("title", "control_character", CONTROL_CHARACTERS)]
    assert _errors(title="ok", tag="\x1b[31m") == [
        ("tag", "control_character", CONTROL_CHARACTERS)]


def test_a_control_character_is_reported_before_the_fields_own_constraints() -> None:
    assert _errors(title="x" * 100 + "\x00") == [
        ("title", "control_character", CONTROL_CHARACTERS)]
    # and the constraint keeps pydantic's own message
    assert _errors(title="x" * 6) == [
        ("title", "string_too_long", "String should have at most 5 characters")]


def test_multi_line_fields_take_line_breaks_and_null_stays_null() -> None:
    assert _errors(title="ok", body="satu\r\ndua", tag=None) == []
    assert _errors(title="ok", body="satu\x00") == [
        ("body", "control_character", CONTROL_CHARACTERS)]


def test_what_is_not_text_is_left_to_the_type_check() -> None:
    [(field, kind, _)] = _errors(title=12)
    assert (field, kind) == ("title", "string_type")


# --- every text field of every request body ---------------------------------------------------


def _text_fields(model: type[BaseModel]) -> list[str]:
    def is_text(annotation: object) -> bool:
        if annotation is str:
            return True
        return any(is_text(arg) for arg in typing.get_args(annotation))

    return [name for name, info in model.model_fields.items() if is_text(info.annotation)]


SITI = {"nik": "1275014508900001", "full_name": "Siti Aminah", "birth_date": "1990-08-05",
        "sex": "F", "region_code": "12.75.01.1001", "segment": "BPU", "employer_id": "NPP-1",
        "occupation": "pedagang", "monthly_income": 1_000_000, "programs": ["JKK", "JKM"],
        "agent_id": "perisai-007", "office_village": "12.75.01.1002"}
EMPLOYER = {"name": "Dinas Kebersihan", "kind": "opd", "region_code": "12.75", "npp": "1275-1"}
DECLARED = {"year": 2025, "count": 310, "source": "SK Walikota"}
PAYMENT = {"payment_ref": "VA-1", "participant_id": uuid.uuid4(), "first_period": "2026-11",
           "months": 1, "amount": 16_800, "payer": "government", "funding_code": "SD",
           "agent_id": "AGT-1"}
WORKFORCE = {"workforce": 132826, "year": 2024, "source": "BPS Sakernas"}


@pytest.mark.parametrize("model, valid, expected", [
    (ParticipantIn, SITI, ["nik", "full_name", "region_code", "employer_id", "occupation",
                           "agent_id", "office_village"]),
    (EmployerIn, EMPLOYER, ["name", "region_code", "npp"]),
    (DeclaredWorkersIn, DECLARED, ["source"]),
    (ParticipantPatch, {"region_code": "12.75.01.1001", "employer_id": "NPP-1"},
     ["region_code", "employer_id"]),
    (PaymentIn, PAYMENT, ["payment_ref", "first_period", "funding_code", "agent_id"]),
    (WorkforceIn, WORKFORCE, ["source"]),
], ids=lambda v: v.__name__ if isinstance(v, type) else "")
def test_every_text_field_of_every_request_refuses_control_characters(
        model: type[BaseModel], valid: dict, expected: list[str]) -> None:
    assert _text_fields(model) == expected  # a new text field must be added here, and checked
    for field in expected:
        for char in ("\x00", "\x1f", "\x7f", "\x9f", "\ud800"):
            with pytest.raises(ValidationError) as caught:
                model.model_validate({**valid, field: f"{valid[field]}{char}"})
            assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [
                ((field,), CONTROL_CHARACTERS)]


def test_a_payment_line_names_the_field_with_a_control_character() -> None:
    line, errors = parse_line({**PAYMENT, "participant_id": str(PAYMENT["participant_id"]),
                               "payment_ref": "VA\x00-1"})
    assert line is None
    assert errors == [{"field": "payment_ref", "message": CONTROL_CHARACTERS}]
