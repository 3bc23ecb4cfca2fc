"""A database outage is a 503 with Retry-After, never a 500, and the services come back by
themselves: registration and contributions in-process on a PostgreSQL of the test's own, which
the tests stop, kill -9, freeze and start again (same port, same data directory)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

import shared.db
import shared.service_app
from deploy.local import stack
from services.contributions.api import create_app as contributions_app
from services.contributions.settings import ContributionsSettings
from services.registration.api import create_app as registration_app
from services.registration.settings import RegistrationSettings
from shared.clock import WIB, FixedClock
from shared.events import ParticipantRegistered, make_envelope
from shared.problems import PROBLEM_JSON, dependency_away
from tests.integration.conftest import AUTH, BOOTSTRAP_KEY, contributions_learn

pytestmark = pytest.mark.integration

NOWHERE = "127.0.0.1:9"  # these apps never reach Kafka (no embedded relay)


class PrivatePostgres:
    """A PostgreSQL server of this module's own, to stop and start at will."""

    def __init__(self, workdir: Path, port: int):
        self.workdir, self.port = workdir, port
        self.proc: stack.ManagedProcess | None = None

    @property
    def server_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def running(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def new_database(self, label: str) -> str:
        name = f"t_{label}_{uuid.uuid4().hex[:10]}"
        return stack.create_databases(self.server_url, [name])[name]

    async def start(self) -> None:
        self.proc = await asyncio.to_thread(stack.start_postgres, self.workdir, self.port)

    async def stop(self) -> None:
        assert self.proc is not None
        await asyncio.to_thread(self.proc.stop)

    async def kill9(self) -> None:
        assert self.proc is not None
        await asyncio.to_thread(self.proc.kill9)

    @contextlib.contextmanager
    def frozen(self):
        """SIGSTOP the server's processes: it accepts TCP connections but never answers."""
        assert self.proc is not None
        # Each backend is a session of its own (PostgreSQL calls setsid): signal them one by one.
        pids = [self.proc.pid, *children(self.proc.pid)]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)


