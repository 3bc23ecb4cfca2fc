"""The event envelope and the payloads carried in it.

One envelope for every topic (CloudEvents names): id, type, version (of the payload schema),
source, occurred_at, subject (the aggregate id, also the Kafka key), sequence (the aggregate's
version: 1, 2, 3 ... per subject and source) and data. JSON on the wire.

No personal data in any event: no NIK, no names, no birth dates. Consumers ignore fields they
do not know, so payloads can grow without breaking anyone.

A Kafka message carries one envelope (a JSON object, keyed by its subject) or a batch: a JSON
array of envelopes, in order, all of whose subjects hash to the message's partition (the relay
sends them so, shared/outbox.py). Either way one subject's events stay in one partition, in
order. Consumers read both with `decode_message`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.logs import current_request_id
from shared.vocabulary import (
    Channel,
    ClaimStatus,
    EmployerKind,
    FundingCode,
    MembershipStatus,
    Program,
    Segment,
)


class Payload(BaseModel):
    TYPE: ClassVar[str] = ""

    model_config = ConfigDict(extra="ignore", frozen=True)


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: uuid.UUID
    type: str
    version: int = 1
    source: str
    occurred_at: datetime
    subject: str
    sequence: int = Field(ge=1)
    data: dict[str, Any]
    # The id of the HTTP request that caused the event (X-Request-ID), to follow one change
    # through the services' logs; None for what time or another event caused.
    correlation_id: str | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)


# --- participant events (topic ucj.participants, source "registration") ---------------------


class ParticipantState(Payload):
    """What other services may know of a participant: where and how they are covered."""

    participant_id: uuid.UUID
    kpj: str
    region_code: str
    segment: Segment
    employer_id: str | None = None
    monthly_income: int
    programs: list[Program]
    registered_on: str  # ISO date
    # The birth month (YYYY-MM), never the day: claims judges age rules (JHT at 56, the JP
    # pension age) by month, and the birth date stays personal data in registration only.
    born_in: str | None = None
    # The partner that registered the worker (its partner id): reads of the worker's claims
    # follow the same ownership rule as the worker.
    owner: str | None = None
    # How the worker was registered (issue 11): the channel, and who within it: the PERISAI
    # agent's id on the `agent` channel, the office's village code on `village_office`.
    channel: Channel = "partner_api"
    agent_id: str | None = None
    office_village: str | None = None


class ParticipantRegistered(ParticipantState):
    TYPE: ClassVar[str] = "participant.registered"


class ParticipantChanged(ParticipantState):
    """The participant after a change; `changed` names the fields that moved."""

    TYPE: ClassVar[str] = "participant.changed"
    changed: list[str]


class ParticipantDeregistered(Payload):
    TYPE: ClassVar[str] = "participant.deregistered"
    participant_id: uuid.UUID
    reason: str


# --- membership status events (topic ucj.memberships, source "contributions" or "claims") ----


class MembershipStatusChanged(Payload):
    TYPE: ClassVar[str] = "membership.status_changed"
    participant_id: uuid.UUID
    status: MembershipStatus
    paid_through: str | None = None  # YYYY-MM
    reason: str | None = None


class ContributionPaid(Payload):
    """Months paid for a participant (first..last) on one day, with each programme's share:
    what claims needs to judge eligibility on past dates (paid months, JHT and JP balances)."""

    TYPE: ClassVar[str] = "contribution.paid"
    participant_id: uuid.UUID
    first_period: str  # YYYY-MM
    last_period: str  # YYYY-MM
    paid_on: str  # ISO date
    amount: int
    by_program: dict[str, int]  # rupiah per programme, e.g. {"JKK": 10000, "JKM": 6800}
    # Months of this membership paid in all, this payment included (the KPI counts a worker
    # after 6, DOMAIN.md); None from producers before issue 11.
    months_paid: int | None = None
    payer: str | None = None  # self | employer | government | csr
    funding_code: FundingCode | None = None
    programme_id: uuid.UUID | None = None  # the funded programme that paid, if one did
    agent_id: str | None = None  # the PERISAI agent who collected it, if one did


class ProgrammeEnrolmentChanged(Payload):
    """A worker's enrolment in a funded programme for the months first..last (topic
    ucj.memberships, source contributions, subject the participant): `enrolled` false when the
    enrolment was withdrawn."""

    TYPE: ClassVar[str] = "programme.enrolment_changed"
    participant_id: uuid.UUID
    programme_id: uuid.UUID
    first_period: str  # YYYY-MM
    last_period: str  # YYYY-MM
    enrolled: bool = True


# --- organisations (topic ucj.organisations; subject the employer's or programme's id) --------
# Reference data others count against: employers (OPDs included) with the workers they declare,
# and funded programmes with their quota and budget. Names of agencies and companies are not
# personal data.


class DeclaredWorkers(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    year: int
    count: int
    source: str | None = None


class EmployerState(Payload):
    """An employer (source registration) as it is now."""

    employer_id: uuid.UUID
    name: str
    kind: EmployerKind
    region_code: str
    npp: str | None = None
    declared_workers: list[DeclaredWorkers] = []


class EmployerRegistered(EmployerState):
    TYPE: ClassVar[str] = "employer.registered"


class EmployerChanged(EmployerState):
    TYPE: ClassVar[str] = "employer.changed"


class ProgrammeState(Payload):
    """A funded programme (source contributions) as it is now."""

    programme_id: uuid.UUID
    name: str
    funder_region: str
    year: int
    quota: int
    budget_rupiah: int
    funding_code: FundingCode
    programs: list[Program]
    first_period: str  # YYYY-MM
    last_period: str  # YYYY-MM


class ProgrammeCreated(ProgrammeState):
    TYPE: ClassVar[str] = "programme.created"


class ProgrammeChanged(ProgrammeState):
    TYPE: ClassVar[str] = "programme.changed"


# --- claim events (topic ucj.claims, source "claims"; subject: the claim id) -----------------


class ClaimState(Payload):
    claim_id: uuid.UUID
    participant_id: uuid.UUID
    program: Program
    status: ClaimStatus
    region_code: str
    benefit_amount: int | None = None  # rupiah, when the benefit is one sum
    reason: str | None = None


class ClaimSubmitted(ClaimState):
    TYPE: ClassVar[str] = "claim.submitted"


class ClaimDecided(ClaimState):
    TYPE: ClassVar[str] = "claim.decided"


PAYLOADS: dict[str, type[Payload]] = {
    ParticipantRegistered.TYPE: ParticipantRegistered,
    ParticipantChanged.TYPE: ParticipantChanged,
    ParticipantDeregistered.TYPE: ParticipantDeregistered,
    MembershipStatusChanged.TYPE: MembershipStatusChanged,
    ContributionPaid.TYPE: ContributionPaid,
    ClaimSubmitted.TYPE: ClaimSubmitted,
    ClaimDecided.TYPE: ClaimDecided,
    ProgrammeEnrolmentChanged.TYPE: ProgrammeEnrolmentChanged,
    EmployerRegistered.TYPE: EmployerRegistered,
    EmployerChanged.TYPE: EmployerChanged,
    ProgrammeCreated.TYPE: ProgrammeCreated,
    ProgrammeChanged.TYPE: ProgrammeChanged,
}


class UnknownEventType(ValueError):
    pass


def make_envelope(
    payload: Payload, *, source: str, subject: str, sequence: int,
    occurred_at: datetime | None = None,
) -> Envelope:
    return Envelope(
        id=uuid.uuid4(),
        type=payload.TYPE,
        version=1,
        source=source,
        occurred_at=occurred_at or datetime.now(UTC),
        subject=subject,
        sequence=sequence,
        data=payload.model_dump(mode="json"),
        correlation_id=current_request_id(),
    )


def envelope_bytes(payload_type: type[Payload], data: dict[str, Any], *, source: str,
                   subject: str, sequence: int, occurred_at: datetime | None = None) -> bytes:
    """The wire form of make_envelope(...).to_bytes() without building pydantic models, for
    writes of thousands of events at once. `data` must hold the payload's fields, JSON-ready;
    tests check that the result decodes to the same envelope and payload."""
    return orjson.dumps({
        "id": str(uuid.uuid4()), "type": payload_type.TYPE, "version": 1, "source": source,
        "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(), "subject": subject,
        "sequence": sequence, "data": data, "correlation_id": current_request_id(),
    })


def parse_payload(envelope: Envelope) -> Payload:
    """The typed payload of an envelope; raises UnknownEventType or pydantic's ValidationError."""
    model = PAYLOADS.get(envelope.type)
    if model is None:
        raise UnknownEventType(f"unknown event type {envelope.type!r}")
    return model.model_validate(envelope.data)


