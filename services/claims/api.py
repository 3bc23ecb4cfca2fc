"""HTTP entry points of the claims service (../shared/CONTRACT.md "Claims service"):
file a claim, decide it, read one, list them. The use cases are handlers.py; this module reads
and checks bodies, maps the handlers' answers, and applies the ownership rule to reads."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.claims import handlers, store
from services.claims.settings import ClaimsSettings
from shared.auth import ALL_SCOPES, Caller, require
from shared.clock import Clock
from shared.consumer_progress import (
    PARTICIPANT_CONSUMER,
    NotYet,
    known_or_settled,
    not_yet_known,
)
from shared.problems import Problem, parsed, read_json
from shared.responses import id_or_404, json_response
from shared.service_app import service_app
from shared.text import NoControls
from shared.topics import CLAIMS, MEMBERSHIPS, topic_name
from shared.vocabulary import Program

BODY_MAX_BYTES = 8 * 1024
DECIDE_SCOPE = "claims:decide"
Writer = Annotated[Caller, Depends(require("claims:write"))]
Reader = Annotated[Caller, Depends(require("claims:read"))]
Officer = Annotated[Caller, Depends(require(DECIDE_SCOPE))]

router = APIRouter(prefix="/v1/claims", tags=["claims"])


class ClaimIn(BaseModel):
    """POST /v1/claims. The benefit is computed here, never sent."""

    model_config = ConfigDict(extra="forbid", strict=True)
    claim_ref: Annotated[str, Field(min_length=1, max_length=100), NoControls]
    participant_id: uuid.UUID = Field(strict=False)
    program: Program
    incident_date: date = Field(strict=False)
    # JHT: age | stopped_work | disability | death | emigration; JP: age | death | disability
    cause: Annotated[str, Field(min_length=1, max_length=40), NoControls] | None = None


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    decision: Literal["approve", "reject"]
    reason: Annotated[str, Field(min_length=1, max_length=500), NoControls] | None = None


def _schema(model: type[BaseModel]) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": model.model_json_schema()}}}}




def _is_officer(caller: Caller) -> bool:
    return caller.may(DECIDE_SCOPE) or ALL_SCOPES in caller.scopes


@router.post("", status_code=201, openapi_extra=_schema(ClaimIn),
             responses={409: {"description": "claim_ref reused, or a second JKM"}})
async def file_claim(request: Request, caller: Writer) -> Response:
    body = parsed(ClaimIn, await read_json(request, max_bytes=BODY_MAX_BYTES))
    new = handlers.NewClaim(body.claim_ref, body.participant_id, body.program,
                            body.incident_date, body.cause)
    app = request.app
    today = app.state.clock.today()
    for attempt in range(2):
        try:
            async with app.state.pool.acquire() as conn, conn.transaction():
                status, out = await handlers.file_claim(
                    store.PgClaimsUnit(conn, app.state.topics), new,
                    partner=caller.partner_id, today=today)
            return json_response(status, out)
        except handlers.UnknownParticipant:
            if attempt:
                break
            await _wait_for_participant(request, body.participant_id)  # known now: again
    raise RuntimeError("a participant found, then not found")


async def _wait_for_participant(request: Request, participant_id: uuid.UUID) -> None:
    """Return once the participant is known; 404 (not yet known, or plainly unknown)."""
    pool = request.app.state.pool
    found = await known_or_settled(pool, PARTICIPANT_CONSUMER,
                                   lambda: store.member_facts(pool, participant_id))
    if isinstance(found, NotYet):
        raise not_yet_known("claims")
    if found is None:
        raise Problem(404, "Not found", "no participant has this id",
                      errors=[{"field": "participant_id", "message": "unknown participant"}])


@router.post("/{claim_id}/decision", openapi_extra=_schema(DecisionIn),
             responses={409: {"description": "the claim is already decided"}})
async def decide(claim_id: str, request: Request, caller: Officer) -> Response:
    cid = id_or_404(claim_id, "claim")
    body = parsed(DecisionIn, await read_json(request, max_bytes=BODY_MAX_BYTES))
    if body.decision == "reject" and not body.reason:
        raise Problem(422, "Invalid request", "a rejection needs a reason",
                      errors=[{"field": "reason", "message": "required to reject"}])
    app = request.app
    async with app.state.pool.acquire() as conn, conn.transaction():
        status, out = await handlers.decide_claim(
            store.PgClaimsUnit(conn, app.state.topics), cid, body.decision, body.reason,
            officer=caller.key_id)
    return json_response(status, out)


@router.get("/{claim_id}")
async def read_claim(claim_id: str, request: Request, caller: Reader) -> Response:
    """A claim: for officers, the partner that filed it, and the partner that registered its
    worker; to anyone else it does not exist (404)."""
    found = await store.claim_for_reader(request.app.state.pool, id_or_404(claim_id, "claim"))
    if found is None or not (_is_officer(caller) or caller.partner_id in (
            found[0].filed_by, found[1])):
        raise Problem(404, "Not found", "no claim has this id")
    return json_response(200, found[0].public())


@router.get("")
async def list_claims(request: Request, caller: Reader,
                      participant_id: uuid.UUID | None = None,
                      status: Literal["submitted", "approved", "rejected"] | None = None,
                      program: Program | None = None,
                      cursor: Annotated[str | None, Query(max_length=200)] = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Response:
    """Claims oldest first, `limit` at a time; `next_cursor` (null at the end) gives the next
    page. Officers see every claim; a partner those it filed or whose worker it registered."""
    rows = await store.list_claims(
        request.app.state.pool, partner=None if _is_officer(caller) else caller.partner_id,
        participant_id=participant_id, status=status, program=program,
        after=_cursor_position(cursor), limit=limit)
    next_cursor = (_cursor_of(rows[-1][1], rows[-1][0].id) if len(rows) == limit else None)
    return json_response(200, {"claims": [c.public() for c, _ in rows],
                               "next_cursor": next_cursor})


def _cursor_of(created_at: datetime, claim_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{claim_id}".encode()).decode()


def _cursor_position(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    try:
        when, _, cid = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(when), uuid.UUID(cid)
    except ValueError:
        raise Problem(422, "Invalid request", "cursor is not one this service gave",
                      errors=[{"field": "cursor", "message": "unknown cursor"}]) from None


def create_app(settings: ClaimsSettings, *, clock: Clock | None = None) -> FastAPI:
    @asynccontextmanager
    async def setup(app: FastAPI) -> AsyncIterator[None]:
        app.state.topics = {"claims": topic_name(CLAIMS, settings.topic_prefix),
                            "memberships": topic_name(MEMBERSHIPS, settings.topic_prefix)}
        yield

    return service_app("UCJ Live — claims", settings=settings,
                       migrations=settings.migrations_dir, routers=[router], clock=clock,
                       setup=setup)
