"""The registration service's use cases: register one worker or a bulk of them, change one,
read one, look a NIK up, grant another partner access. Over a `RegistrationUnit` (one
transaction: the participants, their events, the Idempotency-Keys, the grants), so that the
rules of the flow are tested with an in-memory fake (tests/unit/test_registration_handlers.py)
and the SQL lives in store.py alone.

- Registering: a NIK with a live membership is 409 (one registration) or a rejected row (bulk),
  with the existing participant's id. With an Idempotency-Key the work and the key's record
  commit together, so the work happens once per key: the same request again gets the first
  answer, byte for byte; the same key with another request is 422.
- Reading and changing: a worker is visible to the partner that registered it, to partners it
  was granted to, and to admins; to anyone else it does not exist (404). A change publishes
  participant.changed with the fields that really changed; a terminated membership is 409.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import orjson

from services.registration import access, domain
from services.registration.schemas import ParticipantIn, validate_patch, validate_row
from shared.auth import Caller
from shared.problems import Problem, validation_problem

# A participant as the store gives it (PARTICIPANT_COLUMNS in store.py; a dict in the tests).
Participant = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one registration: created, or a duplicate of a live participant."""

    participant_id: uuid.UUID
    kpj: str | None
    created: bool


@dataclass(frozen=True, slots=True)
class Reply:
    """An answer to a registering request: status and JSON body. Kept as bytes, since a replay
    under an Idempotency-Key returns the stored body as it is."""

    status: int
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """An Idempotency-Key and the request it came with: its route and body, hashed."""

    key: str
    request_hash: bytes

    @classmethod
    def of(cls, key: str, route: str, body: Any) -> IdempotencyKey:
        digest = hashlib.sha256(
            route.encode() + b"\0" + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).digest()
        return cls(key, digest)


@dataclass(frozen=True, slots=True)
class KeyUse:
    """The first use of an Idempotency-Key: the request's hash, and the answer it got."""

    request_hash: bytes
    reply: Reply


@dataclass(frozen=True, slots=True)
class JudgedRows:
    """A bulk request's rows, each judged on its own: (index, row) or {"index", "errors"}."""

    valid: list[tuple[int, ParticipantIn]]
    rejected: list[dict[str, Any]]


class RegistrationUnit(Protocol):
    """One transaction of the registration service. (A registration without an Idempotency-Key
    runs without one: `register` is one statement, atomic by itself.)"""

    async def register(self, rows: Sequence[ParticipantIn], *, owner: str,
                       today: date) -> list[Outcome]:
        """Insert the rows whose NIK has no live membership (nor an earlier row's), each with its
        participant.registered event, in one statement. Outcomes in the order of `rows`."""

    async def participant(self, participant_id: uuid.UUID, *,
                          lock: bool = False) -> Participant | None: ...

    async def is_granted(self, participant_id: uuid.UUID, partner_id: str) -> bool: ...

    async def change(self, participant: Participant, changes: dict[str, Any]) -> Participant:
        """Apply checked changes to a locked participant (its version + 1) and queue its
        participant.changed event; the participant as it is now."""

    async def claim_idempotency_key(self, owner: str, key: str,
                                    request_hash: bytes) -> KeyUse | None:
        """Take the key for this request, or return its earlier use. Waits while another
        transaction holds the same key, so two concurrent retries do the work once."""

    async def save_reply(self, owner: str, key: str, reply: Reply) -> None: ...

    async def audit_pii_read(self, key_id: str, participant_id: uuid.UUID,
                             reason: str) -> None: ...

    async def partner_of(self, key_id: str) -> str:
        """The partner a key belongs to; a key id not known (yet) is taken as a partner id."""

    async def grant(self, participant_id: uuid.UUID, partner_id: str,
                    granted_by: str) -> None: ...

    async def live_participant_by_nik(self, nik: str) -> uuid.UUID | None: ...


Work = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


# --- registering ------------------------------------------------------------------------------


async def register_one(unit: RegistrationUnit, participant: ParticipantIn, *, owner: str,
                       today: date, retry: IdempotencyKey | None) -> Reply:
    """201 with the id and KPJ; 409 (a problem naming the existing participant) for a NIK
    already registered."""

    async def work() -> tuple[int, dict[str, Any]]:
        [outcome] = await unit.register([participant], owner=owner, today=today)
        if not outcome.created:
            return 409, duplicate_problem(outcome.participant_id)
        return 201, {"participant_id": str(outcome.participant_id), "kpj": outcome.kpj,
                     "status": "registered"}

    return await once(unit, retry, owner, work)


def judge_rows(rows: Sequence[object], today: date) -> JudgedRows:
    """Each row of a bulk request against the rules, on its own (before any connection is
    taken: judging 10,000 rows takes a while)."""
    judged = JudgedRows([], [])
    for index, row in enumerate(rows):
        participant, errors = validate_row(row, today)
        if participant is None:
            judged.rejected.append({"index": index, "errors": errors})
        else:
            judged.valid.append((index, participant))
    return judged


