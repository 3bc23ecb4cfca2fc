"""HTTP entry points of the registration service (../shared/CONTRACT.md "Registration
service"): register one worker or a bulk, read, change, look up, grant; register, list and read
employers and their declared workers (issue 11). The use cases are
handlers.py; this module reads and checks bodies and headers, opens the unit of work, and maps
the handlers' answers to responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response

from services.registration import access, handlers, store
from services.registration.csv_upload import rows_from_csv
from services.registration.schemas import (
    MAX_BULK_ROWS,
    DeclaredWorkersIn,
    EmployerIn,
    EmployerOut,
    EmployerPage,
    GrantIn,
    LookupIn,
    ParticipantIn,
    ParticipantOut,
    Registered,
    validate_declared,
    validate_employer,
    validate_row,
)
from services.registration.settings import RegistrationSettings
from shared.auth import Caller, require
from shared.clock import Clock
from shared.problems import (
    PROBLEM_JSON,
    Problem,
    parsed,
    read_body,
    read_json,
    validation_problem,
)
from shared.regions import directory
from shared.responses import id_or_404, json_response
from shared.service_app import service_app
from shared.topics import ORGANISATIONS, PARTICIPANTS, topic_name

SINGLE_MAX_BYTES = 64 * 1024
BULK_MAX_BYTES = 16 * 1024 * 1024
IDEMPOTENCY_KEY_MAX = 200

router = APIRouter(prefix="/v1/participants", tags=["participants"])
Writer = Annotated[Caller, Depends(require("participants:write"))]
Reader = Annotated[Caller, Depends(require("participants:read"))]
Granter = Annotated[Caller, Depends(require(access.GRANT_SCOPE))]
employer_router = APIRouter(prefix="/v1/employers", tags=["employers"])
EmployerWriter = Annotated[Caller, Depends(require("employers:write"))]
EmployerReader = Annotated[Caller, Depends(require("employers:read"))]


@asynccontextmanager
async def _unit(request: Request, *, transaction: bool = True
                ) -> AsyncIterator[store.PgRegistrationUnit]:
    """A unit of work on one pooled connection; in a transaction unless the work is a single
    statement (atomic without one)."""
    state = request.app.state
    async with state.pool.acquire() as conn:
        unit = store.PgRegistrationUnit(conn, topic=state.topic, kpjs=state.kpjs,
                                        organisations_topic=state.organisations_topic)
        if not transaction:
            yield unit
            return
        async with conn.transaction():
            yield unit


def _retry(request: Request, body: Any) -> handlers.IdempotencyKey | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX or not key.isascii() or not key.isprintable():
        raise Problem(400, "Invalid Idempotency-Key",
                      f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII "
                      "characters")
    return handlers.IdempotencyKey.of(key, request.url.path, body)


def _reply(reply: handlers.Reply) -> Response:
    return Response(reply.body, status_code=reply.status,
                    media_type=PROBLEM_JSON if reply.status >= 400 else "application/json")


def _body_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schema}}}}




@router.post("", status_code=201, response_model=Registered,
             responses={409: {"description": "NIK already registered"}},
             openapi_extra=_body_schema(ParticipantIn.model_json_schema()))
async def register_one(request: Request, caller: Writer) -> Response:
    raw = await read_json(request, max_bytes=SINGLE_MAX_BYTES)
    clock: Clock = request.app.state.clock
    today = clock.today()
    participant, errors = validate_row(raw, today)
    if participant is None:
        raise validation_problem(errors)
    retry = _retry(request, raw)
    async with _unit(request, transaction=retry is not None) as unit:
        reply = await handlers.register_one(unit, participant, owner=caller.partner_id,
                                            today=today, retry=retry)
    return _reply(reply)


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
    judged = handlers.judge_rows(rows, today)
    retry = _retry(request, raw)
    async with _unit(request, transaction=retry is not None) as unit:
        reply = await handlers.register_bulk(unit, judged, owner=caller.partner_id,
                                             today=today, retry=retry)
    return _reply(reply)


def _public(participant: handlers.Participant, full: bool) -> dict[str, Any]:
    """Masked NIK and shortened name for every reader; the full record only for an audited
    read (services/registration/access.py)."""
    out = ParticipantOut.from_record(participant).model_dump(mode="json")
    if full:
        out["nik"], out["full_name"] = participant["nik"], participant["full_name"]
    return out


@router.get("/{participant_id}", response_model=ParticipantOut)
async def read_participant(participant_id: str, request: Request, caller: Reader) -> Response:
    pid = id_or_404(participant_id)
    reason = access.pii_reason(caller, request.headers.get(access.REASON_HEADER))
    async with _unit(request) as unit:
        found = await handlers.read_participant(unit, caller, pid, reason=reason)
    return json_response(200, _public(found, full=reason is not None))


@router.patch("/{participant_id}", response_model=ParticipantOut)
async def change_participant(participant_id: str, request: Request, caller: Writer) -> Response:
    pid = id_or_404(participant_id)
    raw = await read_json(request, max_bytes=SINGLE_MAX_BYTES)
    clock: Clock = request.app.state.clock
    async with _unit(request) as unit:
        changed = await handlers.change_participant(unit, caller, pid, raw,
                                                    today=clock.today())
    return json_response(200, _public(changed, full=False))


@router.post("/lookup", responses={404: {"description": "no live membership has this NIK"}},
             openapi_extra=_body_schema(LookupIn.model_json_schema()))
async def lookup_by_nik(request: Request, _: Reader) -> Response:
    """The participant id of a NIK's live membership (the NIK in the body, never in a URL, so
    it stays out of access logs). Whoever knows the NIK may pay for the worker, so any reader
    gets the id, and nothing else."""
    body = parsed(LookupIn, await read_json(request, max_bytes=1024))
    async with _unit(request, transaction=False) as unit:
        found = await handlers.lookup(unit, body.nik)
    return json_response(200, {"participant_id": str(found)})


@router.post("/{participant_id}/grants", status_code=201,
             openapi_extra=_body_schema(GrantIn.model_json_schema()))
async def grant_access(participant_id: str, request: Request, caller: Granter) -> Response:
    """Let another partner read and change this worker (scope participants:grant). The grant
    goes to the partner of the key named, so it survives that key's rotation."""
    pid = id_or_404(participant_id)
    body = parsed(GrantIn, await read_json(request, max_bytes=1024))
    async with _unit(request) as unit:
        partner = await handlers.grant_access(unit, caller, pid, body.key_id)
    return json_response(201, {"participant_id": str(pid), "key_id": body.key_id,
                               "partner_id": partner})


