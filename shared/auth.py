"""API keys: `Authorization: Bearer <key>`, stored hashed, with scopes.

The key in UCJ_BOOTSTRAP_API_KEY (when set at start) is accepted everywhere with every scope;
use it to create the partners' keys through POST /v1/api-keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.problems import Problem, field_errors, read_json, validation_problem
from shared.text import NoControls

ALL_SCOPES = "*"
BOOTSTRAP_KEY_ID = "bootstrap"
_CACHE_SECONDS = 30.0
NEW_KEY_MAX_BYTES = 8 * 1024


@dataclass(frozen=True)
class Caller:
    key_id: str
    scopes: frozenset[str]

    def may(self, scope: str) -> bool:
        return ALL_SCOPES in self.scopes or scope in self.scopes


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def new_key() -> str:
    return "ucj_" + secrets.token_urlsafe(32)


class KeyStore:
    """Looks keys up by hash, with a short cache so each request does not hit the database."""

    def __init__(self, pool: asyncpg.Pool, bootstrap_key: str | None):
        self._pool = pool
        self._bootstrap_hash = hash_key(bootstrap_key) if bootstrap_key else None
        self._cache: dict[bytes, tuple[float, Caller | None]] = {}

    async def caller_for(self, key: str) -> Caller | None:
        digest = hash_key(key)
        if self._bootstrap_hash is not None and hmac.compare_digest(digest, self._bootstrap_hash):
            return Caller(BOOTSTRAP_KEY_ID, frozenset({ALL_SCOPES}))
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached and cached[0] > now:
            return cached[1]
        row = await self._pool.fetchrow(
            "SELECT id, scopes FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", digest)
        caller = Caller(str(row["id"]), frozenset(row["scopes"])) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + _CACHE_SECONDS, caller)
        return caller

    async def create(self, name: str, scopes: list[str]) -> tuple[str, str]:
        key, key_id = new_key(), uuid.uuid4()
        await self._pool.execute(
            "INSERT INTO api_keys (id, name, key_hash, scopes) VALUES ($1, $2, $3, $4)",
            key_id, name, hash_key(key), scopes)
        return str(key_id), key


async def authenticate(request: Request) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Problem(401, "Unauthorized", "send Authorization: Bearer <api-key>")
    store: KeyStore = request.app.state.keys
    caller = await store.caller_for(key.strip())
    if caller is None:
        raise Problem(401, "Unauthorized", "unknown or revoked API key")
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


def api_keys_router(known_scopes: list[str]) -> APIRouter:
    """POST /v1/api-keys (scope `admin`): a new key for a partner, shown once."""
    router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])

    # The body is read in the route, after the key is checked: a body parameter would have
    # FastAPI read and parse it before any dependency runs, for anyone who sends one.
    @router.post("", status_code=201, openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {
            "schema": NewApiKey.model_json_schema()}}}})
    async def create_key(request: Request,
                         _: Annotated[Caller, Depends(require("admin"))]) -> dict:
        try:
            body = NewApiKey.model_validate(
                await read_json(request, max_bytes=NEW_KEY_MAX_BYTES))
        except ValidationError as exc:
            raise validation_problem(field_errors(exc.errors())) from None
        unknown = sorted(set(body.scopes) - set(known_scopes) - {"admin"})
        if unknown:
            raise Problem(422, "Invalid request", f"unknown scopes: {', '.join(unknown)}",
                          errors=[{"field": "scopes", "message": f"unknown scope {s!r}"}
                                  for s in unknown])
        key_id, key = await request.app.state.keys.create(body.name, sorted(set(body.scopes)))
        return {"id": key_id, "name": body.name, "scopes": sorted(set(body.scopes)), "key": key}

    return router
