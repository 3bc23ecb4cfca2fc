"""Request and response bodies of the registration API (CONTRACT.md, "Registration service").

Pydantic checks types and lengths; the rules live in domain.py. `validate_row` and
`validate_patch` run both and give `{"field", "message"}` errors, so a single registration and
each row of a bulk request are judged the same way, each row on its own.

Requests are strict (no "1000000" for an integer, no 1.0 or true either) and refuse unknown
fields: on a write API a misspelt optional field must not be silently dropped.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from services.registration import domain
from services.registration.domain import Sex
from shared.problems import errors_of
from shared.regions import RegionDirectory, directory
from shared.text import NoControls
from shared.vocabulary import PROGRAMS, Program, Segment

MAX_BULK_ROWS = 10_000
FULL_NAME_MAX_CHARS = 200
REGION_CODE_MAX_CHARS = 20
EMPLOYER_ID_MAX_CHARS = 64
OCCUPATION_MAX_CHARS = 100
# Long enough for any mistyped NIK to get domain.check_nik's own message, short enough that
# a megabyte "NIK" stops here.
NIK_MAX_CHARS = 64
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: object) -> object:
    """Dates are ISO YYYY-MM-DD strings only: not timestamps, not other ISO 8601 spellings."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError("is not a calendar date") from None
    raise ValueError("must be a date written YYYY-MM-DD")


def _each_once(programs: list[Program]) -> list[Program]:
    for program in dict.fromkeys(programs):
        if programs.count(program) > 1:
            raise ValueError(f"{program} is listed more than once")
    return programs


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
Programs = Annotated[
    list[Program], Field(max_length=len(PROGRAMS)), AfterValidator(_each_once)
]
# Every text field refuses control characters (shared/text.py: NoControls, after the Field).
RegionCode = Annotated[
    str, Field(max_length=REGION_CODE_MAX_CHARS, examples=["12.75.01.1001"]), NoControls
]
EmployerId = Annotated[str, Field(max_length=EMPLOYER_ID_MAX_CHARS), NoControls]


class ParticipantIn(BaseModel):
    """POST /v1/participants, and each row of POST /v1/participants/bulk."""

    model_config = ConfigDict(extra="forbid", strict=True)

    nik: Annotated[
        str, Field(max_length=NIK_MAX_CHARS, examples=["1275014508900001"]), NoControls
    ]
    full_name: Annotated[str, Field(max_length=FULL_NAME_MAX_CHARS), NoControls]
    birth_date: IsoDate
    sex: Sex
    region_code: RegionCode
    segment: Segment
    employer_id: EmployerId | None = None
    occupation: Annotated[str, Field(max_length=OCCUPATION_MAX_CHARS), NoControls] | None = None
    monthly_income: int
    programs: Programs

    def to_registration(self) -> domain.Registration:
        return domain.Registration(
            nik=self.nik,
            full_name=self.full_name,
            birth_date=self.birth_date,
            sex=self.sex,
            region_code=self.region_code,
            segment=self.segment,
            employer_id=self.employer_id,
            occupation=self.occupation,
            monthly_income=self.monthly_income,
            programs=tuple(self.programs),
        )


class ParticipantPatch(BaseModel):
    """PATCH /v1/participants/{id}: any of these, at least one. Only employer_id may be null."""

    model_config = ConfigDict(extra="forbid", strict=True)

    region_code: RegionCode | None = None
    segment: Segment | None = None
    employer_id: EmployerId | None = None
    monthly_income: int | None = None
    programs: Programs | None = None

    @field_validator("region_code", "segment", "monthly_income", "programs", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for fields present in the body: absent means "unchanged", null is refused.
        if value is None:
            raise ValueError("may not be null")
        return value

    @model_validator(mode="after")
    def _something_to_change(self) -> ParticipantPatch:
        if not self.model_fields_set:
            raise ValueError(
                "nothing to change; give any of " + ", ".join(domain.CHANGEABLE_FIELDS)
            )
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the body named, with their new values."""
        return self.model_dump(exclude_unset=True)


# POST /v1/participants/lookup (no docstring: it would become the schema's description).
class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    nik: Annotated[str, Field(min_length=16, max_length=16, pattern=r"^[0-9]{16}$")]


# POST /v1/participants/{id}/grants: the key whose partner gets access.
class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    key_id: Annotated[str, Field(min_length=1, max_length=100), NoControls]


# --- responses --------------------------------------------------------------------------------


class Registered(BaseModel):
    participant_id: uuid.UUID
    kpj: str
    status: Literal["registered"] = "registered"


class ParticipantOut(BaseModel):
    """GET /v1/participants/{id}: NIK and name masked.

    Birth date and sex are left out: with them the masked NIK could be rebuilt in full, since
    its hidden digits 7-12 are the birth date with 40 added to the day for women.
    """

    participant_id: uuid.UUID
    kpj: str
    nik: str
    full_name: str
    region_code: str
    segment: Segment
    employer_id: str | None
    occupation: str | None
    monthly_income: int
    programs: list[Program]
    status: Literal["registered", "terminated"]
    registered_on: date

    @classmethod
    def from_record(cls, record: Any) -> ParticipantOut:
        """From any mapping-like record with these field names; masks NIK and name."""
        return cls(
            participant_id=record["participant_id"],
            kpj=record["kpj"],
            nik=domain.mask_nik(record["nik"]),
            full_name=domain.mask_name(record["full_name"]),
            region_code=record["region_code"],
            segment=record["segment"],
            employer_id=record["employer_id"],
            occupation=record["occupation"],
            monthly_income=record["monthly_income"],
            programs=list(record["programs"]),
            status=record["status"],
            registered_on=record["registered_on"],
        )


# --- validation: types, then rules ------------------------------------------------------------

def validate_row(
    raw: object, today: date, *, regions: RegionDirectory | None = None
) -> tuple[ParticipantIn | None, list[dict[str, str]]]:
    """One registration (a single POST or one bulk row): the participant or its errors.

    Types come first; the rules run only on a well-typed row, since they need its values.
    """
    if not isinstance(raw, dict):
        return None, [{"field": "", "message": "a participant must be a JSON object"}]
    try:
        participant = ParticipantIn.model_validate(raw)
    except ValidationError as exc:
        return None, errors_of(exc)
    problems = domain.check_registration(
        participant.to_registration(), regions=regions or directory(), today=today
    )
    if problems:
        return None, [p.as_dict() for p in problems]
    return participant, []


def validate_patch(
    raw: object,
    current: domain.Registration,
    today: date,
    *,
    regions: RegionDirectory | None = None,
) -> tuple[ParticipantPatch | None, list[dict[str, str]]]:
    """A PATCH body against the participant as it is now: the patch or its errors."""
    if not isinstance(raw, dict):
        return None, [{"field": "", "message": "the body must be a JSON object"}]
    try:
        patch = ParticipantPatch.model_validate(raw)
    except ValidationError as exc:
        return None, errors_of(exc)
    problems = domain.check_change(
        current, patch.changes(), regions=regions or directory(), today=today
    )
    if problems:
        return None, [p.as_dict() for p in problems]
    return patch, []
