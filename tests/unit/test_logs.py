"""Logged exceptions show their class and frames, never their message: a message can quote the
data it failed on (a NIK, a name)."""

from __future__ import annotations

import io
import logging

import asyncpg
import pytest

from shared.logs import FORMAT, SafeFormatter, exception_summary

NIK, NAME = "1275014508900001", "Siti Aminah"


def failing() -> None:
    raise ValueError(f"NIK {NIK} of {NAME} is taken")


def logged(formatter: logging.Formatter, log_it) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    log = logging.getLogger(f"test.logs.{id(stream)}")
    log.propagate = False
    log.addHandler(handler)
    try:
        log_it(log)
    finally:
        log.removeHandler(handler)
    return stream.getvalue()


def test_a_logged_exception_shows_its_class_and_frames_not_its_message():
    def log_it(log):
        try:
            failing()
        except ValueError:
            log.exception("registration failed")

    text = logged(SafeFormatter(FORMAT), log_it)
    assert "registration failed" in text
    assert "ValueError (message not logged)" in text
    assert "test_logs.py:" in text and "in failing" in text
    assert NIK not in text and "Siti" not in text and "Aminah" not in text
    assert "raise ValueError" not in text  # no source lines either


def test_the_causes_of_an_exception_are_named_by_class_only():
    def log_it(log):
        try:
            try:
                failing()
            except ValueError as exc:
                raise KeyError(NIK) from exc
        except KeyError as exc:
            log.error("lookup failed", exc_info=exc)

    text = logged(SafeFormatter(FORMAT), log_it)
    assert "KeyError (message not logged)" in text
    assert "while handling ValueError" in text
    assert NIK not in text and "Aminah" not in text


def test_a_database_error_shows_its_sqlstate_and_an_os_error_its_errno():
    duplicate = asyncpg.UniqueViolationError(f"Key (nik)=({NIK}) already exists")
    assert exception_summary(duplicate).startswith("UniqueViolationError 23505 ")
    refused = ConnectionRefusedError(111, f"refused for {NAME}")
    assert exception_summary(refused).startswith("ConnectionRefusedError errno 111 ")
    assert NIK not in exception_summary(duplicate) and "Siti" not in exception_summary(refused)


def test_exception_groups_name_their_members():
    group = ExceptionGroup("tasks", [ValueError(NIK), TimeoutError()])
    text = exception_summary(group)
    assert "ExceptionGroup [ValueError, TimeoutError]" in text
    assert NIK not in text


def test_a_traceback_another_handler_formatted_first_is_not_reused():
    """logging caches a record's formatted traceback (exc_text) on the record: a plain handler
    that formatted it first must not hand its text to ours."""
    plain, safe = io.StringIO(), io.StringIO()
    log = logging.getLogger("test.logs.two-handlers")
    log.propagate = False
    handlers = [logging.StreamHandler(plain), logging.StreamHandler(safe)]
    handlers[1].setFormatter(SafeFormatter(FORMAT))
    for handler in handlers:
        log.addHandler(handler)
    try:
        try:
            failing()
        except ValueError:
            log.exception("failed")
    finally:
        for handler in handlers:
            log.removeHandler(handler)
    assert NIK in plain.getvalue()  # what a plain formatter would have written
    assert NIK not in safe.getvalue() and "ValueError (message not logged)" in safe.getvalue()


def test_configure_makes_every_root_handler_safe(monkeypatch):
    from shared import logs

    root = logging.getLogger()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    monkeypatch.setattr(root, "handlers", [handler])
    level = root.level
    try:
        logs.configure("INFO")
        try:
            failing()
        except ValueError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    finally:
        root.setLevel(level)
    assert "Exception in ASGI application" in stream.getvalue()
    assert "ValueError (message not logged)" in stream.getvalue()
    assert NIK not in stream.getvalue()


@pytest.mark.parametrize("stack_text", [
    f'Stack (most recent call last):\n  File "a.py", line 3, in f\n    register("{NIK}")\n'])
def test_a_logged_stack_keeps_its_file_lines_only(stack_text):
    assert SafeFormatter(FORMAT).formatStack(stack_text) == 'File "a.py", line 3, in f'
