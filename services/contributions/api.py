"""HTTP entry points of the contributions service: dues, money received, memberships; the
funded programmes' are programmes_api.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response

from services.contributions import handlers, programmes_api, store
from services.contributions.dues import dues_on
from services.contributions.payments import check_months
from services.contributions.rates import NoRatesError
from services.contributions.schemas import MAX_BULK_LINES, PaymentIn, parse_line
from services.contributions.settings import ContributionsSettings
from shared.auth import Caller, require
from shared.clock import Clock
from shared.consumer_progress import (
    PARTICIPANT_CONSUMER,
    NotYet,
    known_or_settled,
    not_yet_known,
)
from shared.problems import Problem, read_json
from shared.responses import id_or_404, json_response
from shared.service_app import service_app
from shared.topics import MEMBERSHIPS, ORGANISATIONS, topic_name

SINGLE_MAX_BYTES = 16 * 1024
BULK_MAX_BYTES = 8 * 1024 * 1024

router = APIRouter(tags=["contributions"])
Writer = Annotated[Caller, Depends(require("contributions:write"))]
Reader = Annotated[Caller, Depends(require("contributions:read"))]


async def _known_member(request: Request, participant_id: str) -> handlers.MemberState:
    pool = request.app.state.pool
    pid = id_or_404(participant_id)
    state = await known_or_settled(pool, PARTICIPANT_CONSUMER, lambda: store.member(pool, pid))
    if isinstance(state, NotYet):
        raise not_yet_known("contributions")
    if state is None:
        raise Problem(404, "Not found", "no participant has this id")
    return state


@router.get("/v1/dues/{participant_id}")
async def dues(participant_id: str, request: Request, _: Reader,
               months: Annotated[int, Query(ge=1, le=12)] = 1) -> Response:
    state = await _known_member(request, participant_id)
    today = request.app.state.clock.today()
    if state.live_status(today).status == "terminated":
        raise Problem(409, "Membership ended", "this membership has ended; the worker must "
                      "register anew")
    count = check_months(state.member, months)
    if count is not None:
        raise Problem(422, "Invalid request", count.message, errors=[count.as_dict()])
    try:
        owed = dues_on(state.member, state.paid_through, months, today=today)
    except NoRatesError as exc:
        raise Problem(422, "No rates", str(exc)) from None
    # amount = the programme lines + late_charge (PU months paid after their due date)
    return json_response(200, {"participant_id": str(state.participant_id), **owed.as_dict()})


@router.get("/v1/memberships/{participant_id}")
async def membership(participant_id: str, request: Request, _: Reader) -> Response:
    state = await _known_member(request, participant_id)
    live = state.live_status(request.app.state.clock.today())
    return json_response(200, {"participant_id": str(state.participant_id), "status": live.status,
                       "paid_through": str(state.paid_through) if state.paid_through else None,
                       "reason": live.reason})


@router.post("/v1/contributions", status_code=201,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": PaymentIn.model_json_schema()}}}})
async def contribute(request: Request, caller: Writer) -> Response:
    line, errors = parse_line(await read_json(request, max_bytes=SINGLE_MAX_BYTES))
    if line is None:
        raise Problem(422, "Invalid request", _summary(errors), errors=errors)
    [outcome] = await _pay(request, caller, [line])
    if outcome.result is None:
        reused = outcome.status_code == 409 and outcome.errors[0]["field"] == "payment_ref"
        title = "Payment reference reused" if reused else "Payment refused"
        extra = _expected(outcome.errors)
        raise Problem(outcome.status_code, title, _summary(outcome.errors),
                      errors=outcome.errors, extra=extra)
    return json_response(201, outcome.result)


@router.post("/v1/contributions/bulk",
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": {"type": "object", "properties": {"contributions": {
                     "type": "array", "maxItems": MAX_BULK_LINES,
                     "items": PaymentIn.model_json_schema()}}}}}}})
async def contribute_bulk(request: Request, caller: Writer) -> Response:
    """Up to 10,000 lines (the city-budget batch); each accepted or refused on its own."""
    raw = await read_json(request, max_bytes=BULK_MAX_BYTES)
    if not isinstance(raw, dict) or set(raw) != {"contributions"} or not isinstance(
            raw["contributions"], list):
        raise Problem(422, "Invalid request", 'send {"contributions": [...]}',
                      errors=[{"field": "contributions", "message": "must be a list"}])
    if len(raw["contributions"]) > MAX_BULK_LINES:
        raise Problem(422, "Invalid request", f"at most {MAX_BULK_LINES} lines per request",
                      errors=[{"field": "contributions",
                               "message": f"at most {MAX_BULK_LINES} lines"}])
    rejected: list[dict[str, Any]] = []
    valid: list[tuple[int, PaymentIn]] = []
    for index, item in enumerate(raw["contributions"]):
        line, errors = parse_line(item)
        if line is None:
            rejected.append({"index": index, "errors": errors})
        else:
            valid.append((index, line))
    outcomes = await _pay(request, caller, [line for _, line in valid])
    results = []
    for (index, _), outcome in zip(valid, outcomes, strict=True):
        if outcome.result is None:
            rejected.append({"index": index, "errors": outcome.errors})
        else:
            results.append({"index": index, **outcome.result})
    rejected.sort(key=lambda r: r["index"])
    return json_response(200, {"accepted": len(results), "rejected": rejected, "results": results})


async def _pay(request: Request, caller: Caller,
               lines: list[PaymentIn]) -> list[handlers.PaymentOutcome]:
    app = request.app
    if not lines:
        return []
    async with app.state.pool.acquire() as conn, conn.transaction():
        return await handlers.pay(store.PgContributionsUnit(conn, app.state.topic), lines,
                                  caller=caller.key_id, today=app.state.clock.today())


def _summary(errors: list[dict[str, str]]) -> str:
    return "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"]
                     for e in errors[:5])


def _expected(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """Lift what the rules expected (amount, first_period) to the top of the problem."""
    extra: dict[str, Any] = {}
    for error in errors:
        for key in ("expected_amount", "expected_first_period"):
            if key in error:
                extra[key] = error[key]
    return extra


def create_app(settings: ContributionsSettings, *, clock: Clock | None = None) -> FastAPI:
    @asynccontextmanager
    async def setup(app: FastAPI) -> AsyncIterator[None]:
        app.state.topic = topic_name(MEMBERSHIPS, settings.topic_prefix)
        app.state.organisations_topic = topic_name(ORGANISATIONS, settings.topic_prefix)
        yield

    return service_app("UCJ Live — contributions", settings=settings,
                       migrations=settings.migrations_dir, routers=[router, programmes_api.router],
                       clock=clock, setup=setup, name="contributions")
