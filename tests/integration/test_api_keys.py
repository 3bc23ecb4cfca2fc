"""One partner credential across services: a key made on one service works on every service
its scopes cover, is listed everywhere, is revoked everywhere within seconds, rotates without
losing the partner's workers, and has a per-key rate limit (429 + Retry-After). Three services
in-process, each on its own database, sharing only the broker's ucj.api-keys topic."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from services.contributions.api import create_app as contributions_app
from services.contributions.settings import ContributionsSettings
from services.coverage.api import create_app as coverage_app
from services.coverage.settings import CoverageApiSettings
from services.registration.api import create_app as registration_app
from services.registration.settings import RegistrationSettings
from shared.key_directory import KeyRecord, apply, local_record
from tests.integration.conftest import AUTH, BOOTSTRAP_KEY
from tests.integration.test_registration_api import worker

pytestmark = pytest.mark.integration

# Well past the second or so a change takes; a bound for "eventually", not a speed target.
PROPAGATION_BOUND = 15.0


@dataclass
class Services:
    registration: httpx.AsyncClient
    contributions: httpx.AsyncClient
    coverage: httpx.AsyncClient
    registration_db: str

    def all(self) -> dict[str, httpx.AsyncClient]:
        return {"registration": self.registration, "contributions": self.contributions,
                "coverage": self.coverage}


@contextlib.asynccontextmanager
async def running(app) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
async def services(infra, keys_prefix) -> AsyncIterator[Services]:
    common = {"KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap, "UCJ_TOPIC_PREFIX": keys_prefix,
              "UCJ_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY}
    registration_db = infra.new_database("registration")
    async with contextlib.AsyncExitStack() as stack:
        reg = await stack.enter_async_context(running(registration_app(
            RegistrationSettings(DATABASE_URL=registration_db, **common))))
        con = await stack.enter_async_context(running(contributions_app(
            ContributionsSettings(DATABASE_URL=infra.new_database("contributions"), **common))))
        cov = await stack.enter_async_context(running(coverage_app(
            CoverageApiSettings(DATABASE_URL=infra.new_database("coverage"), **common))))
        yield Services(reg, con, cov, registration_db)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make_key(client: httpx.AsyncClient, *scopes: str, **extra) -> dict:
    made = await client.post("/v1/api-keys", json={"name": "pemda binjai",
                                                   "scopes": list(scopes), **extra}, headers=AUTH)
    assert made.status_code == 201, made.text
    return made.json()


async def until(check, what: str) -> float:
    """Seconds until `check()` holds; fails past PROPAGATION_BOUND."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < PROPAGATION_BOUND, f"never: {what}"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def status_on(services: Services, name: str, key: str) -> int:
    """What a key gets on one service for a request its scopes cover (or not)."""
    client = services.all()[name]
    if name == "registration":
        response = await client.get(f"/v1/participants/{uuid.uuid4()}", headers=bearer(key))
    elif name == "contributions":
        response = await client.post("/v1/contributions", json={}, headers=bearer(key))
    else:
        response = await client.put("/v1/workforce/12.75", headers=bearer(key), json={
            "year": 2026, "workforce": 132_826, "source": "BPS Sakernas"})
    return response.status_code


async def test_a_key_made_on_one_service_works_on_every_service_its_scopes_cover(services):
    made = await make_key(services.registration, "participants:read", "contributions:read")
    assert made["key"].startswith("ucj_") and made["partner_id"] == made["id"]
    key = made["key"]
    # authenticated on all three (404: unknown worker; 403: not its scope), no longer 401
    waited = await until(lambda: _answers(services, key, {
        "registration": 404, "contributions": 403, "coverage": 403}), "key known everywhere")
    print(f"key known on every service after {waited:.2f}s")
    for client in services.all().values():
        listed = (await client.get("/v1/api-keys", headers=AUTH)).json()["keys"]
        [mine] = [k for k in listed if k["id"] == made["id"]]
        assert mine["active"] and mine["scopes"] == ["contributions:read", "participants:read"]
        assert "key" not in mine and "key_hash" not in mine


async def _answers(services: Services, key: str, want: dict[str, int]) -> bool:
    return all([await status_on(services, name, key) == status for name, status in want.items()])


async def test_a_key_revoked_on_one_service_is_refused_on_every_service_within_seconds(services):
    made = await make_key(services.coverage, "participants:read", "contributions:read",
                          "workforce:write")
    key = made["key"]
    await until(lambda: _answers(services, key, {
        "registration": 404, "contributions": 403, "coverage": 200}), "key known everywhere")
    revoked = await services.contributions.delete(f"/v1/api-keys/{made['id']}", headers=AUTH)
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    waited = await until(lambda: _answers(services, key, {
        "registration": 401, "contributions": 401, "coverage": 401}), "revoked everywhere")
    print(f"revocation effective on every service after {waited:.2f}s")
    for client in services.all().values():
        [mine] = [k for k in (await client.get("/v1/api-keys", headers=AUTH)).json()["keys"]
                  if k["id"] == made["id"]]
        assert mine["revoked_at"] is not None and not mine["active"]
    again = await services.registration.delete(f"/v1/api-keys/{made['id']}", headers=AUTH)
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]


