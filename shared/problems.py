"""RFC 9457 problem details for every error, and the request-body reader that produces them.

Bad input is a 4xx that says what is wrong; a dependency away (the database down, restarting or
not answering in time) is a 503 with Retry-After; anything else that escapes is a 500 and a bug.

Every request passes RequestGuard first (install_problem_handlers installs it, outermost): it
gives the request an id (X-Request-ID), bounds any body in size and time whatever route reads it
(413 and 408 problems, the connection closed), and answers what escapes the routes as a 500 (or
a 503 for an outage) that it logs by exception class, route and request id only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import REQUEST_ID, exception_class, exception_summary

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# What a 503 asks clients to wait before trying again: a restarting database is back in seconds.
RETRY_AFTER_SECONDS = 5


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        type_: str = "about:blank",
        extra: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ):
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.type = type_
        self.extra = extra or {}
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail or self.title,
            "errors": self.errors,
        }
        body.update(self.extra)
        return body


def problem_response(problem: Problem) -> JSONResponse:
    headers = {}
    if problem.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if problem.retry_after is not None:
        headers["Retry-After"] = str(problem.retry_after)
    return JSONResponse(problem.body(), status_code=problem.status, media_type=PROBLEM_JSON,
                        headers=headers or None)


# --- a dependency away ------------------------------------------------------------------------

# Candidates for dependency_away(): an exception handler is looked up by these types, then the
# function decides (an InterfaceError or a PostgresError is usually a bug, sometimes an outage).
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
    ExceptionGroup,
)
_BROKEN_STATE = re.compile(r"cannot switch to state \d+; another operation")
# SQLSTATE classes of a server that is away: 08 connection exception, 57P shutting down,
# restarting or starting (AdminShutdown, CrashShutdown, CannotConnectNow, DatabaseDropped, idle
# session timeout), 53 insufficient resources (too many connections, disk full, out of memory).
_AWAY_SQLSTATES = ("08", "57P", "53")
# OSErrors of the file system are a deployment's or the code's fault, not an outage.
_FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                PermissionError)
# asyncpg raises a plain InterfaceError for a connection or pool that closed under it (and for
# misuse, which is a bug): only the former is an outage.
_CLOSED = re.compile(r"\b(connection|pool) (is|was) (closed|closing)\b|underlying connection "
                     r"is closed")


def dependency_away(exc: BaseException) -> bool:
    """Whether `exc` says a dependency is away (refused, reset, shutting down, restarting, full
    or not answering within its deadline), rather than that the code has a bug.

    OSError (connection refused/reset, a connect or query deadline: TimeoutError) except file
    system errors; asyncpg errors of SQLSTATE class 08, 57P and 53; asyncpg's InterfaceError
    for a closed connection or pool; an exception group of nothing but these."""
    if isinstance(exc, BaseExceptionGroup):
        return all(dependency_away(e) for e in exc.exceptions)
    if isinstance(exc, asyncpg.InternalClientError) and _BROKEN_STATE.search(str(exc)):
        # A connection the server dropped mid-operation (seen when PostgreSQL restarts under
        # the coverage workers' transactions): the protocol state is lost, not a bug of ours.
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return (getattr(exc, "sqlstate", None) or "").startswith(_AWAY_SQLSTATES)
    if isinstance(exc, asyncpg.InterfaceError):
        return bool(_CLOSED.search(str(exc)))
    if isinstance(exc, OSError):
        return not isinstance(exc, _FILE_ERRORS)
    return False


def dependency_away_problem(dependency: str, *, retry_after: int = RETRY_AFTER_SECONDS,
                            extra: dict[str, Any] | None = None) -> Problem:
    """The 503 for a dependency away, e.g. dependency_away_problem("the coverage database")."""
    return Problem(503, "Service unavailable", f"{dependency} does not answer; try again shortly",
                   retry_after=retry_after, extra=extra)


def describe_away(exc: BaseException) -> str:
    """What went wrong, for a log line: the exception's type, SQLSTATE or errno, never its
    message (a server's message may quote data)."""
    if isinstance(exc, BaseExceptionGroup):
        return ", ".join(describe_away(e) for e in exc.exceptions[:3])
    name = type(exc).__name__
    if isinstance(exc, asyncpg.PostgresError) and getattr(exc, "sqlstate", None):
        return f"{name} {exc.sqlstate}"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{name} errno {exc.errno}"
    return name


class _OutageLog:
    """One warning per outage, not one per request: the first, then a summary every
    `every` seconds while requests keep failing."""

    def __init__(self, every: float = 10.0):
        self._every = every
        self._next = 0.0
        self._quiet = 0

    def warn(self, dependency: str, exc: BaseException, scope: Scope) -> None:
        now = time.monotonic()
        if now < self._next:
            self._quiet += 1
            return
        more = (f" ({self._quiet} more requests answered 503 since the last warning)"
                if self._quiet else "")
        log.warning("%s does not answer (%s) on %s: answered 503%s", dependency,
                    describe_away(exc), _route_of(scope), more)
        self._next, self._quiet = now + self._every, 0


def validation_problem(errors: list[dict[str, str]], detail: str | None = None) -> Problem:
    return Problem(422, "Invalid request", detail or "; ".join(
        f"{e['field']}: {e['message']}" for e in errors[:5]), errors=errors)


M = TypeVar("M", bound=BaseModel)


def parsed(model: type[M], data: object) -> M:
    """`data` as `model`, or the 422 problem naming each field that is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(errors_of(exc, "body")) from None


# The common kinds of pydantic error, in the words every service answers with.
_FRIENDLIER = {"missing": "is required", "extra_forbidden": "is not a field of this request",
               "uuid_parsing": "must be a UUID", "uuid_type": "must be a UUID"}


def field_errors(exc_errors: Any, *, whole: str = "body") -> list[dict[str, str]]:
    """pydantic/FastAPI error entries as [{"field": "a.b", "message": ...}]: friendlier words
    for the common kinds, our own validators' messages without pydantic's "Value error, "
    prefix; never the input (pass `exc.errors(include_input=False)` or FastAPI's entries).
    `whole` names an error about the whole object."""
    out = []
    for err in exc_errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        message = _FRIENDLIER.get(err.get("type", "")) or str(
            err.get("msg", "invalid")).removeprefix("Value error, ")
        out.append({"field": ".".join(loc) or whole, "message": message})
    return out


def errors_of(exc: ValidationError, whole: str = "") -> list[dict[str, str]]:
    """A pydantic ValidationError's entries as field_errors gives them (one about the whole
    row or object: field `whole`)."""
    return field_errors(exc.errors(include_url=False, include_context=False,
                                   include_input=False), whole=whole)


async def read_json(request: Request, *, max_bytes: int) -> Any:
    """The request's JSON body, or a clear 4xx: wrong content type, too large, not JSON."""
    _expect_json(request)
    return json_of(await read_body(request, max_bytes=max_bytes))


async def read_optional_json(request: Request, *, max_bytes: int) -> Any:
    """Like read_json, but an empty body is None (for bodies whose fields all have defaults)."""
    body = await read_body(request, max_bytes=max_bytes)
    if not body.strip():
        return None
    _expect_json(request)
    return json_of(body)


def _expect_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Problem(415, "Unsupported media type",
                      f"send application/json (got {content_type or 'no content type'})")


def json_of(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "Malformed JSON", f"the body is not valid JSON: {exc}") from None


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The body, read as it streams in: a declared Content-Length above `max_bytes` is a 413
    before any byte is read, and reading stops (413) as soon as more than `max_bytes` came.
    RequestGuard bounds the time it may take (408)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise body_too_large(max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise body_too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def install_problem_handlers(app: FastAPI, *, dependency: str = "the database",
                             body_limits: BodyLimits | None = None) -> None:
    """Every error as problem+json, and the RequestGuard in front of everything added so far.
    `dependency` names, in a 503's detail, what an outage (dependency_away) means for this app:
    "the registration database". `body_limits` (also app.state.body_limits, read per request)
    bound every request body."""
    outages = _OutageLog()
    app.state.body_limits = body_limits or BodyLimits()

    def away(request: Request, exc: BaseException) -> JSONResponse:
        outages.warn(dependency, exc, request.scope)
        return problem_response(dependency_away_problem(dependency))

    async def _dependency(request: Request, exc: Exception) -> JSONResponse:
        if dependency_away(exc):
            return away(request, exc)
        raise exc  # a bug: on to RequestGuard

    for error_type in DEPENDENCY_ERRORS:
        app.add_exception_handler(error_type, _dependency)

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(validation_problem(field_errors(exc.errors())))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "Error")
        return problem_response(Problem(exc.status_code, title, str(exc.detail)))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        # Only what escapes RequestGuard itself gets here (it answers everything inside it).
        if dependency_away(exc):
            return away(request, exc)
        request_id = request_id_of(request.scope)
        log_bug(exc, request.scope, request_id)
        response = problem_response(internal_error(request_id))
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    app.add_middleware(RequestGuard, dependency=dependency, outages=outages)


# --- every request: an id, a body bounded in size and time, bugs answered --------------------

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming X-Request-ID is kept when it is a UUID or 32 hex digits (a proxy's, e.g. nginx's
# $request_id): ids are logged, so a caller's free text (a name, a NIK) must not pass as one.
_WELL_FORMED_ID = re.compile(
    r"[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class BodyLimits:
    """What any request body may be, whichever route reads it (routes set lower size limits of
    their own: read_body). A body must arrive within `grace_seconds` of the route's first read
    plus one second per `min_bytes_per_second` received: a client trickling bytes is answered
    408 instead of holding the request open (and a 16 MiB bulk needs ~17 minutes to exceed it).
    """

    max_bytes: int = 16 * 1024 * 1024
    grace_seconds: float = 10.0
    min_bytes_per_second: float = 16 * 1024
    # A response sent while more of its request's body than this is unread ends the connection,
    # rather than the server reading and dropping the rest to keep it open.
    drain_bytes: int = 64 * 1024


def request_id_of(scope: Scope) -> str | None:
    """The id RequestGuard gave this request (in the X-Request-ID response header too)."""
    state = scope.get("state")
    value = state.get("request_id") if isinstance(state, dict) else None
    return value if isinstance(value, str) else None


def internal_error(request_id: str | None) -> Problem:
    return Problem(500, "Internal error", "an unexpected error; it is a bug",
                   extra={"request_id": request_id} if request_id else None)


def body_too_large(max_bytes: int) -> Problem:
    return Problem(413, "Request too large", f"the body may be at most {max_bytes} bytes")


def body_too_slow(limits: BodyLimits) -> Problem:
    return Problem(408, "Request timeout",
                   f"the body arrived too slowly: send it within {limits.grace_seconds:g} s plus "
                   f"1 s per {limits.min_bytes_per_second:g} bytes")


def log_bug(exc: BaseException, scope: Scope, request_id: str | None) -> None:
    """The log line of a 500: exception class, route template, request id and frames; never the
    exception's message, the path's values, the query or the body (any may hold a NIK)."""
    log.error("unhandled %s on %s (request %s)\n%s", exception_class(exc), _route_of(scope),
              request_id or "-", exception_summary(exc))


def _route_of(scope: Scope) -> str:
    """`POST /v1/participants/{participant_id}`: the route's template, not the path asked."""
    path = getattr(scope.get("route"), "path", None)
    return f"{scope.get('method', '?')} {path if isinstance(path, str) else '(no route)'}"


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1").strip().lower()
            if _WELL_FORMED_ID.fullmatch(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class ResponseCutShort(RuntimeError):
    """Raised to the server for a bug after the response had begun, instead of the bug's own
    exception (whose message the server would log)."""


class RequestGuard:
    """ASGI middleware in front of every route (installed by install_problem_handlers).

    - An id per request: a well-formed incoming X-Request-ID, or a new one; in the response's
      X-Request-ID header, in the 500 problem's `request_id` and in its log line.
    - Bodies bounded whichever way a route reads them (read_json, FastAPI's own parsing): a
      declared Content-Length above BodyLimits.max_bytes is answered 413 before the app runs;
      reads stop at the limit (413) or when the body arrives too slowly (408). A refused body is
      the answer even if the route turned the error into another one, and its connection is
      closed: the rest of the body is never read. Uvicorn keeps at most ~64 KiB of a body
      waiting (it stops reading the socket until the app reads): nothing holds more.
    - What escapes the app is answered here (a 503 for an outage, else a 500) and not raised
      on: the server would log it with its message (a message may quote data). A bug after the
      response began is logged here and raised on as ResponseCutShort, which holds no data."""

    def __init__(self, app: ASGIApp, *, dependency: str, outages: _OutageLog):
        self.app = app
        self.dependency = dependency
        self.outages = outages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope)
        state = scope.setdefault("state", {})
        if isinstance(state, dict):
            state["request_id"] = request_id
        REQUEST_ID.set(request_id)  # this request's task and what it starts: logs and events
        app_state = getattr(scope.get("app"), "state", None)
        limits = getattr(app_state, "body_limits", None) or BodyLimits()
        exchange = _Exchange(scope, receive, send, limits, request_id)
        if exchange.declared is not None and exchange.declared > limits.max_bytes:
            await exchange.refuse_now(body_too_large(limits.max_bytes))
            return
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            if exchange.answered:
                if exchange.refused is not None:
                    return
                # The response had begun: it cannot become a 500. The server must cut the
                # connection (the client sees a truncated response, not a complete one): it
                # gets an exception that says only that.
                log_bug(exc, scope, request_id)
                raise ResponseCutShort(f"a bug cut the response short (request {request_id}); "
                                       "logged above") from None
            if exchange.refused is not None:
                await exchange.answer(exchange.refused)
            elif dependency_away(exc):
                self.outages.warn(self.dependency, exc, scope)
                await exchange.answer(dependency_away_problem(self.dependency))
            else:
                log_bug(exc, scope, request_id)
                await exchange.answer(internal_error(request_id))


class _Exchange:
    """One request and its response as RequestGuard follows them."""

    def __init__(self, scope: Scope, receive: Receive, send: Send, limits: BodyLimits,
                 request_id: str):
        self._receive, self._send, self.limits = receive, send, limits
        self.request_id = request_id
        self.declared: int | None = None
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and self.declared is None:
                self.declared = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = chunked or b"chunked" in value.lower()
        self.body_done = not chunked and not self.declared
        self.received = 0
        self.first_read: float | None = None
        self.refused: Problem | None = None
        self.answered = False  # a response has begun
        self.swallow = False  # the app's response is replaced by the refusal sent instead

    async def receive(self) -> Message:
        if self.refused is not None:
            raise self.refused
        if self.body_done:  # e.g. a stream waiting for the client to go away: no deadline
            return await self._receive()
        loop = asyncio.get_running_loop()
        if self.first_read is None:
            self.first_read = loop.time()
        deadline = (self.first_read + self.limits.grace_seconds
                    + self.received / self.limits.min_bytes_per_second)
        try:
            async with asyncio.timeout_at(deadline):
                message = await self._receive()
        except TimeoutError:
            raise self.refuse(body_too_slow(self.limits)) from None
        if message["type"] != "http.request":  # the client went away
            self.body_done = True
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.limits.max_bytes:
            raise self.refuse(body_too_large(self.limits.max_bytes))
        if not message.get("more_body", False):
            self.body_done = True
        return message

    def refuse(self, problem: Problem) -> Problem:
        problem.extra["request_id"] = self.request_id
        self.refused = problem
        return problem

    async def refuse_now(self, problem: Problem) -> None:
        await self.answer(self.refuse(problem))

    async def send(self, message: Message) -> None:
        if self.swallow:
            return
        if message["type"] == "http.response.start":
            if self.refused is not None:
                # The route answered a refused body with something else (FastAPI makes any
                # error while it reads a body a 400): the refusal is the answer.
                self.swallow = True
                await self.answer(self.refused)
                return
            self.answered = True
            message = {**message, "headers": [*message.get("headers", ()), *self._headers()]}
        await self._send(message)

    async def answer(self, problem: Problem) -> None:
        if problem.status >= 500:
            problem.extra.setdefault("request_id", self.request_id)
        response = problem_response(problem)
        self.answered = True
        await self._send({"type": "http.response.start", "status": response.status_code,
                          "headers": [*response.raw_headers, *self._headers()]})
        await self._send({"type": "http.response.body", "body": response.body})

    def _headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"x-request-id", self.request_id.encode())]
        if not self.body_done and (
                self.refused is not None or self.declared is None
                or self.declared - self.received > self.limits.drain_bytes):
            # The rest of the body is not read: the connection cannot carry another request.
            headers.append((b"connection", b"close"))
        return headers
