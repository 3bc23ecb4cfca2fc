"""HTTP entry points of the registration service: translate requests into store calls."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.registration import access, store
from services.registration.schemas import (
    MAX_BULK_ROWS,
    ParticipantIn,
    ParticipantOut,
    Registered,
    rows_from_csv,
    validate_patch,
    validate_row,
)
from services.registration.settings import RegistrationSettings
from shared.auth import Caller, require
from shared.clock import Clock
from shared.problems import (
    PROBLEM_JSON,
    Problem,
    field_errors,
    read_body,
    read_json,
    validation_problem,
)
from shared.responses import id_or_404, json_response
from shared.service_app import service_app
from shared.text import NoControls
from shared.topics import PARTICIPANTS, topic_name

SINGLE_MAX_BYTES = 64 * 1024
BULK_MAX_BYTES = 16 * 1024 * 1024
IDEMPOTENCY_KEY_MAX = 200

router = APIRouter(prefix="/v1/participants", tags=["participants"])
Writer = Annotated[Caller, Depends(require("participants:write"))]
Reader = Annotated[Caller, Depends(require("participants:read"))]
Granter = Annotated[Caller, Depends(require(access.GRANT_SCOPE))]




def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        raise Problem(400, "Invalid Idempotency-Key",
                      f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII "
                      "characters")
    return key


async def _once(request: Request, caller: Caller, body: Any, work) -> Response:
    """Run `work(conn)` -> (status, body); with an Idempotency-Key, in one transaction with the
    key's record, so the work happens once per key."""
    key = _idempotency_key(request)
    pool = request.app.state.pool
    async with pool.acquire() as conn:
        if key is None:
            # The work is one statement: atomic without an explicit transaction.
            status, out = await work(conn)
            return json_response(status, out)
        async with conn.transaction():
            return await _once_in_transaction(conn, request, caller, key, body, work)


async def _once_in_transaction(conn, request: Request, caller: Caller, key: str, body: Any,
                               work) -> Response:
    digest = hashlib.sha256(
        request.url.path.encode() + b"\0" + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    ).digest()
    earlier = await store.claim_idempotency_key(conn, caller.partner_id, key, digest)
    if earlier is not None:
        if earlier["request_hash"] != digest:
            raise Problem(422, "Idempotency-Key reused",
                          "this Idempotency-Key was used with another request body")
        status = earlier["status_code"]
        return Response(earlier["body"], status_code=status,
                        media_type=PROBLEM_JSON if status >= 400 else "application/json")
    status, out = await work(conn)
    await store.save_idempotent_response(conn, caller.partner_id, key, status,
                                        orjson.dumps(out))
    return json_response(status, out)


def _duplicate_problem(participant_id: uuid.UUID) -> dict[str, Any]:
    return Problem(409, "Already registered",
                   "a live membership with this NIK exists",
                   errors=[{"field": "nik", "message": "already registered"}],
                   extra={"participant_id": str(participant_id)}).body()


@router.post("", status_code=201, response_model=Registered,
             responses={409: {"description": "NIK already registered"}},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": ParticipantIn.model_json_schema()}}}})
async def register_one(request: Request, caller: Writer) -> Response:
    raw = await read_json(request, max_bytes=SINGLE_MAX_BYTES)
    clock: Clock = request.app.state.clock
    participant, errors = validate_row(raw, clock.today())
    if participant is None:
        raise validation_problem(errors)

    async def work(conn) -> tuple[int, dict[str, Any]]:
        [outcome] = await store.register(conn, [participant], caller=caller.partner_id,
                                         today=clock.today(), topic=request.app.state.topic,
                                         kpjs=request.app.state.kpjs)
        if not outcome.created:
            return 409, _duplicate_problem(outcome.participant_id)
        return 201, {"participant_id": str(outcome.participant_id), "kpj": outcome.kpj,
                     "status": "registered"}

    return await _once(request, caller, raw, work)


@router.post("/bulk", openapi_extra={"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "object", "properties": {"participants": {
        "type": "array", "maxItems": MAX_BULK_ROWS, "items": ParticipantIn.model_json_schema()}}}},
    "text/csv": {"schema": {"type": "string"}}}}})
