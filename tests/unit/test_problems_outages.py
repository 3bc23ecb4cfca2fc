"""An outage is a 503 with Retry-After, not a 500: which errors mean "a dependency is away",
and what the problem handlers answer for them (a tiny app, no database needed)."""

from __future__ import annotations

import errno
import logging

import asyncpg
import httpx
import pytest
from fastapi import FastAPI, Request

from shared.problems import (
    PROBLEM_JSON,
    RETRY_AFTER_SECONDS,
    dependency_away,
    install_problem_handlers,
    read_json,
)

AWAY = [
    ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
    ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    BrokenPipeError(errno.EPIPE, "Broken pipe"),
    OSError(errno.ENETUNREACH, "Network is unreachable"),
    OSError("Multiple exceptions: [Errno 111] ..., [Errno 99] ..."),  # asyncio, several addresses
    TimeoutError(),  # a connect, query or pool-acquire deadline passed
    asyncpg.PostgresConnectionError("connection failure"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.ConnectionFailureError("connection failure"),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.exceptions.CrashShutdownError("terminating connection because of crash"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.exceptions.DiskFullError("could not extend file"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.InterfaceError("cannot call PreparedStatement.fetch(): the underlying connection "
                           "is closed"),
    asyncpg.InterfaceError("pool is closing"),
    ExceptionGroup("all away", [ConnectionRefusedError(), TimeoutError()]),
]

BUGS = [
    ValueError("bad"),
    KeyError("participant_id"),
    AttributeError("'State' object has no attribute 'pool'"),
    FileNotFoundError(errno.ENOENT, "No such file", "/etc/ucj/clock"),
    PermissionError(errno.EACCES, "Permission denied"),
    asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.UndefinedTableError('relation "participants" does not exist'),
    asyncpg.exceptions.SyntaxOrAccessError("syntax error"),
    asyncpg.exceptions.QueryCanceledError("canceling statement due to user request"),
    asyncpg.exceptions.InvalidPasswordError("password authentication failed"),
    asyncpg.DataError("invalid input for query argument $1"),
    asyncpg.InterfaceError("cannot call Connection.fetch(): connection has been released back "
                           "to the pool"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    ExceptionGroup("mixed", [ConnectionRefusedError(), ValueError("bad")]),
]


@pytest.mark.parametrize("exc", AWAY, ids=lambda e: type(e).__name__)
def test_a_dependency_refusing_resetting_restarting_or_too_slow_is_away(exc):
    assert dependency_away(exc)


@pytest.mark.parametrize("exc", BUGS, ids=lambda e: type(e).__name__)
def test_anything_else_is_a_bug(exc):
    assert not dependency_away(exc)


NIK, NAME = "1275014508900001", "Siti Aminah"


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app, dependency="the registration database")

    @app.post("/v1/participants")
    async def register(request: Request) -> None:
        await read_json(request, max_bytes=10_000)
        raise exc

    return app


async def post(app: FastAPI) -> httpx.Response:
    # raise_app_exceptions=False: a bug is re-raised to the server after its 500 is sent
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post("/v1/participants", json={"nik": NIK, "full_name": NAME})


@pytest.mark.parametrize("exc", [ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
                                 asyncpg.exceptions.AdminShutdownError("shutting down"),
                                 asyncpg.InterfaceError("connection is closed"), TimeoutError()],
                         ids=lambda e: type(e).__name__)
async def test_an_outage_is_a_503_naming_the_dependency_with_retry_after(exc, caplog):
    caplog.set_level(logging.WARNING)
    response = await post(app_raising(exc))
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.headers["retry-after"] == str(RETRY_AFTER_SECONDS)
    body = response.json()
    assert body["status"] == 503 and body["title"] == "Service unavailable"
    assert body["detail"] == "the registration database does not answer; try again shortly"
    assert caplog.records, "an outage is logged"
    warning = caplog.records[-1]
    assert warning.levelno == logging.WARNING
    assert "the registration database" in warning.getMessage()


async def test_the_outage_warning_holds_no_personal_data(caplog):
    caplog.set_level(logging.DEBUG)
    await post(app_raising(asyncpg.ConnectionDoesNotExistError(f"lost while sending {NIK}")))
    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + str(record.exc_info or "")
        assert NIK not in text and "Siti" not in text and "Aminah" not in text


@pytest.mark.parametrize("exc", [asyncpg.UniqueViolationError("duplicate key"),
                                 asyncpg.InterfaceError("connection has been released back to "
                                                        "the pool"), KeyError("x")],
                         ids=lambda e: type(e).__name__)
async def test_a_bug_stays_a_500(exc):
    response = await post(app_raising(exc))
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    assert "retry-after" not in response.headers
    assert response.json()["detail"] == "an unexpected error; it is a bug"


async def test_one_warning_per_outage_not_one_per_request(caplog):
    caplog.set_level(logging.WARNING, logger="shared.problems")
    app = app_raising(ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    for _ in range(5):
        assert (await post(app)).status_code == 503
    assert len([r for r in caplog.records if r.name == "shared.problems"]) == 1


def test_a_connection_dropped_mid_operation_is_an_outage_other_client_errors_are_bugs():
    # Seen when PostgreSQL restarts under a running transaction (the coverage workers).
    dropped = asyncpg.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress")
    assert dependency_away(dropped)
    assert not dependency_away(asyncpg.InternalClientError("unexpected codec"))
