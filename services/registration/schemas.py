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

from services.registration import domain, employers
from services.registration.domain import Sex
from shared.problems import errors_of
from shared.regions import RegionDirectory, directory
from shared.text import NoControls
from shared.vocabulary import PROGRAMS, Channel, EmployerKind, Program, Segment

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
AGENT_ID_MAX_CHARS = 64  # domain.AGENT_ID_PATTERN says 40; longer gets its message too


def _canonical_employer_id(value: str) -> str:
    """An employer id in the one spelling it is stored with (lower-case UUID), so that the
    same employer named in capitals is the same employer; anything else is left for the rules
    (domain.check_employer) to refuse."""
    return str(uuid.UUID(value)) if domain.is_employer_id(value) else value


def _default_channel(value: object) -> object:
    return "partner_api" if value is None else value


EmployerId = Annotated[str, Field(max_length=EMPLOYER_ID_MAX_CHARS), NoControls,
                       AfterValidator(_canonical_employer_id)]
ChannelIn = Annotated[Channel, BeforeValidator(_default_channel)]


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
    # How the worker came (issue 11): absent or null is partner_api.
    channel: ChannelIn = "partner_api"
    agent_id: Annotated[str, Field(max_length=AGENT_ID_MAX_CHARS), NoControls] | None = None
    office_village: RegionCode | None = None

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
            channel=self.channel,
            agent_id=self.agent_id,
            office_village=self.office_village,
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
    channel: Channel = "partner_api"
    agent_id: str | None = None
    office_village: str | None = None

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
            channel=record.get("channel") or "partner_api",
            agent_id=record.get("agent_id"),
            office_village=record.get("office_village"),
        )


# --- employers --------------------------------------------------------------------------------


class DeclaredWorkersIn(BaseModel):
    """PUT /v1/employers/{id}/declared-workers, and `declared_workers` of POST /v1/employers:
    the workers an employer declares for one year."""

    model_config = ConfigDict(extra="forbid", strict=True)

    year: int
    count: int
    source: Annotated[str, Field(max_length=employers.SOURCE_MAX_CHARS), NoControls] | None = None

    def to_declared(self) -> employers.Declared:
        return employers.Declared(self.year, self.count, self.source)


class EmployerIn(BaseModel):
    """POST /v1/employers."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(max_length=employers.NAME_MAX_CHARS), NoControls]
    kind: EmployerKind
    region_code: RegionCode
    npp: Annotated[str, Field(max_length=64), NoControls] | None = None
    declared_workers: DeclaredWorkersIn | None = None

    def to_employer(self) -> employers.Employer:
        declared = () if self.declared_workers is None else (self.declared_workers.to_declared(),)
        return employers.Employer(self.name, self.kind, self.region_code, self.npp, declared)


class DeclaredWorkersOut(BaseModel):
    year: int
    count: int
    source: str | None


class EmployerOut(BaseModel):
    employer_id: uuid.UUID
    name: str
    kind: EmployerKind
    region_code: str
    npp: str | None
    declared_workers: list[DeclaredWorkersOut]
    registered_on: date


class EmployerPage(BaseModel):
    items: list[EmployerOut]
    next_cursor: str | None


def validate_employer(raw: object, *, regions: RegionDirectory | None = None
                      ) -> tuple[EmployerIn | None, list[dict[str, str]]]:
    """A POST /v1/employers body: the employer or its errors."""
    if not isinstance(raw, dict):
        return None, [{"field": "", "message": "an employer must be a JSON object"}]
    try:
        employer = EmployerIn.model_validate(raw)
    except ValidationError as exc:
        return None, errors_of(exc)
    problems = employers.check_employer(employer.to_employer(), regions=regions or directory())
    if problems:
        return None, [p.as_dict() for p in problems]
    return employer, []


def validate_declared(raw: object) -> tuple[employers.Declared | None, list[dict[str, str]]]:
    """A PUT /v1/employers/{id}/declared-workers body: the figure or its errors."""
    if not isinstance(raw, dict):
        return None, [{"field": "", "message": "the body must be a JSON object"}]
    try:
        declared = DeclaredWorkersIn.model_validate(raw).to_declared()
    except ValidationError as exc:
        return None, errors_of(exc)
    problems = employers.check_declared(declared, field="")
    if problems:
        return None, [{"field": p.field.removeprefix("."), "message": p.message}
                      for p in problems]
    return declared, []


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


_CHANNEL_FIELDS = ("channel", "agent_id", "office_village")
_FIXED_AT_REGISTRATION = "cannot be changed: it records how the worker was registered"


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
        return None, [{"field": e["field"], "message": _FIXED_AT_REGISTRATION}
                      if e["field"] in _CHANNEL_FIELDS else e for e in errors_of(exc)]
    problems = domain.check_change(
        current, patch.changes(), regions=regions or directory(), today=today
    )
    if problems:
        return None, [p.as_dict() for p in problems]
    return patch, []