async def register_bulk(unit: RegistrationUnit, rows: JudgedRows, *, owner: str, today: date,
                        retry: IdempotencyKey | None) -> Reply:
    """200 with the rows registered and those rejected (bad, or a NIK already registered)."""

    async def work() -> tuple[int, dict[str, Any]]:
        outcomes = await unit.register([p for _, p in rows.valid], owner=owner, today=today)
        results, rejected = [], list(rows.rejected)
        for (index, _), outcome in zip(rows.valid, outcomes, strict=True):
            if outcome.created:
                results.append({"index": index, "participant_id": str(outcome.participant_id)})
            else:
                rejected.append({"index": index, "participant_id": str(outcome.participant_id),
                                 "errors": [{"field": "nik", "message": "already registered"}]})
        rejected.sort(key=lambda r: r["index"])
        return 200, {"accepted": len(results), "rejected": rejected, "results": results}

    return await once(unit, retry, owner, work)


def duplicate_problem(participant_id: uuid.UUID) -> dict[str, Any]:
    return Problem(409, "Already registered",
                   "a live membership with this NIK exists",
                   errors=[{"field": "nik", "message": "already registered"}],
                   extra={"participant_id": str(participant_id)}).body()


async def once(unit: RegistrationUnit, retry: IdempotencyKey | None, owner: str,
               work: Work) -> Reply:
    """`work()`'s answer; with an Idempotency-Key, recorded with the key in the same
    transaction, so the work happens once per key and a retry gets the first answer."""
    if retry is None:
        status, out = await work()
        return Reply(status, orjson.dumps(out))
    earlier = await unit.claim_idempotency_key(owner, retry.key, retry.request_hash)
    if earlier is not None:
        if earlier.request_hash != retry.request_hash:
            raise Problem(422, "Idempotency-Key reused",
                          "this Idempotency-Key was used with another request body")
        return earlier.reply
    status, out = await work()
    reply = Reply(status, orjson.dumps(out))
    await unit.save_reply(owner, retry.key, reply)
    return reply


# --- one worker -------------------------------------------------------------------------------


async def visible(unit: RegistrationUnit, caller: Caller, participant_id: uuid.UUID, *,
                  lock: bool = False) -> Participant:
    """The worker if this caller may see it; otherwise, as if it did not exist (404)."""
    found = await unit.participant(participant_id, lock=lock)
    if found is None or not (access.owns(caller, found)
                             or await unit.is_granted(participant_id, caller.partner_id)):
        raise Problem(404, "Not found", "no participant has this id")
    return found


async def read_participant(unit: RegistrationUnit, caller: Caller, participant_id: uuid.UUID,
                           *, reason: str | None) -> Participant:
    """The worker; a full read (with a reason, access.pii_reason) is audited in the same
    transaction."""
    found = await visible(unit, caller, participant_id)
    if reason is not None:
        await unit.audit_pii_read(caller.key_id, participant_id, reason)
    return found


async def change_participant(unit: RegistrationUnit, caller: Caller,
                             participant_id: uuid.UUID, body: object, *,
                             today: date) -> Participant:
    """A PATCH: checked against the worker as it is now (locked); only the fields whose value
    really changes are written and named in the event, and no change writes nothing."""
    found = await visible(unit, caller, participant_id, lock=True)
    if found["status"] == "terminated":
        raise Problem(409, "Membership ended",
                      "this membership has ended; register the worker anew")
    patch, errors = validate_patch(body, registration_of(found), today)
    if patch is None:
        raise validation_problem(errors)
    changes = {field: value for field, value in patch.changes().items()
               if _comparable(field, found[field]) != _comparable(field, value)}
    return await unit.change(found, changes) if changes else found


def _comparable(field: str, value: Any) -> Any:
    return list(value) if field == "programs" else value


def registration_of(participant: Participant) -> domain.Registration:
    return domain.Registration(
        nik=participant["nik"], full_name=participant["full_name"],
        birth_date=participant["birth_date"], sex=participant["sex"],
        region_code=participant["region_code"], segment=participant["segment"],
        employer_id=participant["employer_id"], occupation=participant["occupation"],
        monthly_income=participant["monthly_income"], programs=tuple(participant["programs"]))


async def grant_access(unit: RegistrationUnit, caller: Caller, participant_id: uuid.UUID,
                       key_id: str) -> str:
    """Let the partner of `key_id` read and change this worker; that partner's id."""
    await visible(unit, caller, participant_id)
    partner = await unit.partner_of(key_id)
    await unit.grant(participant_id, partner, caller.partner_id)
    return partner


async def lookup(unit: RegistrationUnit, nik: str) -> uuid.UUID:
    """The id of the NIK's live membership (404 without one)."""
    found = await unit.live_participant_by_nik(nik)
    if found is None:
        raise Problem(404, "Not found", "no live membership has this NIK")
    return found
