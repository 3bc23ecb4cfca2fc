"""Hostile request bodies and heads never hold a service: the registration service on a real
uvicorn server (the settings every service runs with) and a real PostgreSQL, spoken to over raw
sockets so the test sees exactly what is sent and when the answer comes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel

from services.claims.api import create_app as claims_app
from services.claims.settings import ClaimsSettings
from services.contributions.api import create_app as contributions_app
from services.contributions.settings import ContributionsSettings
from services.coverage.api import create_app as coverage_app
from services.coverage.settings import CoverageApiSettings
from services.registration.api import create_app as registration_app
from services.registration.settings import RegistrationSettings
from shared import serve
from shared.problems import PROBLEM_JSON, BodyLimits, install_problem_handlers
from tests.integration.conftest import AUTH, BOOTSTRAP_KEY, asgi_client

pytestmark = pytest.mark.integration

GIB = 1024 * 1024 * 1024
SINGLE_LIMIT = 64 * 1024  # registration's limit for one worker's body


def worker(serial: int = 1) -> dict:
    return {"nik": f"127501450890{serial:04d}", "full_name": "Siti Aminah",
            "birth_date": "1990-08-05", "sex": "F", "region_code": "12.75.01.1001",
            "segment": "BPU", "employer_id": None, "occupation": "pedagang",
            "monthly_income": 1_000_000, "programs": ["JKK", "JKM"]}


@dataclass
class Served:
    app: FastAPI
    port: int


def settings_for(infra, prefix: str) -> RegistrationSettings:
    return RegistrationSettings(DATABASE_URL=infra.new_database("registration"),
                                KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap,
                                UCJ_TOPIC_PREFIX=prefix, UCJ_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY)


@pytest.fixture
async def served(infra, bare_prefix) -> AsyncIterator[Served]:
    """The registration service behind uvicorn, as shared.serve runs it, on a free port."""
    app = registration_app(settings_for(infra, bare_prefix))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                            **serve.uvicorn_limits())
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        assert not task.done(), "the server did not start"
        assert time.monotonic() < deadline, "the server did not start in 30 s"
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(app, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict:
        assert self.headers["content-type"] == PROBLEM_JSON, self.headers
        return orjson.loads(self.body)


async def read_answer(reader: asyncio.StreamReader) -> Answer:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status_line, *lines = head.split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(int(status_line.split()[1]), headers, body)


def request_head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in
                                                          headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def connect(served: Served) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", served.port)


async def head_only(served: Served, method: str, path: str, headers: dict[str, str],
                    ) -> tuple[Answer, float]:
    """Send a request's head and not one byte of its body; the answer and how long it took."""
    reader, writer = await connect(served)
    try:
        started = time.monotonic()
        writer.write(request_head(method, path, headers))
        await writer.drain()
        answer = await asyncio.wait_for(read_answer(reader), 10)
        return answer, time.monotonic() - started
    finally:
        writer.close()


