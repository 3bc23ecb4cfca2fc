"""The registration service's use cases: register one worker or a bulk of them, change one,
read one, look a NIK up, grant another partner access. Over a `RegistrationUnit` (one
transaction: the participants, their events, the Idempotency-Keys, the grants), so that the
rules of the flow are tested with an in-memory fake (tests/unit/test_registration_handlers.py)
and the SQL lives in store.py alone.

- Registering: a NIK with a live membership is 409 (one registration) or a rejected row (bulk),
  with the existing participant's id. With an Idempotency-Key the work and the key's record
  commit together, so the work happens once per key: the same request again gets the first
  answer, byte for byte; the same key with another request is 422.
- Employers: a PU or JAKON worker (and a PMI worker's placement agency) names an employer
  registered here (POST /v1/employers), of a kind its segment allows (domain.SEGMENT_TERMS);
  one lookup for every employer a request names, bulk or not. An employer's registration and
  each change of its declared workers write its event (topic ucj.organisations) in the same
  transaction; an NPP already registered is 409 with that employer's id.
- Reading and changing: a worker is visible to the partner that registered it, to partners it
  was granted to, and to admins; to anyone else it does not exist (404). A change publishes
  participant.changed with the fields that really changed; a terminated membership is 409.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol

import orjson

from services.registration import access, domain, employers
from services.registration.schemas import ParticipantIn, validate_patch, validate_row
from shared.auth import Caller
from shared.problems import Problem, validation_problem
from shared.regions import NATIONAL_CODE, RegionDirectory

# A participant as the store gives it (PARTICIPANT_COLUMNS in store.py; a dict in the tests).
Participant = Mapping[str, Any]
# An employer as the store gives it: employer_id, name, kind, region_code, npp, declared (a
# tuple of employers.Declared, by year), version, registered_on.
EmployerRecord = Mapping[str, Any]
MAX_EMPLOYERS_PAGE = 1000
DEFAULT_EMPLOYERS_PAGE = 100


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

    # --- employers ---

    async def employer_kinds(self, employer_ids: Collection[str]) -> dict[str, str]:
        """The kind of each of these employers that exists (ids in their canonical spelling),
        in one lookup."""

    async def add_employer(self, employer: employers.Employer, *,
                           owner: str) -> tuple[EmployerRecord | None, uuid.UUID | None]:
        """Insert the employer with its employer.registered event: (the record, None), or
        (None, the id of the employer that already has this NPP)."""

    async def employer(self, employer_id: uuid.UUID, *,
                       lock: bool = False) -> EmployerRecord | None: ...

    async def change_declared(self, employer: EmployerRecord,
                              declared: tuple[employers.Declared, ...]) -> EmployerRecord:
        """Replace a locked employer's declared figures (its version + 1) and queue its
        employer.changed event; the employer as it is now."""

    async def employers_page(self, *, region: str | None, kind: str | None, limit: int,
                             after: uuid.UUID | None) -> list[EmployerRecord]:
        """Up to `limit` employers within the region (prefix) and of the kind, by id, after the
        id `after`."""


Work = Callable[[], Awaitable[tuple[int, dict[str, Any]]]]


# --- registering ------------------------------------------------------------------------------


async def register_one(unit: RegistrationUnit, participant: ParticipantIn, *, owner: str,
                       today: date, retry: IdempotencyKey | None) -> Reply:
    """201 with the id and KPJ; 409 (a problem naming the existing participant) for a NIK
    already registered."""

    async def work() -> tuple[int, dict[str, Any]]:
        errors = await employer_errors(unit, [(0, participant)])
        if errors:
            raise validation_problem(errors[0])
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
        refused = await employer_errors(unit, rows.valid)
        rejected = list(rows.rejected)
        rejected += [{"index": index, "errors": errors} for index, errors in refused.items()]
        valid = [(index, p) for index, p in rows.valid if index not in refused]
        outcomes = await unit.register([p for _, p in valid], owner=owner, today=today)
        results = []
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if outcome.created:
                results.append({"index": index, "participant_id": str(outcome.participant_id)})
            else:
                rejected.append({"index": index, "participant_id": str(outcome.participant_id),
                                 "errors": [{"field": "nik", "message": "already registered"}]})
        rejected.sort(key=lambda r: r["index"])
        return 200, {"accepted": len(results), "rejected": rejected, "results": results}

    return await once(unit, retry, owner, work)


async def employer_errors(unit: RegistrationUnit, rows: Sequence[tuple[int, ParticipantIn]]
                          ) -> dict[int, list[dict[str, str]]]:
    """The rows (by index) whose employer does not exist or is of a kind their segment may not
    name, with the errors; one lookup for all the employers named."""
    named = {p.employer_id for _, p in rows if p.employer_id is not None}
    kinds = await unit.employer_kinds(named) if named else {}
    refused: dict[int, list[dict[str, str]]] = {}
    for index, p in rows:
        kind = kinds.get(p.employer_id) if p.employer_id is not None else None
        errors = domain.check_employer_kind(p.segment, p.employer_id, kind)
        if errors:
            refused[index] = [e.as_dict() for e in errors]
    return refused


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
    if changes.keys() & {"segment", "employer_id"}:
        segment = str(changes.get("segment", found["segment"]))
        employer_id = changes.get("employer_id", found["employer_id"])
        kinds = await unit.employer_kinds({employer_id}) if employer_id is not None else {}
        refused = domain.check_employer_kind(segment, employer_id, kinds.get(employer_id or ""))
        if refused:
            raise validation_problem([e.as_dict() for e in refused])
    return await unit.change(found, changes) if changes else found


def _comparable(field: str, value: Any) -> Any:
    return list(value) if field == "programs" else value


def registration_of(participant: Participant) -> domain.Registration:
    return domain.Registration(
        nik=participant["nik"], full_name=participant["full_name"],
        birth_date=participant["birth_date"], sex=participant["sex"],
        region_code=participant["region_code"], segment=participant["segment"],
        employer_id=participant["employer_id"], occupation=participant["occupation"],
        monthly_income=participant["monthly_income"], programs=tuple(participant["programs"]),
        channel=participant["channel"], agent_id=participant["agent_id"],
        office_village=participant["office_village"])


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


# --- employers --------------------------------------------------------------------------------


def public_employer(employer: EmployerRecord) -> dict[str, Any]:
    """An employer as every reader sees it (nothing in it is personal data)."""
    return {"employer_id": str(employer["employer_id"]), "name": employer["name"],
            "kind": employer["kind"], "region_code": employer["region_code"],
            "npp": employer["npp"],
            "declared_workers": [{"year": d.year, "count": d.count, "source": d.source}
                                 for d in employer["declared"]],
            "registered_on": str(employer["registered_on"])}


async def register_employer(unit: RegistrationUnit, employer: employers.Employer, *,
                            owner: str, retry: IdempotencyKey | None) -> Reply:
    """201 with the employer; 409 naming the employer already registered with this NPP."""

    async def work() -> tuple[int, dict[str, Any]]:
        created, existing = await unit.add_employer(employer, owner=owner)
        if created is None:
            return 409, Problem(409, "Already registered",
                                "an employer with this NPP is registered",
                                errors=[{"field": "npp", "message": "already registered"}],
                                extra={"employer_id": str(existing)}).body()
        return 201, public_employer(created)

    return await once(unit, retry, owner, work)


async def read_employer(unit: RegistrationUnit, employer_id: uuid.UUID) -> EmployerRecord:
    found = await unit.employer(employer_id)
    if found is None:
        raise Problem(404, "Not found", "no employer has this id")
    return found


async def declare_workers(unit: RegistrationUnit, employer_id: uuid.UUID,
                          figure: employers.Declared) -> EmployerRecord:
    """Add or replace one year's declared workers; the same figure again changes nothing."""
    found = await unit.employer(employer_id, lock=True)
    if found is None:
        raise Problem(404, "Not found", "no employer has this id")
    declared = employers.with_declared(found["declared"], figure)
    if declared == tuple(found["declared"]):
        return found
    return await unit.change_declared(found, declared)