# --- employers (issue 11) ---------------------------------------------------------------------


@employer_router.post("", status_code=201, response_model=EmployerOut,
                      responses={409: {"description": "NPP already registered"}},
                      openapi_extra=_body_schema(EmployerIn.model_json_schema()))
async def register_employer(request: Request, caller: EmployerWriter) -> Response:
    raw = await read_json(request, max_bytes=SINGLE_MAX_BYTES)
    employer, errors = validate_employer(raw)
    if employer is None:
        raise validation_problem(errors)
    retry = _retry(request, raw)
    async with _unit(request) as unit:
        reply = await handlers.register_employer(unit, employer.to_employer(),
                                                 owner=caller.partner_id, retry=retry)
    return _reply(reply)


@employer_router.get("", response_model=EmployerPage)
async def list_employers(request: Request, _: EmployerReader, region: str | None = None,
                         kind: str | None = None, limit: str | None = None,
                         cursor: str | None = None) -> Response:
    """Employers by id, a page at a time: `region` any region code (the employers registered
    in it or in a region within it), `kind`, `limit` (1-1000, default 100), `cursor` (the
    previous page's next_cursor)."""
    size, after = handlers.employers_query(region, kind, limit, cursor, regions=directory())
    async with _unit(request, transaction=False) as unit:
        page = await handlers.list_employers(unit, region=region, kind=kind, limit=size,
                                             after=after)
    return json_response(200, page)


@employer_router.get("/{employer_id}", response_model=EmployerOut)
async def read_employer(employer_id: str, request: Request, _: EmployerReader) -> Response:
    eid = id_or_404(employer_id, "employer")
    async with _unit(request, transaction=False) as unit:
        found = await handlers.read_employer(unit, eid)
    return json_response(200, handlers.public_employer(found))


@employer_router.put("/{employer_id}/declared-workers", response_model=EmployerOut,
                     openapi_extra=_body_schema(DeclaredWorkersIn.model_json_schema()))
async def declare_workers(employer_id: str, request: Request, _: EmployerWriter) -> Response:
    """Add or replace the workers the employer declares for one year."""
    eid = id_or_404(employer_id, "employer")
    figure, errors = validate_declared(await read_json(request, max_bytes=SINGLE_MAX_BYTES))
    if figure is None:
        raise validation_problem(errors)
    async with _unit(request) as unit:
        changed = await handlers.declare_workers(unit, eid, figure)
    return json_response(200, handlers.public_employer(changed))


def create_app(settings: RegistrationSettings, *, clock: Clock | None = None) -> FastAPI:
    @asynccontextmanager
    async def setup(app: FastAPI) -> AsyncIterator[None]:
        app.state.topic = topic_name(PARTICIPANTS, settings.topic_prefix)
        app.state.organisations_topic = topic_name(ORGANISATIONS, settings.topic_prefix)
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
                       migrations=settings.migrations_dir, routers=[router, employer_router],
                       clock=clock, setup=setup, name="registration")