def children(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            raw = stat.read_text()
            if int(raw[raw.rindex(")") + 2:].split()[1]) == parent:
                found.append(int(stat.parent.name))
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pg = PrivatePostgres(tmp_path_factory.mktemp("outages") / "pg", stack.free_port())
    pg.proc = stack.start_postgres(pg.workdir, pg.port)
    try:
        yield pg
    finally:
        if pg.proc is not None:
            pg.proc.stop()


@pytest.fixture
async def pg(server):
    yield server
    if not server.running():  # a test that failed half-way leaves it running for the next
        await server.start()


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, with its lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


def registration(url: str) -> FastAPI:
    return registration_app(RegistrationSettings(
        DATABASE_URL=url, KAFKA_BOOTSTRAP_SERVERS=NOWHERE, UCJ_TOPIC_PREFIX="outages.",
        UCJ_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY))


NIK_PREFIX, NAME = "127501450890", "Siti Aminah"


async def register(client: httpx.AsyncClient, serial: int, *,
                   idempotency_key: str | None = None) -> httpx.Response:
    body = {"nik": f"{NIK_PREFIX}{serial:04d}", "full_name": NAME, "birth_date": "1990-08-05",
            "sex": "F", "region_code": "12.75.01.1001", "segment": "BPU", "employer_id": None,
            "occupation": "pedagang", "monthly_income": 1_000_000, "programs": ["JKK", "JKM"]}
    headers = {**AUTH, **({"Idempotency-Key": idempotency_key} if idempotency_key else {})}
    return await client.post("/v1/participants", json=body, headers=headers)


def assert_away(response: httpx.Response, service: str) -> dict:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == 503
    assert f"the {service} database" in body["detail"]
    return body


async def assert_healthy(client: httpx.AsyncClient) -> None:
    health = await client.get("/healthz")
    assert health.status_code == 200, health.text
    assert health.json() == {"status": "ok", "dependencies": {"database": "ok"}}


async def assert_health_names_the_database(client: httpx.AsyncClient, service: str) -> None:
    body = assert_away(await client.get("/healthz"), service)
    assert body["dependencies"] == {"database": "away"}


def assert_no_personal_data_logged(caplog) -> None:
    for record in caplog.records:
        text = record.getMessage() + str(record.exc_info or "") + str(record.exc_text or "")
        assert NIK_PREFIX not in text and "Siti" not in text and "Aminah" not in text, text


async def test_registration_answers_503_while_its_database_is_stopped_and_recovers_by_itself(
        pg, caplog):
    caplog.set_level(logging.INFO)
    async with serving(registration(pg.new_database("registration"))) as client:
        first = await register(client, 1)
        assert first.status_code == 201, first.text
        await assert_healthy(client)

        await pg.stop()
        body = assert_away(await register(client, 2), "registration")
        assert body["detail"] == ("the registration database does not answer; "
                                  "try again shortly")
        assert_away(await client.get(f"/v1/participants/{first.json()['participant_id']}",
                                     headers=AUTH), "registration")
        await assert_health_names_the_database(client, "registration")
        assert any(r.levelno == logging.WARNING and "the registration database" in
                   r.getMessage() for r in caplog.records)

        await pg.start()  # same port, same data: the app was not restarted
        again = await register(client, 2)
        assert again.status_code == 201, again.text
        await assert_healthy(client)
    assert_no_personal_data_logged(caplog)


async def test_a_kill_9_of_postgresql_mid_request_is_a_503_and_the_service_recovers(pg, caplog):
    caplog.set_level(logging.INFO)
    url = pg.new_database("registration")
    app = registration(url)
    async with serving(app) as client:
        assert (await register(client, 1)).status_code == 201
        # Hold the table so that a registration waits inside the database when it dies.
        holder = await asyncpg.connect(url)
        await holder.execute("BEGIN; LOCK TABLE participants IN ACCESS EXCLUSIVE MODE")
        in_flight = asyncio.create_task(register(client, 2))
        deadline = time.monotonic() + 10
        while not await holder.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
            assert time.monotonic() < deadline, "the registration never reached the lock"
            await asyncio.sleep(0.05)
        slow_query = asyncio.create_task(app.state.pool.fetchval("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.1)

        await pg.kill9()
        assert_away(await in_flight, "registration")
        with pytest.raises(Exception) as died:
            await slow_query
        assert dependency_away(died.value), repr(died.value)
        holder.terminate()
        assert_away(await register(client, 3), "registration")
        await assert_health_names_the_database(client, "registration")

        await pg.start()  # crash recovery, then the same pool reconnects
        again = await register(client, 2)
        assert again.status_code == 201, again.text
        await assert_healthy(client)
    assert_no_personal_data_logged(caplog)


async def test_a_database_that_does_not_answer_in_time_is_a_503_within_the_deadlines(
        pg, monkeypatch):
    for name in ("CONNECT_TIMEOUT", "COMMAND_TIMEOUT", "ACQUIRE_TIMEOUT"):
        monkeypatch.setattr(shared.db, name, 1.0)
    async with serving(registration(pg.new_database("registration"))) as client:
        assert (await register(client, 1)).status_code == 201
        with pg.frozen():
            started = time.monotonic()
            assert_away(await register(client, 2, idempotency_key="k-2"), "registration")
            await assert_health_names_the_database(client, "registration")
            assert time.monotonic() - started < 8
        # A write that timed out may still have happened: a retry with its Idempotency-Key
        # gets the one outcome.
        again = await register(client, 2, idempotency_key="k-2")
        assert again.status_code == 201, again.text
        await assert_healthy(client)


async def test_a_service_started_while_its_database_is_down_serves_once_it_answers(
        pg, monkeypatch):
    monkeypatch.setattr(shared.service_app, "START_WAIT_SECONDS", 0.5)
    url = pg.new_database("registration")
    await pg.stop()
    async with serving(registration(url)) as client:  # no waiting for the database
        assert_away(await register(client, 1), "registration")
        await assert_health_names_the_database(client, "registration")

        await pg.start()
        deadline = time.monotonic() + 20
        while (await client.get("/healthz")).status_code != 200:
            assert time.monotonic() < deadline, (await client.get("/healthz")).text
            await asyncio.sleep(0.2)
        created = await register(client, 1)
        assert created.status_code == 201, created.text
        await assert_healthy(client)


async def test_contributions_answer_503_while_their_database_is_stopped_and_recover(pg):
    url = pg.new_database("contributions")
    settings = ContributionsSettings(DATABASE_URL=url, KAFKA_BOOTSTRAP_SERVERS=NOWHERE,
                                     UCJ_TOPIC_PREFIX="outages.",
                                     UCJ_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY)
    clock = FixedClock(datetime(2026, 11, 20, 9, 0, tzinfo=WIB))
    pid = uuid.uuid4()
    payment = {"payment_ref": "VA-OUTAGE-1", "participant_id": str(pid),
               "first_period": "2026-11", "months": 1, "amount": 16_800, "payer": "self"}
    async with serving(contributions_app(settings, clock=clock)) as client:
        await learn_participant(url, pid)
        dues = await client.get(f"/v1/dues/{pid}", headers=AUTH)
        assert dues.status_code == 200 and dues.json()["amount"] == 16_800, dues.text
        await assert_healthy(client)

        await pg.stop()
        assert_away(await client.get(f"/v1/dues/{pid}", headers=AUTH), "contributions")
        assert_away(await client.post("/v1/contributions", json=payment, headers=AUTH),
                    "contributions")
        await assert_health_names_the_database(client, "contributions")

        await pg.start()
        assert (await client.get(f"/v1/dues/{pid}", headers=AUTH)).status_code == 200
        paid = await client.post("/v1/contributions", json=payment, headers=AUTH)
        assert paid.status_code == 201, paid.text
        await assert_healthy(client)


async def learn_participant(url: str, pid: uuid.UUID) -> None:
    payload = ParticipantRegistered(
        participant_id=pid, kpj="00000000018", region_code="12.75.01.1001", segment="BPU",
        employer_id=None, monthly_income=1_000_000, programs=["JKK", "JKM"],
        registered_on="2026-11-03")
    envelope = make_envelope(payload, source="registration", subject=str(pid), sequence=1)
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await contributions_learn(
                conn, [(envelope, payload)], datetime(2026, 11, 20).date())
    finally:
        await conn.close()


async def test_coverage_keeps_serving_its_counters_marked_stale_while_its_database_is_away(pg):
    from services.coverage.api import create_app as coverage_app
    from services.coverage.settings import CoverageApiSettings
    from tests.integration.test_coverage_api import eventually, publish

    settings = CoverageApiSettings(DATABASE_URL=pg.new_database("coverage"),
                                   KAFKA_BOOTSTRAP_SERVERS=NOWHERE, UCJ_TOPIC_PREFIX="outages.",
                                   UCJ_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY)
    app = coverage_app(settings)
    app.state.coverage.feed.stale_after = 1.0
    async with serving(app) as client:
        await publish(settings, 3, "12.75", {"registered": 7, "active": 2, "inactive": 5})
        await client.put("/v1/workforce/12.75", headers=AUTH,
                         json={"workforce": 132826, "year": 2024, "source": "BPS Sakernas"})
        held = await eventually(client, "/v1/coverage/regions/12.75",
                                lambda b: b["registered"] == 7 and not b["stale"])
        await pg.stop()
        try:
            await asyncio.sleep(1.5)
            served = await client.get("/v1/coverage/regions/12.75")
            assert served.status_code == 200, served.text
            body = served.json()
            assert body["stale"] is True
            assert {k: body[k] for k in ("registered", "active", "workforce", "ucj")} == \
                {k: held[k] for k in ("registered", "active", "workforce", "ucj")}
            assert_away(await client.put(
                "/v1/workforce/12.75", headers=AUTH,
                json={"workforce": 1000, "year": 2025, "source": "BPS"}), "coverage")
            assert_away(await client.get("/healthz"), "coverage")
        finally:
            await pg.start()
        await eventually(client, "/v1/coverage/regions/12.75", lambda b: not b["stale"])
        assert (await client.get("/healthz")).status_code == 200