def employers_query(region: str | None, kind: str | None, limit: str | None,
                    cursor: str | None, *, regions: RegionDirectory
                    ) -> tuple[int, uuid.UUID | None]:
    """The list's query parameters checked: (limit, the id to continue after), or a 422."""
    errors: list[dict[str, str]] = []
    if region is not None and region != NATIONAL_CODE:
        errors += [{"field": "region", "message": e.message}
                   for e in employers.check_employer_region(region, regions=regions)]
    if kind is not None:
        errors += [e.as_dict() for e in employers.check_kind(kind)]
    size = DEFAULT_EMPLOYERS_PAGE
    if limit is not None:
        if not (limit.isascii() and limit.isdigit() and len(limit) <= 6
                and 1 <= int(limit) <= MAX_EMPLOYERS_PAGE):
            errors.append({"field": "limit",
                           "message": f"must be a whole number from 1 to {MAX_EMPLOYERS_PAGE}"})
        else:
            size = int(limit)
    after = None
    if cursor is not None:
        try:
            after = uuid.UUID(cursor)
        except ValueError:
            errors.append({"field": "cursor", "message": "is not a cursor this list gave"})
    if errors:
        raise validation_problem(errors)
    return size, after


async def list_employers(unit: RegistrationUnit, *, region: str | None, kind: str | None,
                         limit: int, after: uuid.UUID | None) -> dict[str, Any]:
    """A page of employers by id, and the cursor of the next page (None on the last)."""
    page = await unit.employers_page(region=None if region == NATIONAL_CODE else region, kind=kind,
                                     limit=limit + 1, after=after)
    more = len(page) > limit
    items = page[:limit]
    return {"items": [public_employer(e) for e in items],
            "next_cursor": str(items[-1]["employer_id"]) if more else None}
