"""Snapshots, history, answers as of a past day and the forecast, on the coverage API with its
real PostgreSQL database (snapshots every 0.2 s instead of every hour)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import date, datetime, time, timedelta

import asyncpg
import orjson
import pytest

from services.coverage.api import create_app
from services.coverage.settings import CoverageApiSettings
from shared.clock import WIB
from tests.integration.conftest import BOOTSTRAP_KEY, asgi_client, until_ready
from tests.integration.test_coverage_api import eventually, publish

pytestmark = pytest.mark.integration

EVERY = 0.2


def settings_for(url: str, infra, prefix) -> CoverageApiSettings:
    return CoverageApiSettings(DATABASE_URL=url, KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap,
                               UCJ_TOPIC_PREFIX=prefix, UCJ_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY)


@pytest.fixture
async def coverage(infra, prefix):
    settings = settings_for(infra.new_database("coverage"), infra, prefix)
    async for client in asgi_client(create_app(settings, snapshot_every=EVERY)):
        await until_ready(client)
        yield client, settings


def today() -> date:
    return datetime.now(WIB).date()


def at(day: date, hour: int = 12) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=WIB)


async def query(settings, sql: str, *args):
    conn = await asyncpg.connect(settings.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def insert_snapshot(settings, code: str, taken_at: datetime, active: int,
                          workforce: int | None = 1000, registered: int | None = None) -> None:
    counters = {"registered": registered or active, "active": active, "inactive": 0,
                "terminated": 0}
    await query(settings, "INSERT INTO coverage_snapshots (region_code, taken_at, registered,"
                " active, inactive, terminated, workforce, counters)"
                " VALUES ($1, $2, $3, $4, 0, 0, $5, $6)", code, taken_at,
                counters["registered"], active, workforce, orjson.dumps(counters).decode())


async def snapshots_of(settings, code: str) -> list[asyncpg.Record]:
    return await query(settings, "SELECT taken_at, active, registered, workforce FROM"
                       " coverage_snapshots WHERE region_code = $1 ORDER BY taken_at", code)


async def until_snapshots(settings, code: str, check, seconds: float = 10.0):
    rows: list = []
    for _ in range(int(seconds / 0.05)):
        rows = await snapshots_of(settings, code)
        if check(rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"the snapshots of {code} never satisfied the check: {rows}")


async def test_regions_of_every_level_are_snapshotted_once_per_change(coverage):
    client, settings = coverage
    await publish(settings, 0, "12.75", {"registered": 5, "active": 3, "inactive": 2})
    await eventually(client, "/v1/coverage/regions/12.75", lambda b: b["active"] == 3)
    rows = await until_snapshots(settings, "12.75", lambda r: len(r) == 1)
    assert (rows[0]["registered"], rows[0]["active"], rows[0]["workforce"]) == (5, 3, None)
    for code in ("ID", "12", "12.75.01"):
        assert [r["active"] for r in await snapshots_of(settings, code)] == [3]
    await asyncio.sleep(EVERY * 4)  # unchanged: nothing more is written
    assert len(await snapshots_of(settings, "12.75")) == 1
    await publish(settings, 0, "12.75", {"registered": 6, "active": 4, "inactive": 2})
    rows = await until_snapshots(settings, "12.75", lambda r: len(r) == 2)
    assert [r["active"] for r in rows] == [3, 4]
    assert len(await snapshots_of(settings, "12.76")) == 0  # never had counters
    runs = await query(settings, "SELECT count(*) AS n FROM snapshot_runs")
    assert runs[0]["n"] >= 3


async def test_two_api_processes_write_no_duplicates(infra, prefix):
    settings = settings_for(infra.new_database("coverage"), infra, prefix)
    async with contextlib.AsyncExitStack() as stack:
        clients = []
        for _ in range(2):
            gen = asgi_client(create_app(settings, snapshot_every=EVERY))
            client = await gen.__anext__()
            stack.push_async_callback(gen.aclose)
            await until_ready(client)
            clients.append(client)
        await publish(settings, 1, "12.71", {"registered": 2, "active": 2})
        for client in clients:
            await eventually(client, "/v1/coverage/regions/12.71", lambda b: b["active"] == 2)
        await until_snapshots(settings, "12.71", lambda r: len(r) >= 1)
        await asyncio.sleep(EVERY * 5)
        assert len(await snapshots_of(settings, "12.71")) == 1
        await publish(settings, 1, "12.71", {"registered": 3, "active": 3})
        await until_snapshots(settings, "12.71", lambda r: len(r) >= 2)
        await asyncio.sleep(EVERY * 5)
        assert [r["active"] for r in await snapshots_of(settings, "12.71")] == [2, 3]


async def test_history_shows_the_last_snapshot_of_each_period_and_the_net_growth(coverage):
    client, settings = coverage
    day = today() - timedelta(days=40)
    await insert_snapshot(settings, "12.76", at(day - timedelta(days=5)), 90)
    await insert_snapshot(settings, "12.76", at(day, 8), 95)
    await insert_snapshot(settings, "12.76", at(day, 20), 100)
    await insert_snapshot(settings, "12.76", at(day + timedelta(days=2)), 80, workforce=2000)
    response = await client.get("/v1/coverage/regions/12.76/history", params={
        "from": day.isoformat(), "to": (day + timedelta(days=3)).isoformat(), "step": "day"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["region"]["code"] == "12.76" and body["step"] == "day"
    assert body["from"] == day.isoformat()
    assert [(p["period"], p["active"], p["net_growth"], p["ucj"]) for p in body["points"]] == [
        (day.isoformat(), 100, 10, 0.1),
        ((day + timedelta(days=1)).isoformat(), 100, 0, 0.1),
        ((day + timedelta(days=2)).isoformat(), 80, -20, 0.04),
        ((day + timedelta(days=3)).isoformat(), 80, 0, 0.04)]
    months = (await client.get("/v1/coverage/regions/12.76/history", params={
        "from": (day - timedelta(days=60)).isoformat(),
        "to": (today() + timedelta(days=70)).isoformat(), "step": "month"})).json()["points"]
    assert months[-1]["active"] == 80 and months[0]["net_growth"] is None
    assert months[-1]["period_end"] == today().isoformat()  # no days to come
    assert sum(p["net_growth"] or 0 for p in months) == 80 - months[0]["active"]


@pytest.mark.parametrize(("code", "params", "status"), [
    ("12.76", {"from": "2026-13-01", "to": "2026-12-01"}, 422),
    ("12.76", {"from": "2026-11-02", "to": "2026-11-01"}, 422),
    ("12.76", {"from": "2019-01-01", "to": "2026-01-01"}, 422),
    ("12.76", {"from": "2026-01-01", "to": "2026-02-01", "step": "year"}, 422),
    ("99.99", {"from": "2026-01-01", "to": "2026-02-01"}, 404),
])
async def test_bad_history_requests_are_clear_problems(coverage, code, params, status):
    client, _ = coverage
    response = await client.get(f"/v1/coverage/regions/{code}/history", params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_region_as_of_a_past_day_comes_from_its_last_snapshot_by_then(coverage):
    client, settings = coverage
    await query(settings, "INSERT INTO snapshot_runs (taken_at, regions) VALUES ($1, 0)",
                at(today() - timedelta(days=10)))
    await insert_snapshot(settings, "12.76", at(today() - timedelta(days=5)), 7, registered=9)
    path = "/v1/coverage/regions/12.76"
    past = (await client.get(path, params={"as_of": str(today() - timedelta(days=3))})).json()
    assert (past["active"], past["registered"], past["as_of"]) == (
        7, 9, str(today() - timedelta(days=3)))
    assert past["updated_at"].startswith(str(today() - timedelta(days=5)))
    before = (await client.get(path, params={"as_of": str(today() - timedelta(days=7))}))
    assert before.status_code == 200 and before.json()["active"] == 0
    assert before.json()["updated_at"] is None  # no counters yet then
    early = await client.get(path, params={"as_of": str(today() - timedelta(days=20))})
    assert early.status_code == 404
    future = await client.get(path, params={"as_of": str(today() + timedelta(days=1))})
    assert future.status_code == 422
    assert (await client.get(path, params={"as_of": "yesterday"})).status_code == 422
    assert "as_of" not in (await client.get(path)).json()


async def test_the_forecast_dates_the_target_at_the_pace_of_the_last_90_days(coverage, auth):
    client, settings = coverage
    await insert_snapshot(settings, "12.75", at(today() - timedelta(days=90)), 1000)
    await insert_snapshot(settings, "12.75", at(today() - timedelta(days=100)), 900)
    await publish(settings, 2, "12.75", {"registered": 1450, "active": 1450})
    await eventually(client, "/v1/coverage/regions/12.75", lambda b: b["active"] == 1450)
    assert (await client.put("/v1/workforce/12.75", headers=auth, json={
        "workforce": 10000, "year": today().year, "source": "BPS Sakernas"})).status_code == 200
    assert (await client.put("/v1/targets/12.75", headers=auth, json={
        "year": today().year, "ucj_target": 20, "source": "RPJMD"})).status_code == 200
    body = await eventually(client, "/v1/coverage/regions/12.75",
                            lambda b: b.get("forecast", {}).get("per_day") == 5.0)
    assert body["gap_people"] == 550
    assert body["forecast"] == {"reaches_target_on": str(today() + timedelta(days=110)),
                                "per_day": 5.0, "basis_days": 90, "reason": "at_this_pace"}
    listed = (await client.get("/v1/coverage/regions?level=regency&parent=12")).json()["items"]
    assert next(i for i in listed if i["region"]["code"] == "12.75")["forecast"] == \
        body["forecast"]
    assert "forecast" not in (await client.get("/v1/coverage/regions/12.76")).json()


async def test_a_shrinking_region_is_not_at_this_pace(coverage, auth):
    client, settings = coverage
    await insert_snapshot(settings, "12.71", at(today() - timedelta(days=30)), 500)
    await publish(settings, 4, "12.71", {"registered": 400, "active": 400})
    await eventually(client, "/v1/coverage/regions/12.71", lambda b: b["active"] == 400)
    assert (await client.put("/v1/workforce/12.71", headers=auth, json={
        "workforce": 10000, "year": today().year, "source": "BPS Sakernas"})).status_code == 200
    assert (await client.put("/v1/targets/12.71", headers=auth, json={
        "year": today().year, "ucj_target": 20, "source": "RPJMD"})).status_code == 200
    body = await eventually(client, "/v1/coverage/regions/12.71",
                            lambda b: b.get("forecast", {}).get("per_day") == -3.333333)
    assert body["forecast"]["reaches_target_on"] is None
    assert body["forecast"]["reason"] == "not_at_this_pace"
    assert body["forecast"]["basis_days"] == 30