async def test_rotation_gives_a_new_key_and_the_partner_keeps_its_workers(services):
    made = await make_key(services.registration, "participants:read", "participants:write")
    old = bearer(made["key"])
    pid = (await services.registration.post("/v1/participants", json=worker(7),
                                            headers=old)).json()["participant_id"]
    # a key may rotate itself; the old one keeps working for the overlap asked for
    rotated = await services.registration.post(f"/v1/api-keys/{made['id']}/rotate",
                                               json={"overlap_seconds": 3600}, headers=old)
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()
    assert new["partner_id"] == made["id"] and new["rotated_from"] == made["id"]
    assert new["key"] != made["key"]
    for headers in (old, bearer(new["key"])):
        seen = await services.registration.get(f"/v1/participants/{pid}", headers=headers)
        assert seen.status_code == 200, seen.text
    # rotating again with no overlap: the previous key stops at once
    again = await services.registration.post(f"/v1/api-keys/{new['id']}/rotate",
                                             headers=bearer(new["key"]))
    assert again.status_code == 201, again.text
    stopped = await services.registration.get(f"/v1/participants/{pid}",
                                              headers=bearer(new["key"]))
    assert stopped.status_code == 401
    third = bearer(again.json()["key"])
    assert (await services.registration.get(f"/v1/participants/{pid}",
                                            headers=third)).status_code == 200
    refused = await services.registration.post(f"/v1/api-keys/{new['id']}/rotate", headers=AUTH)
    assert refused.status_code == 409


async def test_only_an_admin_or_the_key_itself_sees_a_key(services):
    one = await make_key(services.registration, "participants:read")
    other = await make_key(services.registration, "participants:read")
    mine = await services.registration.get(f"/v1/api-keys/{one['id']}",
                                           headers=bearer(one["key"]))
    assert mine.status_code == 200 and mine.json()["id"] == one["id"]
    for method in ("GET", "DELETE"):
        theirs = await services.registration.request(method, f"/v1/api-keys/{other['id']}",
                                                     headers=bearer(one["key"]))
        assert theirs.status_code == 404
    assert (await services.registration.get("/v1/api-keys",
                                            headers=bearer(one["key"]))).status_code == 403
    assert (await services.registration.post(
        "/v1/api-keys", json={"name": "x", "scopes": ["participants:read"]},
        headers=bearer(one["key"]))).status_code == 403
    unknown = await services.registration.post("/v1/api-keys", json={
        "name": "x", "scopes": ["everything"]}, headers=AUTH)
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "scopes"
    bad = await services.registration.post(f"/v1/api-keys/{one['id']}/rotate",
                                           json={"overlap_seconds": -1}, headers=AUTH)
    assert bad.status_code == 422


async def test_a_key_past_its_rate_is_429_with_retry_after(services):
    made = await make_key(services.registration, "participants:read", requests_per_minute=60)
    key = bearer(made["key"])
    statuses = [(await services.registration.get(f"/v1/participants/{uuid.uuid4()}",
                                                 headers=key)) for _ in range(15)]
    codes = [r.status_code for r in statuses]
    assert codes[:10] == [404] * 10  # ten seconds' worth at once
    limited = next(r for r in statuses if r.status_code == 429)
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(limited.headers["retry-after"]) <= 2
    # the budget is per key: another key, and the bootstrap key, are not held back
    other = await make_key(services.registration, "participants:read")
    assert (await services.registration.get(f"/v1/participants/{uuid.uuid4()}",
                                            headers=bearer(other["key"]))).status_code == 404
    await asyncio.sleep(int(limited.headers["retry-after"]))
    assert (await services.registration.get(f"/v1/participants/{uuid.uuid4()}",
                                            headers=key)).status_code == 404


async def test_the_earliest_revocation_wins_whatever_order_changes_arrive_in(services):
    conn = await asyncpg.connect(services.registration_db)
    try:
        key_id = uuid.uuid4()
        base = KeyRecord(id=key_id, partner_id=key_id, name="x", key_hash="ab" * 32,
                         scopes=["participants:read"], requests_per_minute=60,
                         created_at=datetime(2026, 12, 1, tzinfo=UTC))
        early = datetime(2026, 12, 2, tzinfo=UTC)
        late = datetime(2026, 12, 9, tzinfo=UTC)
        for record in (base.model_copy(update={"revoked_at": early}), base,
                       base.model_copy(update={"revoked_at": late})):
            await apply(conn, record)
        stored = await local_record(conn, key_id)
        assert stored is not None and stored.revoked_at == early
    finally:
        await conn.close()


async def test_no_broker_no_new_key_a_503(infra, bare_prefix):
    settings = RegistrationSettings(DATABASE_URL=infra.new_database("registration"),
                                    KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
                                    UCJ_TOPIC_PREFIX=bare_prefix,
                                    UCJ_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY)
    async with running(registration_app(settings)) as client:
        made = await client.post("/v1/api-keys", json={"name": "x", "scopes": [
            "participants:read"]}, headers=AUTH)
        assert made.status_code == 503, made.text
        assert made.headers["retry-after"]
        assert (await client.get("/v1/api-keys", headers=AUTH)).json() == {"keys": []}
