"""HTTP entry points of the funded programmes: create, change and read programmes with their
live figures, enrol workers (one, or up to 10,000 at once), withdraw one, list those enrolled."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from services.contributions import programme_handlers, store
from services.contributions.programme_handlers import (
    EnrolmentOutcome,
    enrolment_public,
    programme_public,
)
from services.contributions.programmes import paid_for_active
from services.contributions.schemas import (
    MAX_BULK_LINES,
    EnrolmentIn,
    ProgrammeChangeIn,
    ProgrammeIn,
    parse_enrolment,
)
from shared.auth import Caller, require
from shared.consumer_progress import PARTICIPANT_CONSUMER, NotYet, known_or_settled, not_yet_known
from shared.membership import Period
from shared.problems import Problem, parsed, read_json, validation_problem
from shared.regions import directory, level_of
from shared.responses import id_or_404, json_response

PROGRAMME_MAX_BYTES = 16 * 1024
ENROLMENTS_MAX_BYTES = 2 * 1024 * 1024
MAX_LIST = 1000

router = APIRouter(tags=["programmes"])
Writer = Annotated[Caller, Depends(require("programmes:write"))]
Reader = Annotated[Caller, Depends(require("programmes:read"))]


def _unit(request: Request, conn: Any) -> store.PgContributionsUnit:
    return store.PgContributionsUnit(conn, request.app.state.topic,
                                     request.app.state.organisations_topic)


def _figures(row: Any) -> dict[str, Any]:
    """A programme with its live figures."""
    spent = int(row["budget_spent"])
    return {**programme_public(store.programme_of(row)),
            "enrolled": row["enrolled"], "places_left": max(0, row["quota"] - row["enrolled"]),
            "paid_this_month": row["paid_this_month"], "active": row["active"],
            "budget_spent": spent, "budget_left": row["budget_rupiah"] - spent}


def _months(request: Request) -> dict[str, Period]:
    today = request.app.state.clock.today()
    return {"this_month": Period.of(today), "active_through": paid_for_active(today)}


async def _programme(request: Request, programme_id: uuid.UUID) -> dict[str, Any]:
    row = await store.programme_figures(request.app.state.pool, programme_id,
                                        **_months(request))
    if row is None:
        raise Problem(404, "Not found", "no programme has this id")
    return _figures(row)


@router.post("/v1/programmes", status_code=201,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": ProgrammeIn.model_json_schema()}}}})
async def create_programme(request: Request, caller: Writer) -> Response:
    data = parsed(ProgrammeIn, await read_json(request, max_bytes=PROGRAMME_MAX_BYTES))
    region = directory().get(data.funder_region)
    programme, errors = programme_handlers.new_programme(data, region.level if region else None)
    if programme is None:
        raise validation_problem([e.as_dict() for e in errors])
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        await programme_handlers.create_programme(_unit(request, conn), programme,
                                                  created_by=caller.key_id)
    return json_response(201, await _programme(request, programme.programme_id))


@router.patch("/v1/programmes/{programme_id}",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": ProgrammeChangeIn.model_json_schema()}}}})
async def change_programme(programme_id: str, request: Request, _: Writer) -> Response:
    """Change the name, quota or budget; never below what is enrolled or spent (409)."""
    prog = id_or_404(programme_id, "programme")
    change = parsed(ProgrammeChangeIn, await read_json(request, max_bytes=PROGRAMME_MAX_BYTES))
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        outcome = await programme_handlers.change_programme(_unit(request, conn), prog, change)
    if outcome is None:
        raise Problem(404, "Not found", "no programme has this id")
    if isinstance(outcome, list):
        errors = [r.error.as_dict() for r in outcome]
        raise Problem(409, "Programme change refused", _summary(errors), errors=errors)
    return json_response(200, await _programme(request, prog))


@router.get("/v1/programmes")
async def list_programmes(request: Request, _: Reader,
                          funder_region: Annotated[str | None, Query(max_length=13)] = None,
                          year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
                          limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100) -> Response:
    funder_region = funder_region or None  # ?funder_region= : any region
    if funder_region is not None and level_of(funder_region) is None:
        raise validation_problem([{"field": "funder_region",
                                   "message": "must be a Kemendagri region code, e.g. 12.75"}])
    rows = await store.programmes_figures(request.app.state.pool, funder_region=funder_region,
                                          year=year, limit=limit, **_months(request))
    return json_response(200, {"items": [_figures(r) for r in rows]})


@router.get("/v1/programmes/{programme_id}")
async def read_programme(programme_id: str, request: Request, _: Reader) -> Response:
    return json_response(200, await _programme(request, id_or_404(programme_id, "programme")))


@router.post("/v1/programmes/{programme_id}/enrolments",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"oneOf": [EnrolmentIn.model_json_schema(), {
                     "type": "object", "properties": {"enrolments": {
                         "type": "array", "maxItems": MAX_BULK_LINES,
                         "items": EnrolmentIn.model_json_schema()}}}]}}}}})
async def enrol(programme_id: str, request: Request, caller: Writer) -> Response:
    """One worker `{"participant_id"}` (201 enrolled now, 200 enrolled before), or up to
    10,000 as `{"enrolments": [...]}`, each enrolled or refused on its own (200)."""
    pid = id_or_404(programme_id, "programme")
    raw = await read_json(request, max_bytes=ENROLMENTS_MAX_BYTES)
    if isinstance(raw, dict) and "enrolments" in raw:
        return await _enrol_bulk(request, caller, pid, raw)
    row, errors = parse_enrolment(raw)
    if row is None:
        raise validation_problem(errors)
    [outcome] = await _enrol(request, caller, pid, [row.participant_id])
    if outcome.enrolment is None:
        if outcome.errors and outcome.errors[0]["message"] == "no participant has this id":
            await _unknown_member(request, row.participant_id)
        title = "Enrolment refused"
        raise Problem(outcome.status_code, title, _summary(outcome.errors),
                      errors=outcome.errors)
    return json_response(outcome.status_code, outcome.public())


async def _enrol_bulk(request: Request, caller: Caller, programme_id: uuid.UUID,
                      raw: dict[str, Any]) -> Response:
    if set(raw) != {"enrolments"} or not isinstance(raw["enrolments"], list):
        raise Problem(422, "Invalid request", 'send {"enrolments": [...]}',
                      errors=[{"field": "enrolments", "message": "must be a list"}])
    if len(raw["enrolments"]) > MAX_BULK_LINES:
        raise Problem(422, "Invalid request", f"at most {MAX_BULK_LINES} enrolments per request",
                      errors=[{"field": "enrolments",
                               "message": f"at most {MAX_BULK_LINES} enrolments"}])
    rejected: list[dict[str, Any]] = []
    valid: list[tuple[int, EnrolmentIn]] = []
    for index, item in enumerate(raw["enrolments"]):
        row, errors = parse_enrolment(item)
        if row is None:
            rejected.append({"index": index, "errors": errors})
        else:
            valid.append((index, row))
    outcomes = await _enrol(request, caller, programme_id, [r.participant_id for _, r in valid])
    results = []
    for (index, _), outcome in zip(valid, outcomes, strict=True):
        if outcome.enrolment is None:
            rejected.append({"index": index, "status": outcome.status_code,
                             "errors": outcome.errors})
        else:
            results.append({"index": index, **outcome.public()})
    rejected.sort(key=lambda r: r["index"])
    return json_response(200, {"accepted": len(results), "rejected": rejected, "results": results})


async def _enrol(request: Request, caller: Caller, programme_id: uuid.UUID,
                 participant_ids: list[uuid.UUID]) -> list[EnrolmentOutcome]:
    today = request.app.state.clock.today()
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        outcomes = await programme_handlers.enrol(_unit(request, conn), programme_id,
                                                  participant_ids, today=today,
                                                  by=caller.key_id)
    if outcomes is None:
        raise Problem(404, "Not found", "no programme has this id")
    return outcomes


async def _unknown_member(request: Request, participant_id: uuid.UUID) -> None:
    """A worker this service has not learnt: not yet known while registrations wait."""
    pool = request.app.state.pool
    state = await known_or_settled(pool, PARTICIPANT_CONSUMER,
                                   lambda: store.member(pool, participant_id))
    if isinstance(state, NotYet):
        raise not_yet_known("contributions")


@router.delete("/v1/programmes/{programme_id}/enrolments/{participant_id}")
async def withdraw(programme_id: str, participant_id: str, request: Request,
                   _: Writer) -> Response:
    prog, pid = id_or_404(programme_id, "programme"), id_or_404(participant_id)
    today = request.app.state.clock.today()
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        enrolment = await programme_handlers.withdraw(_unit(request, conn), prog, pid,
                                                      today=today)
    if enrolment is None:
        raise Problem(404, "Not found", "this worker is not enrolled in this programme")
    return json_response(200, enrolment_public(enrolment, enrolled=False))


@router.get("/v1/programmes/{programme_id}/enrolments")
async def enrolments(programme_id: str, request: Request, _: Reader,
                     unpaid_for: Annotated[str | None, Query(max_length=7)] = None,
                     limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
                     cursor: Annotated[str | None, Query(max_length=36)] = None) -> Response:
    """The workers enrolled (participant ids only), by id; with `unpaid_for`, those enrolled
    for that month and not paid for it. `next_cursor` continues the list (null: the end)."""
    prog = id_or_404(programme_id, "programme")
    await _programme(request, prog)  # 404 for an unknown programme
    month: Period | None = None
    after: uuid.UUID | None = None
    try:
        month = Period.parse(unpaid_for) if unpaid_for is not None else None
    except ValueError as exc:
        raise validation_problem([{"field": "unpaid_for", "message": str(exc)}]) from None
    try:
        after = uuid.UUID(cursor) if cursor is not None else None
    except ValueError:
        raise validation_problem([{"field": "cursor",
                                   "message": "not a cursor of this list"}]) from None
    rows = await store.enrolled_workers(request.app.state.pool, prog, unpaid_for=month,
                                        after=after, limit=limit)
    items = [{"participant_id": str(r["participant_id"]), "first_period": r["first_period"],
              "last_period": r["last_period"]} for r in rows]
    next_cursor = items[-1]["participant_id"] if len(items) == limit else None
    return json_response(200, {"items": items, "next_cursor": next_cursor})


def _summary(errors: list[dict[str, str]]) -> str:
    return "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"]
                     for e in errors[:5])
