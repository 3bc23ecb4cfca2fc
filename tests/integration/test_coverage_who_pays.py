"""Who pays and who is missing on the coverage API (issue 11): employers and OPDs with their
compliance, funded programmes, channels and agents, read from the dimension counters and the
organisations the workers fold, written here straight into the coverage database as a worker's
transaction leaves them (tests/integration/test_coverage_api.py `publish`)."""

from __future__ import annotations

import uuid

import asyncpg
import orjson
import pytest

from tests.integration.conftest import next_version
from tests.integration.test_coverage_api import eventually, publish

pytestmark = pytest.mark.integration


async def organisation(settings, partition: int, kind: str, data: dict) -> str:
    """An employer or programme as the workers fold it, with the partition's next version."""
    key = data[f"{kind}_id"]
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            version = await next_version(conn, partition)
            await conn.execute(
                "INSERT INTO organisations (id, kind, partition, sequence, data, version)"
                " VALUES ($1, $2, $3, 1, $4::jsonb, $5)",
                uuid.UUID(key), kind, partition, orjson.dumps(data).decode(), version)
    finally:
        await conn.close()
    return key


def opd(name: str, declared: int | None, region: str = "12.74") -> dict:
    return {"employer_id": str(uuid.uuid4()), "name": name, "kind": "opd", "region_code": region,
            "npp": None, "declared_workers": [] if declared is None else [
                {"year": 2025, "count": declared, "source": "BKD"}]}


async def test_opds_with_none_covered_and_compliance(coverage):
    client, settings = coverage
    covered = await organisation(settings, 1, "employer", opd("Dinas Pendidikan", 100))
    half = await organisation(settings, 2, "employer", opd("Dinas Kesehatan", 40))
    none = await organisation(settings, 3, "employer", opd("Dinas Pertanian", 25))
    await organisation(settings, 4, "employer", opd("Kantor Camat", None))
    await organisation(settings, 5, "employer", {**opd("PT Elsewhere", 9, "12.75"),
                                                 "kind": "private"})
    await publish(settings, 1, "12.74", {"registered": 90, "active": 80, "inactive": 10,
                                         f"employer/{covered}/registered": 90,
                                         f"employer/{covered}/active": 80,
                                         f"employer/{covered}/inactive": 10})
    await publish(settings, 2, "12.74", {"registered": 20, "active": 20,
                                         f"employer/{half}/registered": 20,
                                         f"employer/{half}/active": 20,
                                         f"employer/{none}/terminated": 3})
    body = await eventually(client, "/v1/coverage/employers?region=12.74&kind=opd",
                            lambda b: b["summary"]["active"] == 100)
    assert body["summary"] == {"employers": 4, "with_covered": 2, "without_covered": 2,
                               "declared_workers": 165, "registered": 110, "active": 100}
    by_name = {e["name"]: e for e in body["employers"]}
    assert by_name["Dinas Pendidikan"]["compliance"] == 0.8
    assert by_name["Dinas Kesehatan"]["compliance"] == 0.5
    assert by_name["Dinas Pertanian"]["terminated"] == 3
    assert by_name["Kantor Camat"]["compliance"] is None
    # lowest compliance first, those without a declared figure last
    assert [e["name"] for e in body["employers"]] == [
        "Dinas Pertanian", "Dinas Kesehatan", "Dinas Pendidikan", "Kantor Camat"]
    missing = (await client.get("/v1/coverage/employers?region=12.74&kind=opd&covered=none"
                                )).json()
    assert {e["name"] for e in missing["employers"]} == {"Dinas Pertanian", "Kantor Camat"}
    one = (await client.get(f"/v1/coverage/employers/{covered}")).json()
    assert one["active"] == 80 and one["declared_workers"] == 100
    paged = (await client.get("/v1/coverage/employers?region=12.74&limit=3")).json()
    rest = (await client.get(f"/v1/coverage/employers?region=12.74&limit=3"
                             f"&cursor={paged['next_cursor']}")).json()
    assert len(paged["employers"]) == 3 and len(rest["employers"]) == 1
    assert rest["next_cursor"] is None


