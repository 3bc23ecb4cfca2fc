"""A bug is a 500 whose log line names the exception's class, the route and the request's id,
and nothing a request carried: the message of the exception may quote a NIK."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from fastapi import FastAPI, Request

from shared.problems import PROBLEM_JSON, ResponseCutShort, install_problem_handlers, read_json

NIK, NAME, BORN = "1275014508900001", "Siti Aminah", "1990-08-05"


def app_with_a_bug() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app, dependency="the registration database")

    @app.post("/v1/participants/{participant_id}")
    async def change(participant_id: str, request: Request) -> None:
        body = await read_json(request, max_bytes=10_000)
        raise ValueError(f"NIK {body['nik']} ({body['full_name']}, {participant_id})")

    @app.get("/v1/ok")
    async def ok() -> dict:
        return {"ok": True}

    return app


async def call(app: FastAPI, method: str, path: str, **kwargs) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)  # a bug is answered, not raised on to the server
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


def record_text(record: logging.LogRecord) -> str:
    if record.name.startswith(("httpx", "httpcore")):
        return ""  # the test's own client logs the URLs it calls
    return record.getMessage() + str(record.exc_info or "") + str(record.exc_text or "")


async def test_a_bug_is_a_500_logged_by_class_and_request_id_never_by_its_message(caplog):
    caplog.set_level(logging.DEBUG)
    response = await call(app_with_a_bug(), "POST", f"/v1/participants/{NIK}",
                          json={"nik": NIK, "full_name": NAME, "birth_date": BORN})
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM_JSON
    request_id = response.headers["x-request-id"]
    body = response.json()
    assert body["request_id"] == request_id
    assert body["detail"] == "an unexpected error; it is a bug"
    [line] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    text = line.getMessage()
    assert "ValueError" in text and request_id in text
    assert "POST /v1/participants/{participant_id}" in text  # the route, not the path asked
    assert "test_logs_500.py:" in text and "in change" in text  # where it failed
    assert line.exc_info is None  # no traceback a formatter could print with its message
    for record in caplog.records:
        assert NIK not in record_text(record)
        assert "Siti" not in record_text(record) and "Aminah" not in record_text(record)


async def test_every_response_carries_a_request_id_and_a_well_formed_one_is_kept(caplog):
    app = app_with_a_bug()
    fresh = await call(app, "GET", "/v1/ok")
    assert fresh.status_code == 200
    assert len(fresh.headers["x-request-id"]) == 32
    other = await call(app, "GET", "/v1/ok")
    assert other.headers["x-request-id"] != fresh.headers["x-request-id"]
    given = str(uuid.uuid4())
    kept = await call(app, "POST", "/v1/participants/x", json={"nik": NIK, "full_name": NAME},
                      headers={"X-Request-ID": given.upper()})
    assert kept.headers["x-request-id"] == given
    assert kept.json()["request_id"] == given
    assert any(given in r.getMessage() for r in caplog.records)


async def test_an_incoming_request_id_that_is_not_an_id_is_replaced(caplog):
    caplog.set_level(logging.DEBUG)
    for given in (NIK, NAME, "x" * 32, "a" * 1000, ""):
        response = await call(app_with_a_bug(), "POST", "/v1/participants/x",
                              json={"nik": "1", "full_name": "x"},
                              headers={"X-Request-ID": given})
        assert response.headers["x-request-id"] != given
        assert len(response.headers["x-request-id"]) == 32
    for record in caplog.records:
        assert NIK not in record_text(record) and "Siti" not in record_text(record)


async def test_a_bug_in_a_response_already_begun_is_logged_the_same_way(caplog):
    from fastapi.responses import StreamingResponse

    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/v1/stream")
    async def stream() -> StreamingResponse:
        async def lines():
            yield b"one\n"
            raise ValueError(f"NIK {NIK}")
        return StreamingResponse(lines())

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with pytest.raises(ResponseCutShort) as raised:  # what the server gets: it cuts the
            await client.get("/v1/stream")  # connection, so the client sees a truncated body
    assert NIK not in str(raised.value) and raised.value.__cause__ is None
    assert raised.value.__suppress_context__
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "ValueError" in errors[0].getMessage()
    for record in caplog.records:
        assert NIK not in record_text(record)
