"""Request models of the contributions API: types and lengths here, the rules in payments.py."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from services.contributions.payments import Payer
from shared.problems import errors_of
from shared.text import NoControls
from shared.vocabulary import FundingCode, Program

MAX_BULK_LINES = 10_000

# Every text field refuses control characters first (shared/text.py), with one message.
PaymentRef = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$"), NoControls
]

AgentId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"), NoControls]
UUID_FIELDS = ("participant_id", "programme_id")


class PaymentIn(BaseModel):
    """POST /v1/contributions, and each line of POST /v1/contributions/bulk."""

    model_config = ConfigDict(extra="forbid", strict=True)

    payment_ref: PaymentRef
    participant_id: uuid.UUID = Field(json_schema_extra={"format": "uuid"})
    first_period: Annotated[str, Field(max_length=7, examples=["2026-11"]), NoControls]
    months: int
    amount: int
    payer: Payer
    # Government and CSR payers name how the money is funded (DOMAIN.md): SG, SD, SA, SL, SC, SB.
    funding_code: Annotated[str, Field(max_length=2), NoControls] | None = None
    # The funded programme that pays (its payer and funding code must be the programme's).
    programme_id: uuid.UUID | None = Field(default=None, json_schema_extra={"format": "uuid"})
    # The PERISAI agent who collected the money.
    agent_id: AgentId | None = None

    _digest: bytes = PrivateAttr(default=b"")

    def request_hash(self) -> bytes:
        """What makes two requests with one payment_ref the same request: the line as sent,
        keys sorted (set by parse_line; computed from the fields otherwise)."""
        if not self._digest:
            self._digest = _digest(self.model_dump(mode="json"))
        return self._digest


def _digest(line: dict[str, Any]) -> bytes:
    return hashlib.sha256(orjson.dumps(line, option=orjson.OPT_SORT_KEYS)).digest()


def parse_line(raw: Any) -> tuple[PaymentIn | None, list[dict[str, str]]]:
    if not isinstance(raw, dict):
        return None, [{"field": "", "message": "a contribution must be a JSON object"}]
    try:
        sent = raw
        for name in UUID_FIELDS:
            if isinstance(raw.get(name), str):
                # JSON has no UUID type: accept the string form under strict validation.
                try:
                    raw = {**raw, name: _uuid(raw[name])}
                except ValueError:
                    return None, [{"field": name, "message": "must be a UUID"}]
        line = PaymentIn.model_validate(raw)
        line._digest = _digest({**sent, **{name: str(raw[name]) for name in UUID_FIELDS
                                           if isinstance(raw.get(name), uuid.UUID)}})
        return line, []
    except ValidationError as exc:
        return None, errors_of(exc)


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)



# --- funded programmes ------------------------------------------------------------------------


class ProgrammeIn(BaseModel):
    """POST /v1/programmes: `months` months funded from `first_period` (default January of
    `year`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1, max_length=200), NoControls]
    funder_region: Annotated[str, Field(min_length=2, max_length=13, examples=["12.75"]),
                             NoControls]
    year: Annotated[int, Field(ge=2000, le=2100)]
    quota: Annotated[int, Field(ge=1, le=10_000_000)]
    budget_rupiah: Annotated[int, Field(ge=0, le=10**15)]
    funding_code: FundingCode
    programs: Annotated[list[Program], Field(min_length=1, max_length=5)]
    months: Annotated[int, Field(ge=1, le=12)]
    first_period: Annotated[str, Field(max_length=7, examples=["2026-01"]),
                            NoControls] | None = None


class ProgrammeChangeIn(BaseModel):
    """PATCH /v1/programmes/{id}: the name, quota and budget may change; its region, funding
    code, programmes and months may not (enrolments and payments stand on them)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1, max_length=200), NoControls] | None = None
    quota: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    budget_rupiah: Annotated[int, Field(ge=0, le=10**15)] | None = None


class EnrolmentIn(BaseModel):
    """One enrolment: POST /v1/programmes/{id}/enrolments, and each row of its bulk form."""

    model_config = ConfigDict(extra="forbid")

    participant_id: uuid.UUID


def parse_enrolment(raw: Any) -> tuple[EnrolmentIn | None, list[dict[str, str]]]:
    if not isinstance(raw, dict):
        return None, [{"field": "", "message": "an enrolment must be a JSON object"}]
    try:
        return EnrolmentIn.model_validate(raw), []
    except ValidationError as exc:
        return None, errors_of(exc)