async def test_a_programme_shows_quota_enrolled_paid_this_month_and_budget(coverage):
    client, settings = coverage
    programme_id = str(uuid.uuid4())
    await organisation(settings, 6, "programme", {
        "programme_id": programme_id, "name": "APBD Kota Tanjungbalai 2026",
        "funder_region": "12.72", "year": 2026, "quota": 690, "budget_rupiah": 200_000_000,
        "funding_code": "SG", "programs": ["JKK", "JKM"], "first_period": "2026-01",
        "last_period": "2026-12"})
    this_month = (await eventually(client, "/v1/coverage/programmes/" + programme_id,
                                   lambda b: "month" in b))["month"]
    await publish(settings, 6, "12.72", {
        f"programme/{programme_id}/enrolled": 690, f"programme/{programme_id}/active": 345,
        f"programme/{programme_id}/paid_through/{this_month}": 345,
        f"programme/{programme_id}/paid_through/2000-01": 7,
        f"programme/{programme_id}/spent": 5_796_000})
    body = await eventually(client, "/v1/coverage/programmes/" + programme_id,
                            lambda b: b["enrolled"] == 690)
    assert body["quota"] == 690 and body["paid_this_month"] == 345
    assert body["not_paid_this_month"] == 345 and body["active"] == 345
    assert body["budget_spent"] == 5_796_000 and body["budget_left"] == 194_204_000
    listed = (await client.get("/v1/coverage/programmes?region=12")).json()
    assert [p["programme_id"] for p in listed["programmes"]] == [programme_id]
    assert (await client.get("/v1/coverage/programmes?region=13")).json()["programmes"] == []
    unknown = await client.get(f"/v1/coverage/programmes/{uuid.uuid4()}")
    assert unknown.status_code == 404


async def test_channels_and_agents_per_region_and_month(coverage):
    client, settings = coverage
    await publish(settings, 7, "12.73", {
        "channel/agent/2026-05/registered": 12, "channel/agent/2026-05/active": 9,
        "channel/village_office/2026-06/registered": 4,
        "agent/AG-1/2026-05/registered": 10, "agent/AG-1/2026-05/active": 8,
        "agent/AG-1/2026-06/collected": 1_000_000, "agent/AG-2/2026-05/registered": 2})
    body = await eventually(client, "/v1/coverage/channels?region=12.73&from=2026-01&to=2026-12",
                            lambda b: "agent" in b["channels"])
    assert body["channels"]["agent"] == [{"month": "2026-05", "registered": 12, "active": 9}]
    assert body["totals"]["village_office"] == {"registered": 4, "active": 0}
    agents = (await client.get("/v1/coverage/agents?region=12.73&from=2026-01&to=2026-12"
                               )).json()
    assert [a["agent_id"] for a in agents["agents"]] == ["AG-1", "AG-2"]
    assert agents["agents"][0]["collected"] == 1_000_000 and agents["agents"][0]["fee"] == 75_000
    elsewhere = (await client.get("/v1/coverage/channels?region=12.75")).json()
    assert elsewhere["channels"] == {}


async def test_bad_queries_are_clear_problems(coverage):
    client, _ = coverage
    for path in ("/v1/coverage/employers?region=99", "/v1/coverage/channels?region=12.x",
                 "/v1/coverage/agents?region=nowhere"):
        assert (await client.get(path)).status_code == 404, path
    for path in ("/v1/coverage/channels?from=2026-13", "/v1/coverage/agents?to=26-01",
                 "/v1/coverage/channels?from=2026-05&to=2026-01",
                 "/v1/coverage/employers?kind=ngo", "/v1/coverage/employers?cursor=abc",
                 "/v1/coverage/programmes?year=1900"):
        response = await client.get(path)
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