def decode(raw: bytes) -> tuple[Envelope, Payload]:
    """Envelope and payload from the wire; raises ValueError with a reason when malformed."""
    try:
        envelope = Envelope.from_bytes(raw)
        return envelope, parse_payload(envelope)
    except ValidationError as exc:
        raise ValueError(
            f"malformed event: {exc.errors(include_url=False, include_input=False)}") from exc


def _with_payload(envelope: Envelope) -> tuple[bytes, Decoded]:
    try:
        return b"", (envelope, parse_payload(envelope))
    except UnknownEventType as exc:
        return b"", exc
    except ValidationError as exc:
        problem = ValueError(
            f"malformed event: {exc.errors(include_url=False, include_input=False)}")
        return envelope.to_bytes(), problem


def events_in(raw: bytes | None) -> list[bytes]:
    """The wire form of each event in one Kafka message: the message itself, or the elements
    of a batch. Raises ValueError when a batch is not a JSON array (the whole message is then
    malformed); a malformed element is left for `decode` to refuse on its own."""
    if not raw or raw[:1] != b"[":
        return [raw or b""]
    try:
        items = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"malformed batch of events: {exc}") from exc
    return [orjson.dumps(item) for item in items]


def event_bytes_in(raw: bytes | None, index: int) -> bytes:
    """The bytes of the index-th event of a message (the order of `decode_message`)."""
    try:
        return events_in(raw)[index]
    except (ValueError, IndexError):
        return raw or b""


Decoded = tuple[Envelope, Payload] | ValueError


_BATCH = TypeAdapter(list[Envelope])


def decode_message(raw: bytes | None) -> list[tuple[bytes, Decoded]]:
    """Every event of one Kafka message, in order, each with its envelope and payload or why
    it cannot be read: UnknownEventType (skip it) or another ValueError (a dead letter, with
    these bytes). A batch that is not a JSON array is one malformed event.

    A batch whose envelopes are all well formed is validated in one call (a third faster per
    event than one by one). Its readable events then come with empty bytes: a consumer that
    needs them (a dead letter's hash) takes `envelope.to_bytes()`. Otherwise each element is
    decoded on its own, with its bytes."""
    if raw and raw[:1] == b"[":
        try:
            envelopes = _BATCH.validate_json(raw)
        except ValidationError:
            pass  # some element is malformed: element by element, below
        else:
            return [_with_payload(envelope) for envelope in envelopes]
    try:
        parts = events_in(raw)
    except ValueError as exc:
        return [(raw or b"", exc)]
    out: list[tuple[bytes, Decoded]] = []
    for part in parts:
        try:
            out.append((part, decode(part)))
        except ValueError as exc:  # UnknownEventType included
            out.append((part, exc))
    return out
