"""One log format for every process: a JSON object a line (time, level, logger, message, and
the request id of the HTTP request being served, when there is one). Log lines carry ids and
counts, never NIK or names.

Exceptions are logged by class and frames only: an exception's message can quote the data it
failed on (a database's "Key (nik)=(...) already exists", a ValueError naming a value), and a
traceback's locals can hold a request body. So a logged exception shows its class (with an
OSError's errno and a database error's SQLSTATE), the classes of what caused it, and the
file:line of each frame, never its message, the source lines or any value.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from contextvars import ContextVar
from types import TracebackType

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# The id of the HTTP request this task serves (shared/problems.py RequestGuard sets it): in
# every log line written meanwhile, and as `correlation_id` in every event it causes.
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return REQUEST_ID.get()
# Frames of a logged traceback, innermost last: enough to find the bug, bounded for a log line.
MAX_FRAMES = 30
_MAX_CHAINED = 5


def configure(level: str) -> None:
    logging.basicConfig(level=level.upper(), format=FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter(FORMAT))


def exception_class(exc: BaseException) -> str:
    """The exception's class, with an errno or SQLSTATE when it has one: never its message."""
    name = type(exc).__name__
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.isalnum() and len(sqlstate) == 5:
        return f"{name} {sqlstate}"
    if isinstance(exc, OSError) and isinstance(exc.errno, int):
        return f"{name} errno {exc.errno}"
    if isinstance(exc, BaseExceptionGroup):
        inner = ", ".join(exception_class(e) for e in exc.exceptions[:3])
        more = f", +{len(exc.exceptions) - 3}" if len(exc.exceptions) > 3 else ""
        return f"{name} [{inner}{more}]"
    return name


def frames(tb: TracebackType | None, limit: int = MAX_FRAMES) -> list[str]:
    """`file:line in function` of each frame, innermost last; no source lines, no locals."""
    entries = traceback.extract_tb(tb)
    shown = [f"{_short(e.filename)}:{e.lineno} in {e.name}" for e in entries[-limit:]]
    if len(entries) > limit:
        shown.insert(0, f"({len(entries) - limit} outer frames left out)")
    return shown


def exception_summary(exc: BaseException) -> str:
    """Class, causes' classes and frames of `exc`, as logged: no message, no values."""
    lines = [exception_class(exc) + " (message not logged)"]
    lines += ["  " + f for f in frames(exc.__traceback__)]
    seen, cause = {id(exc)}, _cause(exc)
    while cause is not None and len(seen) <= _MAX_CHAINED and id(cause) not in seen:
        seen.add(id(cause))
        lines.append(f"while handling {exception_class(cause)}")
        lines += ["  " + f for f in frames(cause.__traceback__, limit=5)]
        cause = _cause(cause)
    return "\n".join(lines)


class SafeFormatter(logging.Formatter):
    """Formats a record's exception as exception_summary() does, whoever logged it (our code,
    uvicorn, aiokafka, faust): `log.exception(...)` anywhere cannot write an exception's
    message into the log."""

    def format(self, record: logging.LogRecord) -> str:
        # Formatter.format reuses record.exc_text once set: another handler's formatter may
        # have put the full traceback there. Format ours, and leave the record as it was.
        cached = record.exc_text
        record.exc_text = None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        exc = ei[1] if isinstance(ei, tuple) else None
        if exc is None:
            return "(exception not logged)"
        return exception_summary(exc)

    def formatStack(self, stack_info: str) -> str:  # noqa: N802
        # A stack as text holds source lines; keep only its "File ..., line N, in f" lines.
        return "\n".join(line.strip() for line in stack_info.splitlines()
                         if line.lstrip().startswith("File "))


def _cause(exc: BaseException) -> BaseException | None:
    return exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)


def _short(filename: str) -> str:
    """A path relative to the working directory or site-packages, not a home directory."""
    for marker in ("site-packages" + os.sep, os.getcwd() + os.sep):
        index = filename.find(marker)
        if index >= 0:
            return filename[index + len(marker):]
    return filename


class JsonFormatter(SafeFormatter):
    """SafeFormatter's rules, as one JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {"time": self.formatTime(record), "level": record.levelname,
                                   "logger": record.name, "message": record.getMessage()}
        request_id = REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False)