async def register_bulk(request: Request, caller: Writer) -> Response:
    """Up to 10,000 rows as JSON or text/csv; each row succeeds or fails on its own."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "text/csv":
        text = (await read_body(request, max_bytes=BULK_MAX_BYTES)).decode("utf-8", "replace")
        try:
            rows: list[Any] = rows_from_csv(text)
        except ValueError as exc:
            raise Problem(422, "Invalid CSV", str(exc)) from None
        raw: Any = {"participants": rows}
    else:
        raw = await read_json(request, max_bytes=BULK_MAX_BYTES)
        if not isinstance(raw, dict) or set(raw) != {"participants"} or not isinstance(
                raw["participants"], list):
            raise validation_problem([{"field": "participants",
                                       "message": "send {\"participants\": [...]}"}])
        rows = raw["participants"]
    if len(rows) > MAX_BULK_ROWS:
        raise validation_problem([{"field": "participants",
                                   "message": f"at most {MAX_BULK_ROWS} rows per request"}])
    clock: Clock = request.app.state.clock
    today = clock.today()
    valid: list[tuple[int, ParticipantIn]] = []
    rejected: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        participant, errors = validate_row(row, today)
        if participant is None:
            rejected.append({"index": index, "errors": errors})
        else:
            valid.append((index, participant))

    async def work(conn) -> tuple[int, dict[str, Any]]:
        outcomes = await store.register(conn, [p for _, p in valid], caller=caller.partner_id,
                                        today=today, topic=request.app.state.topic,
                                        kpjs=request.app.state.kpjs)
        results = []
        for (index, _), outcome in zip(valid, outcomes, strict=True):
            if outcome.created:
                results.append({"index": index, "participant_id": str(outcome.participant_id)})
            else:
                rejected.append({"index": index, "participant_id": str(outcome.participant_id),
                                 "errors": [{"field": "nik", "message": "already registered"}]})
        rejected.sort(key=lambda r: r["index"])
        return 200, {"accepted": len(results), "rejected": rejected, "results": results}

    return await _once(request, caller, raw, work)




def _public(record: Any, full: bool) -> dict[str, Any]:
    """Masked NIK and shortened name for every reader; the full record only for an audited
    read (services/registration/access.py)."""
    out = ParticipantOut.from_record(record).model_dump(mode="json")
    if full:
        out["nik"], out["full_name"] = record["nik"], record["full_name"]
    return out


async def _visible(conn: Any, caller: Caller, pid: uuid.UUID, *, for_update: bool = False
                   ) -> Any:
    """The worker's record if this caller may see it; otherwise, as if it did not exist."""
    record = await store.get(conn, pid, for_update=for_update)
    if record is None or not await access.may_see(conn, caller, record):
        raise Problem(404, "Not found", "no participant has this id")
    return record


@router.get("/{participant_id}", response_model=ParticipantOut)
async def read_participant(participant_id: str, request: Request, caller: Reader) -> Response:
    pid = id_or_404(participant_id)
    reason = access.pii_reason(caller, request.headers.get(access.REASON_HEADER))
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        record = await _visible(conn, caller, pid)
        if reason is not None:
            await access.audit_pii_read(conn, caller, pid, reason)
    return json_response(200, _public(record, full=reason is not None))


@router.patch("/{participant_id}", response_model=ParticipantOut)
async def change_participant(participant_id: str, request: Request, caller: Writer) -> Response:
    pid = id_or_404(participant_id)
    raw = await read_json(request, max_bytes=SINGLE_MAX_BYTES)
    clock: Clock = request.app.state.clock
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        record = await _visible(conn, caller, pid, for_update=True)
        if record["status"] == "terminated":
            raise Problem(409, "Membership ended",
                          "this membership has ended; register the worker anew")
        patch, errors = validate_patch(raw, store.as_registration(record), clock.today())
        if patch is None:
            raise validation_problem(errors)
        changes = {k: v for k, v in patch.changes().items()
                   if (list(record[k]) if k == "programs" else record[k])
                   != (list(v) if k == "programs" else v)}
        if changes:
            record = await store.change(conn, record, changes, topic=request.app.state.topic)
    return json_response(200, _public(record, full=False))


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    nik: Annotated[str, Field(min_length=16, max_length=16, pattern=r"^[0-9]{16}$")]


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    key_id: Annotated[str, Field(min_length=1, max_length=100), NoControls]


@router.post("/lookup", responses={404: {"description": "no live membership has this NIK"}},
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": LookupIn.model_json_schema()}}}})
async def lookup_by_nik(request: Request, _: Reader) -> Response:
    """The participant id of a NIK's live membership (the NIK in the body, never in a URL, so
    it stays out of access logs). Whoever knows the NIK may pay for the worker, so any reader
    gets the id, and nothing else."""
    raw = await read_json(request, max_bytes=1024)
    try:
        body = LookupIn.model_validate(raw)
    except ValidationError as exc:
        raise validation_problem(field_errors(exc.errors())) from None
    found = await access.live_participant_by_nik(request.app.state.pool, body.nik)
    if found is None:
        raise Problem(404, "Not found", "no live membership has this NIK")
    return json_response(200, {"participant_id": str(found)})


@router.post("/{participant_id}/grants", status_code=201,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": GrantIn.model_json_schema()}}}})
async def grant_access(participant_id: str, request: Request, caller: Granter) -> Response:
    """Let another partner read and change this worker (scope participants:grant). The grant
    goes to the partner of the key named, so it survives that key's rotation."""
    pid = id_or_404(participant_id)
    raw = await read_json(request, max_bytes=1024)
    try:
        body = GrantIn.model_validate(raw)
    except ValidationError as exc:
        raise validation_problem(field_errors(exc.errors())) from None
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        await _visible(conn, caller, pid)
        partner = await access.partner_of(conn, body.key_id)
        await access.grant(conn, pid, partner, caller.partner_id)
    return json_response(201, {"participant_id": str(pid), "key_id": body.key_id,
                               "partner_id": partner})


def create_app(settings: RegistrationSettings, *, clock: Clock | None = None) -> FastAPI:
    @asynccontextmanager
    async def setup(app: FastAPI) -> AsyncIterator[None]:
        app.state.topic = topic_name(PARTICIPANTS, settings.topic_prefix)
        app.state.kpjs = store.KpjAllocator()
        relay = None
        if settings.embedded_relay:
            from services.registration.relay import start_embedded
            relay = await start_embedded(settings)
        try:
            yield
        finally:
            if relay is not None:
                await relay.stop()

    return service_app("UCJ Live — registration", settings=settings,
                       migrations=settings.migrations_dir, routers=[router],
                       clock=clock, setup=setup, name="registration")
