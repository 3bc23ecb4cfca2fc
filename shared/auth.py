"""API keys: `Authorization: Bearer <key>`, stored hashed, with scopes, one set for every
service (shared/key_directory.py keeps each service's copy).

The key in UCJ_BOOTSTRAP_API_KEY (when set at start) is accepted everywhere with every scope and
no rate limit; use it to create the partners' keys through POST /v1/api-keys on any service.
A key is made once and works on every service its scopes cover; it can be listed, revoked
(everywhere within seconds) and rotated. Each key has a budget of requests a minute on each
service (429 with Retry-After past it).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from shared.key_directory import KeyDirectory, KeyRecord, local_record, local_records
from shared.problems import (
    Problem,
    parsed,
    read_json,
    read_optional_json,
)
from shared.rate_limit import RateLimiter
from shared.text import NoControls

ALL_SCOPES = "*"
ADMIN_SCOPE = "admin"
BOOTSTRAP_KEY_ID = "bootstrap"
# Every scope of every service: a key is made on one service for all of them.
KNOWN_SCOPES = frozenset({
    ADMIN_SCOPE,
    "participants:write", "participants:read", "participants:pii", "participants:grant",
    "contributions:write", "contributions:read",
    "claims:write", "claims:read", "claims:decide",
    "workforce:write", "coverage:admin",
    # Issue 11: employers (OPDs included) on registration, funded programmes and their
    # enrolments on contributions.
    "employers:write", "employers:read", "programmes:write", "programmes:read",
})
DEFAULT_REQUESTS_PER_MINUTE = 600
_CACHE_SECONDS = 30.0
NEW_KEY_MAX_BYTES = 8 * 1024
MAX_OVERLAP_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class Caller:
    key_id: str
    scopes: frozenset[str]
    # Whose workers the caller reads and changes: the partner, which keeps them across key
    # rotations (the id of the partner's first key).
    partner_id: str = BOOTSTRAP_KEY_ID
    requests_per_minute: int | None = None  # None: no limit (the bootstrap key)

    def may(self, scope: str) -> bool:
        return ALL_SCOPES in self.scopes or scope in self.scopes


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def new_key() -> str:
    return "ucj_" + secrets.token_urlsafe(32)


def now_utc() -> datetime:
    return datetime.now(UTC)


class KeyStore:
    """Looks keys up by hash in the service's copy, with a short cache so each request does not
    hit the database; the key directory makes it forget a key whenever that key changes."""

    def __init__(self, pool: asyncpg.Pool, bootstrap_key: str | None):
        self._pool = pool
        self._bootstrap_hash = hash_key(bootstrap_key) if bootstrap_key else None
        # hash -> (cached until, monotonic; the caller or None; valid until, epoch seconds)
        self._cache: dict[bytes, tuple[float, Caller | None, float]] = {}
        self.limiter = RateLimiter()

    async def caller_for(self, key: str) -> Caller | None:
        digest = hash_key(key)
        if self._bootstrap_hash is not None and hmac.compare_digest(digest, self._bootstrap_hash):
            return Caller(BOOTSTRAP_KEY_ID, frozenset({ALL_SCOPES}))
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is None or cached[0] <= now:
            row = await self._pool.fetchrow(
                "SELECT id, partner_id, scopes, requests_per_minute, revoked_at FROM api_keys"
                " WHERE key_hash = $1", digest)
            caller = (Caller(str(row["id"]), frozenset(row["scopes"]), str(row["partner_id"]),
                             row["requests_per_minute"]) if row else None)
            until = row["revoked_at"].timestamp() if row and row["revoked_at"] else math.inf
            if len(self._cache) > 10_000:
                self._cache.clear()
            cached = self._cache[digest] = (now + _CACHE_SECONDS, caller, until)
        _, caller, until = cached
        return caller if caller is not None and time.time() < until else None

    def forget(self, digest: bytes) -> None:
        self._cache.pop(digest, None)

    def admit(self, caller: Caller) -> None:
        """Spend one request of the caller's budget on this service; 429 when none is left."""
        if caller.requests_per_minute is None:
            return
        wait = self.limiter.take(caller.key_id, caller.requests_per_minute)
        if wait:
            raise Problem(429, "Too many requests",
                          f"this API key may make {caller.requests_per_minute} requests a "
                          "minute on this service; try again after Retry-After seconds",
                          retry_after=max(1, math.ceil(wait)))


async def authenticate(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Problem(401, "Unauthorized", "send Authorization: Bearer <api-key>")
    store: KeyStore = request.app.state.keys
    caller = await store.caller_for(key.strip())
    if caller is None:
        raise Problem(401, "Unauthorized", "unknown or revoked API key")
    store.admit(caller)
    return caller


def require(scope: str):
    """A dependency that lets the request through when its key carries `scope`."""

    async def dependency(caller: Annotated[Caller, Depends(authenticate)]) -> Caller:
        if not caller.may(scope):
            raise Problem(403, "Forbidden", f"this API key lacks the scope {scope!r}")
        return caller

    return dependency


class NewApiKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(min_length=1, max_length=100), NoControls]
    scopes: list[str] = Field(min_length=1, max_length=20)
    requests_per_minute: int = Field(default=DEFAULT_REQUESTS_PER_MINUTE, ge=1, le=100_000)


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # How long the old key keeps working, so the partner can switch without a gap.
    overlap_seconds: int = Field(default=0, ge=0, le=MAX_OVERLAP_SECONDS)


