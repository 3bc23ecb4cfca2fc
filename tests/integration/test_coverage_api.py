"""The coverage API in-process, following the counters in its real PostgreSQL database."""

from __future__ import annotations

import asyncio

import asyncpg
import orjson
import pytest

from shared.regions import directory
from tests.integration.conftest import next_version

pytestmark = pytest.mark.integration


async def publish(settings, partition: int, regency: str, counters: dict) -> None:
    """What a worker's transaction leaves for `partition` when all it counts in `regency` lives
    in the regency's first village: absolute values, stamped with the partition's next version
    (the API follows versions, services/coverage/counting_store.py)."""
    regions = directory()
    village = regions.children(regions.children(regency)[0].code)[0].code
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            version = await next_version(conn, partition)
            await conn.executemany(
                "INSERT INTO village_counters (partition, village, name, value, version)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (partition, village, name)"
                " DO UPDATE SET value = excluded.value, version = excluded.version",
                [(partition, village, name, value, version) for name, value in counters.items()])
    finally:
        await conn.close()


async def eventually(client, path: str, check, attempts: int = 100):
    body = None
    for _ in range(attempts):
        body = (await client.get(path)).json()
        if check(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} never satisfied the check; last: {body}")


async def test_a_region_sums_the_counters_of_every_partition(coverage):
    client, settings = coverage
    await publish(settings, 0, "12.75", {"registered": 3, "active": 1, "inactive": 2,
                                         "BPU.registered": 3, "BPU.active": 1})
    await publish(settings, 7, "12.75", {"registered": 2, "inactive": 2, "PU.registered": 2})
    body = await eventually(client, "/v1/coverage/regions/12.75",
                            lambda b: b["registered"] == 5)
    assert body["active"] == 1 and body["inactive"] == 4 and body["terminated"] == 0
    assert body["by_segment"]["BPU"] == {"registered": 3, "active": 1}
    assert body["by_segment"]["PU"] == {"registered": 2, "active": 0}
    assert body["region"] == {"code": "12.75", "name": "Kota Binjai", "level": "regency"}
    assert body["ucj"] is None  # no workforce figure yet


async def test_a_newer_value_for_a_partition_replaces_the_older(coverage):
    client, settings = coverage
    await publish(settings, 2, "12.76", {"registered": 10, "inactive": 10})
    await eventually(client, "/v1/coverage/regions/12.76", lambda b: b["registered"] == 10)
    await publish(settings, 2, "12.76", {"registered": 4, "inactive": 4})
    await eventually(client, "/v1/coverage/regions/12.76", lambda b: b["registered"] == 4)


async def test_ucj_is_active_over_the_workforce_of_the_region(coverage, auth):
    client, settings = coverage
    await publish(settings, 1, "12.75", {"registered": 10, "active": 4, "inactive": 6})
    response = await client.put("/v1/workforce/12.75", headers=auth, json={
        "workforce": 132826, "year": 2024, "source": "BPJS Ketenagakerjaan Cabang Binjai"})
    assert response.status_code == 200, response.text
    body = await eventually(client, "/v1/coverage/regions/12.75", lambda b: b["active"] == 4)
    assert body["workforce"] == 132826
    assert body["ucj"] == pytest.approx(4 / 132826, abs=1e-6)
    target = (await client.get("/v1/coverage/regions/12.75?target=0.3248")).json()
    assert target["gap_to_target"] == 43142 - 4  # ceil(0.3248 * 132826) = 43142


@pytest.mark.parametrize("body, content_type, status", [
    ({"workforce": -1, "year": 2024, "source": "BPS"}, "application/json", 422),
    ({"workforce": "132826", "year": 2024, "source": "BPS"}, "application/json", 422),
    ({"workforce": 132826, "year": 1890, "source": "BPS"}, "application/json", 422),
    ({"workforce": 132826, "year": 2024}, "application/json", 422),
    ({"workforce": 132826, "year": 2024, "source": "BPS", "extra": 1}, "application/json", 422),
    ("not json", "application/json", 400),
    ({"workforce": 132826, "year": 2024, "source": "BPS"}, "text/plain", 415),
])
async def test_bad_workforce_figures_are_refused_and_change_nothing(coverage, auth, body,
                                                                   content_type, status):
    client, _ = coverage
    content = body.encode() if isinstance(body, str) else orjson.dumps(body)
    response = await client.put("/v1/workforce/12.71", content=content,
                                headers={**auth, "content-type": content_type})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/v1/coverage/regions/12.71")).json()["workforce"] is None


async def test_unknown_regions_and_bad_listings_are_clear_problems(coverage):
    client, _ = coverage
    assert (await client.get("/v1/coverage/regions/99.99")).status_code == 404
    assert (await client.get("/v1/coverage/regions/12.75.x")).status_code == 404
    assert (await client.get("/v1/coverage/regions?level=village")).status_code == 422
    assert (await client.get("/v1/coverage/regions?level=planet")).status_code == 422
    assert (await client.get("/v1/coverage/regions?level=regency&parent=12.75")).status_code \
        == 422
    regencies = (await client.get("/v1/coverage/regions?level=regency&parent=12")).json()
    assert len(regencies["items"]) == 33
    assert regencies["items"][0]["region"]["code"] == "12.01"


async def test_workforce_needs_a_key_with_its_scope(coverage):
    client, _ = coverage
    body = {"workforce": 1000, "year": 2024, "source": "synthetic"}
    assert (await client.put("/v1/workforce/12.75", json=body)).status_code == 401


async def test_the_dashboard_and_the_openapi_document_are_served(coverage):
    client, _ = coverage
    page = await client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for path, kind in (("/dashboard/common.css", "text/css"),
                       ("/dashboard/common.js", "text/javascript")):
        shared = await client.get(path)  # what / and /who-pays both load
        assert shared.status_code == 200 and shared.headers["content-type"].startswith(kind)
        assert path in page.text
    assert "/v1/coverage/regions/{code}" in (await client.get("/openapi.json")).json()["paths"]