async def answer_to(sending: Callable[[], Awaitable[None]], reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> tuple[Answer, float]:
    """The answer read while `sending` writes (it is cancelled then and the connection closed),
    and how many seconds it took to come."""
    sender = asyncio.create_task(sending())
    started = time.monotonic()
    try:
        answer = await asyncio.wait_for(read_answer(reader), 10)
        return answer, time.monotonic() - started
    finally:
        sender.cancel()
        writer.close()


async def stream_until_answered(served: Served, path: str, headers: dict[str, str],
                                chunk: bytes, most: int) -> tuple[Answer, int]:
    """A chunked body sent as fast as the server takes it until the answer comes (or `most`
    bytes went): the answer and how many body bytes were sent."""
    reader, writer = await connect(served)
    sent = 0
    answered = asyncio.Event()

    async def send_body() -> None:
        nonlocal sent
        writer.write(request_head("POST", path, {**headers, "Transfer-Encoding": "chunked"}))
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            while sent < most and not answered.is_set():
                writer.write(frame)
                sent += len(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the server closed its side: the answer is in the reader

    sender = asyncio.create_task(send_body())
    try:
        answer = await asyncio.wait_for(read_answer(reader), 30)
        answered.set()
        await sender
        return answer, sent
    finally:
        sender.cancel()
        writer.close()


# --- sizes ------------------------------------------------------------------------------------


async def test_a_declared_content_length_above_every_limit_is_refused_at_once(served):
    answer, seconds = await head_only(served, "POST", "/v1/participants", {
        **AUTH, "Content-Type": "application/json", "Content-Length": str(GIB)})
    assert answer.status == 413
    assert seconds < 2
    assert answer.headers["connection"] == "close"  # the body is never read
    problem = answer.problem()
    assert problem["title"] == "Request too large"
    assert problem["request_id"] == answer.headers["x-request-id"]


async def test_a_declared_content_length_above_the_routes_limit_is_refused_at_once(served):
    answer, seconds = await head_only(served, "POST", "/v1/participants", {
        **AUTH, "Content-Type": "application/json", "Content-Length": str(SINGLE_LIMIT + 1)})
    assert answer.status == 413
    assert seconds < 2
    assert f"at most {SINGLE_LIMIT} bytes" in answer.problem()["detail"]


async def test_a_streamed_body_above_the_routes_limit_is_refused_once_past_it(served):
    answer, sent = await stream_until_answered(
        served, "/v1/participants", {**AUTH, "Content-Type": "application/json"},
        b" " * 16 * 1024, most=GIB)
    assert answer.status == 413
    assert answer.problem()["detail"] == f"the body may be at most {SINGLE_LIMIT} bytes"
    assert answer.headers["connection"] == "close"
    # answered as soon as the limit was passed, not after the gigabyte
    assert sent < 64 * 1024 * 1024


async def test_a_streamed_body_above_the_services_limit_is_refused_whatever_the_route_allows(
        served):
    served.app.state.body_limits = BodyLimits(max_bytes=256 * 1024)  # bulk allows 16 MiB
    answer, sent = await stream_until_answered(
        served, "/v1/participants/bulk", {**AUTH, "Content-Type": "application/json"},
        b" " * 16 * 1024, most=GIB)
    assert answer.status == 413
    problem = answer.problem()
    assert problem["detail"] == f"the body may be at most {256 * 1024} bytes"
    assert problem["request_id"] == answer.headers["x-request-id"]
    assert sent < 64 * 1024 * 1024


async def test_a_body_within_its_limits_is_served_and_keeps_the_connection(served):
    reader, writer = await connect(served)
    try:
        for serial in (1, 2):
            body = orjson.dumps(worker(serial))
            writer.write(request_head("POST", "/v1/participants", {
                **AUTH, "Content-Type": "application/json", "Content-Length": str(len(body))})
                + body)
            answer = await asyncio.wait_for(read_answer(reader), 10)
            assert answer.status == 201, answer.body
            assert "connection" not in answer.headers
    finally:
        writer.close()


# --- the key before the body ------------------------------------------------------------------


async def test_a_new_api_key_without_a_valid_key_is_401_before_the_body_is_read(served):
    for headers in ({}, {"Authorization": "Bearer not-a-key"}):
        answer, seconds = await head_only(served, "POST", "/v1/api-keys", {
            **headers, "Content-Type": "application/json", "Content-Length": str(10 * 1024 * 1024)})
        assert answer.status == 401, answer.body
        assert seconds < 2  # not one byte of the body was sent
        assert answer.headers["connection"] == "close"


class CountedBody:
    """A request body as an async generator that counts what the server asked for."""

    def __init__(self, chunks: int, size: int = 64 * 1024):
        self.chunks, self.size, self.taken = chunks, size, 0

    async def __aiter__(self):
        for _ in range(self.chunks):
            self.taken += 1
            yield b" " * self.size


@pytest.fixture
async def client(infra, keys_prefix) -> AsyncIterator[httpx.AsyncClient]:
    # httpx's ASGI transport hands the app the body only as the app asks for it
    async for client in asgi_client(registration_app(settings_for(infra, keys_prefix))):
        yield client


async def test_the_body_generator_of_an_unauthenticated_new_key_is_never_touched(client):
    for headers in ({}, {"Authorization": "Bearer not-a-key"},
                    {"Authorization": "Basic dXNlcjpwYXNz"}):
        body = CountedBody(chunks=16 * 1024)  # 1 GiB
        response = await client.post("/v1/api-keys", content=body,
                                     headers={**headers, "Content-Type": "application/json"})
        assert response.status_code == 401
        assert body.taken == 0


async def test_a_new_key_body_is_read_only_up_to_its_limit(client):
    body = CountedBody(chunks=16 * 1024, size=1024)
    response = await client.post("/v1/api-keys", content=body,
                                 headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert body.taken <= 9  # 8 KiB, and the chunk that passed it


async def test_a_new_key_still_works(client):
    response = await client.post("/v1/api-keys", json={"name": "pemda", "scopes": [
        "participants:read"]}, headers=AUTH)
    assert response.status_code == 201, response.text
    invalid = await client.post("/v1/api-keys", json={"name": "", "scopes": []}, headers=AUTH)
    assert invalid.status_code == 422
    assert {e["field"] for e in invalid.json()["errors"]} == {"name", "scopes"}


def test_no_route_of_any_service_parses_its_body_before_its_dependencies_run():
    """FastAPI reads and parses a body parameter before it runs the route's dependencies (the
    API key check): every route reads its body itself, with read_json, after them."""
    db = "postgresql://nobody@127.0.0.1:1/none"  # never connected: no lifespan runs
    common = {"DATABASE_URL": db, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    apps = [registration_app(RegistrationSettings(**common)),
            contributions_app(ContributionsSettings(**common)),
            coverage_app(CoverageApiSettings(**common)), claims_app(ClaimsSettings(**common))]
    for app in apps:
        for route in app.routes:
            if isinstance(route, APIRoute):
                assert route.body_field is None, f"{app.title}: {route.path} takes a body " \
                    "parameter: read it with read_json after the dependencies"


class Thing(BaseModel):
    name: str


async def test_a_refused_body_is_the_answer_even_where_fastapi_parses_it():
    app = FastAPI()
    install_problem_handlers(app, body_limits=BodyLimits(max_bytes=10_000))

    @app.post("/things")
    async def things(thing: Thing) -> dict:
        return {"name": thing.name}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        body = CountedBody(chunks=1000, size=1024)
        response = await client.post("/things", content=body,
                                     headers={"Content-Type": "application/json"})
        assert response.status_code == 413  # FastAPI alone would say 400
        assert response.headers["content-type"] == PROBLEM_JSON
        assert body.taken <= 11
        ok = await client.post("/things", json={"name": "x"})
        assert ok.status_code == 200


# --- time -------------------------------------------------------------------------------------


async def test_a_trickling_body_is_answered_408_within_its_deadline(served):
    served.app.state.body_limits = BodyLimits(grace_seconds=1.0, min_bytes_per_second=100)
    reader, writer = await connect(served)

    async def trickle() -> None:
        writer.write(request_head("POST", "/v1/participants", {
            **AUTH, "Content-Type": "application/json", "Content-Length": "10000"}))
        try:
            for _ in range(10_000):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.1)  # 10 bytes/s: a tenth of the rate asked
        except (ConnectionError, OSError):
            pass

    answer, seconds = await answer_to(trickle, reader, writer)
    assert answer.status == 408
    assert 1.0 <= seconds < 2.5  # 1 s + 1 s per 100 bytes received (~10 by then)
    assert answer.problem()["title"] == "Request timeout"
    assert answer.headers["connection"] == "close"


async def test_a_body_sent_at_a_fair_pace_is_not_cut_short(served):
    served.app.state.body_limits = BodyLimits(grace_seconds=0.5, min_bytes_per_second=100)
    body = orjson.dumps(worker(3))
    reader, writer = await connect(served)
    try:
        writer.write(request_head("POST", "/v1/participants", {
            **AUTH, "Content-Type": "application/json", "Content-Length": str(len(body))}))
        for start in range(0, len(body), 50):  # 500 bytes/s, in pieces
            writer.write(body[start:start + 50])
            await writer.drain()
            await asyncio.sleep(0.1)
        answer = await asyncio.wait_for(read_answer(reader), 10)
    finally:
        writer.close()
    assert answer.status == 201, answer.body


async def test_a_trickling_head_is_answered_408_and_closed(served, monkeypatch):
    monkeypatch.setattr(serve, "HEAD_SECONDS", 1.0)
    reader, writer = await connect(served)

    async def trickle() -> None:
        writer.write(b"POST /v1/participants HTTP/1.1\r\nHost: test\r\n")
        try:
            for i in range(1000):
                writer.write(f"X-Slow-{i}: a\r\n".encode())
                await writer.drain()
                await asyncio.sleep(0.2)
        except (ConnectionError, OSError):
            pass

    answer, seconds = await answer_to(trickle, reader, writer)
    assert answer.status == 408
    assert seconds < 2.5
    assert answer.problem()["status"] == 408


async def test_a_connection_that_sends_nothing_is_closed(served, monkeypatch):
    monkeypatch.setattr(serve, "HEAD_SECONDS", 1.0)
    reader, writer = await connect(served)
    started = time.monotonic()
    try:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
    assert time.monotonic() - started < 2.5


async def test_a_head_larger_than_its_limit_is_431(served):
    reader, writer = await connect(served)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        try:
            for i in range(200):  # 200 x 1 KiB headers, never ended
                writer.write(f"X-Pad-{i}: {'a' * 1024}\r\n".encode())
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        answer = await asyncio.wait_for(read_answer(reader), 10)
    finally:
        writer.close()
    assert answer.status == 431
    assert answer.problem()["status"] == 431


async def test_a_body_trickling_after_its_answer_does_not_keep_the_connection(served,
                                                                             monkeypatch):
    """A small body left unread (a 401 answered at once) keeps the connection for the next
    request; if it then trickles, the connection ends after HEAD_SECONDS (and the linger)."""
    monkeypatch.setattr(serve, "HEAD_SECONDS", 1.0)
    reader, writer = await connect(served)

    async def trickle() -> None:
        writer.write(request_head("POST", "/v1/participants", {
            "Content-Type": "application/json", "Content-Length": "10000"}))
        try:
            for _ in range(10_000):
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.2)
        except (ConnectionError, OSError):
            pass

    sender = asyncio.create_task(trickle())
    try:
        answer = await asyncio.wait_for(read_answer(reader), 10)
        assert answer.status == 401
        assert "connection" not in answer.headers  # 10 kB unread: not worth a new connection
        started = time.monotonic()
        try:
            assert await asyncio.wait_for(reader.read(), 10) == b""
        except ConnectionResetError:
            pass  # closed while the client was still sending: as good
        assert time.monotonic() - started < 1.0 + serve.LINGER_SECONDS + 1.0
    finally:
        sender.cancel()
        writer.close()
