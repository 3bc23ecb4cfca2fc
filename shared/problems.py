"""RFC 9457 problem details for every error, and the request-body reader that produces them.

Bad input is a 4xx that says what is wrong; anything else that escapes is a 500 and a bug.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


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
    ):
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.type = type_
        self.extra = extra or {}

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
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
    return JSONResponse(problem.body(), status_code=problem.status, media_type=PROBLEM_JSON,
                        headers=headers)


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


def install_problem_handlers(app: FastAPI) -> None:
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
        # Path, exception type and frames only: bodies, queries and some exception messages
        # (a database's "Key (nik)=(...)") may hold personal data.
        log.error("unhandled %s on %s %s\n%s", type(exc).__name__, request.method,
                  request.url.path, "".join(traceback.format_tb(exc.__traceback__)))
        return problem_response(Problem(500, "Internal error", "an unexpected error; it is a bug"))
