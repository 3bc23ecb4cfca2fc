"""RFC 9457 problem details for every error, and the request-body reader that produces them.

Bad input is a 4xx that says what is wrong; a dependency away (the database down, restarting or
not answering in time) is a 503 with Retry-After; anything else that escapes is a 500 and a bug.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ExceptionGroup,
)
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

    def warn(self, dependency: str, exc: BaseException, request: Request) -> None:
        now = time.monotonic()
        if now < self._next:
            self._quiet += 1
            return
        more = (f" ({self._quiet} more requests answered 503 since the last warning)"
                if self._quiet else "")
        log.warning("%s does not answer (%s) on %s %s: answered 503%s", dependency,
                    describe_away(exc), request.method, request.url.path, more)
        self._next, self._quiet = now + self._every, 0


def validation_problem(errors: list[dict[str, str]], detail: str | None = None) -> Problem:
    return Problem(422, "Invalid request", detail or "; ".join(
        f"{e['field']}: {e['message']}" for e in errors[:5]), errors=errors)


def field_errors(exc_errors: Any) -> list[dict[str, str]]:
    """pydantic/FastAPI error entries as [{"field": "a.b", "message": ...}]."""
    out = []
    for err in exc_errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        out.append({"field": ".".join(loc) or "body", "message": err.get("msg", "invalid")})
    return out


async def read_json(request: Request, *, max_bytes: int) -> Any:
    """The request's JSON body, or a clear 4xx: wrong content type, too large, not JSON."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Problem(415, "Unsupported media type",
                      f"send application/json (got {content_type or 'no content type'})")
    body = await read_body(request, max_bytes=max_bytes)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, "Malformed JSON", f"the body is not valid JSON: {exc}") from None


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise Problem(413, "Request too large", f"the body may be at most {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise Problem(413, "Request too large", f"the body may be at most {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def install_problem_handlers(app: FastAPI, *, dependency: str = "the database") -> None:
    """Every error as problem+json. `dependency` names, in a 503's detail, what an outage
    (dependency_away) means for this app: "the registration database"."""
    outages = _OutageLog()

    def away(request: Request, exc: BaseException) -> JSONResponse:
        outages.warn(dependency, exc, request)
        return problem_response(dependency_away_problem(dependency))

    async def _dependency(request: Request, exc: Exception) -> JSONResponse:
        if dependency_away(exc):
            return away(request, exc)
        raise exc  # a bug: on to the 500 below

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
        if dependency_away(exc):  # raised outside the routes (a middleware)
            return away(request, exc)
        # Path, exception type and frames only: bodies, queries and some exception messages
        # (a database's "Key (nik)=(...)") may hold personal data.
        log.error("unhandled %s on %s %s\n%s", type(exc).__name__, request.method,
                  request.url.path, "".join(traceback.format_tb(exc.__traceback__)))
        return problem_response(Problem(500, "Internal error", "an unexpected error; it is a bug"))