def _body_schema(model: type[BaseModel], *, required: bool = True) -> dict:
    return {"requestBody": {"required": required, "content": {"application/json": {
        "schema": model.model_json_schema()}}}}


def api_keys_router() -> APIRouter:
    """The partners' keys, on every service (scope `admin`; a key may also read, rotate and
    revoke itself):

    - POST /v1/api-keys: a new key, shown once;
    - GET /v1/api-keys, GET /v1/api-keys/{id}: what is known of them (never the key or hash);
    - DELETE /v1/api-keys/{id}: revoke, on every service within seconds;
    - POST /v1/api-keys/{id}/rotate: a new key for the same partner and scopes; the old one
      works for `overlap_seconds` more (0: stops now).
    """
    router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])

    # Bodies are read in the routes, after the key is checked: a body parameter would have
    # FastAPI read and parse it before any dependency runs, for anyone who sends one.
    @router.post("", status_code=201, openapi_extra=_body_schema(NewApiKey))
    async def create_key(request: Request,
                         _: Annotated[Caller, Depends(require(ADMIN_SCOPE))]) -> dict:
        body = parsed(NewApiKey, await read_json(request, max_bytes=NEW_KEY_MAX_BYTES))
        scopes = sorted(set(body.scopes))
        unknown = [s for s in scopes if s not in KNOWN_SCOPES]
        if unknown:
            raise Problem(422, "Invalid request", f"unknown scopes: {', '.join(unknown)}",
                          errors=[{"field": "scopes", "message": f"unknown scope {s!r}"}
                                  for s in unknown])
        key_id, key = uuid.uuid4(), new_key()
        record = KeyRecord(id=key_id, partner_id=key_id, name=body.name,
                           key_hash=hash_key(key).hex(), scopes=scopes,
                           requests_per_minute=body.requests_per_minute, created_at=now_utc())
        await _directory(request).publish(record)
        return {**record.public(now_utc()), "key": key}

    @router.get("")
    async def list_keys(request: Request,
                        _: Annotated[Caller, Depends(require(ADMIN_SCOPE))]) -> dict:
        now = now_utc()
        return {"keys": [r.public(now) for r in await local_records(request.app.state.pool)]}

    @router.get("/{key_id}")
    async def show_key(key_id: uuid.UUID, request: Request,
                       caller: Annotated[Caller, Depends(authenticate)]) -> dict:
        return (await _known(request, caller, key_id)).public(now_utc())

    @router.delete("/{key_id}")
    async def revoke_key(key_id: uuid.UUID, request: Request,
                         caller: Annotated[Caller, Depends(authenticate)]) -> dict:
        record, now = await _known(request, caller, key_id), now_utc()
        if record.revoked_at is None or record.revoked_at > now:
            record = record.model_copy(update={"revoked_at": now})
            await _directory(request).publish(record)
        return record.public(now)

    @router.post("/{key_id}/rotate", status_code=201,
                 openapi_extra=_body_schema(Rotation, required=False))
    async def rotate_key(key_id: uuid.UUID, request: Request,
                         caller: Annotated[Caller, Depends(authenticate)]) -> dict:
        old = await _known(request, caller, key_id)
        body = parsed(Rotation, await read_optional_json(request, max_bytes=NEW_KEY_MAX_BYTES)
                      or {})
        now = now_utc()
        if old.revoked_at is not None and old.revoked_at <= now:
            raise Problem(409, "Conflict", "this key is revoked; make a new one instead")
        key, new_id = new_key(), uuid.uuid4()
        new = KeyRecord(id=new_id, partner_id=old.partner_id, name=old.name,
                        key_hash=hash_key(key).hex(), scopes=old.scopes,
                        requests_per_minute=old.requests_per_minute, created_at=now,
                        rotated_from=old.id)
        ends = now + timedelta(seconds=body.overlap_seconds)
        if old.revoked_at is not None:
            ends = min(ends, old.revoked_at)
        # The new key first: should the second write fail, the partner still has a key.
        await _directory(request).publish(new, old.model_copy(update={"revoked_at": ends}))
        return {**new.public(now), "key": key, "previous": {
            "id": str(old.id), "revoked_at": ends.isoformat()}}

    return router



def _directory(request: Request) -> KeyDirectory:
    return request.app.state.key_directory


async def _known(request: Request, caller: Caller, key_id: uuid.UUID) -> KeyRecord:
    """The key, for an admin or the key itself; 404 for anyone else, as for an unknown id."""
    if not (caller.may(ADMIN_SCOPE) or caller.key_id == str(key_id)):
        raise Problem(404, "Not found", "no such API key")
    record = await local_record(request.app.state.pool, key_id)
    if record is None:
        raise Problem(404, "Not found", "no such API key")
    return record
