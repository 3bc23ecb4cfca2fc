"""The claims service in-process on a real PostgreSQL: filing, judging, deciding, the ownership
rule on reads, idempotent claim_ref under races, and the membership event an approved death
claim queues. What it knows of workers is fed as the events its worker would read."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import asyncpg
import orjson
import pytest

from services.claims import store
from services.claims.api import create_app
from services.claims.settings import ClaimsSettings
from shared.clock import WIB, FixedClock
from shared.consumer_progress import PARTICIPANT_CONSUMER, record_progress
from shared.events import (
    ContributionPaid,
    MembershipStatusChanged,
    ParticipantRegistered,
    make_envelope,
    parse_payload,
)
from tests.integration.conftest import AUTH, BOOTSTRAP_KEY, asgi_client

pytestmark = pytest.mark.integration
TODAY = datetime(2026, 11, 20, 9, 0, tzinfo=WIB)


@pytest.fixture
async def claims(infra, keys_prefix):
    url = infra.new_database("claims")
    settings = ClaimsSettings(DATABASE_URL=url, UCJ_TOPIC_PREFIX=keys_prefix,
                              KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap,
                              UCJ_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY)
    async for client in asgi_client(create_app(settings, clock=FixedClock(TODAY))):
        conn = await asyncpg.connect(url)
        try:
            yield client, conn
        finally:
            await conn.close()


async def known_worker(conn, *, owner: str = "partner-a", segment: str = "BPU",
                       programs=("JKK", "JKM"), paid: bool = True) -> uuid.UUID:
    """A BPU worker registered on 3 November 2026 who paid November on the 5th: active."""
    pid = uuid.uuid4()
    events = [make_envelope(ParticipantRegistered(
        participant_id=pid, kpj="00000000018", region_code="12.75.01.1001", segment=segment,
        monthly_income=1_000_000, programs=list(programs), registered_on="2026-11-03",
        born_in="1990-08", owner=owner), source="registration", subject=str(pid), sequence=1)]
    if paid:
        events.append(make_envelope(ContributionPaid(
            participant_id=pid, first_period="2026-11", last_period="2026-11",
            paid_on="2026-11-05", amount=16_800, by_program={"JKK": 10_000, "JKM": 6_800}),
            source="contributions", subject=str(pid), sequence=1))
    async with conn.transaction():
        await store.learn(conn, [(e, parse_payload(e)) for e in events])
    return pid


def jkm(pid, ref: str = "KLAIM-1", **extra) -> dict:
    return {"claim_ref": ref, "participant_id": str(pid), "program": "JKM",
            "incident_date": "2026-11-18", **extra}


async def outbox(conn) -> list[tuple[str, str]]:
    rows = await conn.fetch("SELECT topic, event_type FROM outbox ORDER BY id")
    return [(r["topic"].rpartition(".")[2], r["event_type"]) for r in rows]


async def test_an_approved_death_claim_pays_42_million_and_ends_the_membership_once(claims):
    client, conn = claims
    pid = await known_worker(conn)
    filed = await client.post("/v1/claims", json=jkm(pid), headers=AUTH)
    assert filed.status_code == 201, filed.text
    claim = filed.json()
    assert claim["status"] == "submitted" and claim["reason"] is None
    assert claim["benefit"]["amount"] == 42_000_000
    assert claim["ends_membership"] == "death"
    assert await outbox(conn) == [("claims", "claim.submitted")]
    decided = await client.post(f"/v1/claims/{claim['claim_id']}/decision",
                                json={"decision": "approve"}, headers=AUTH)
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved"
    assert await outbox(conn) == [("claims", "claim.submitted"), ("claims", "claim.decided"),
                                  ("memberships", "membership.status_changed")]
    event = orjson.loads(await conn.fetchval(
        "SELECT payload FROM outbox WHERE event_type = 'membership.status_changed'"))
    assert event["data"]["status"] == "terminated" and event["data"]["reason"] == "death"
    assert event["source"] == "claims"
    again = await client.post(f"/v1/claims/{claim['claim_id']}/decision",
                              json={"decision": "reject", "reason": "x"}, headers=AUTH)
    assert again.status_code == 409
    second = await client.post("/v1/claims", json=jkm(pid, "KLAIM-2"), headers=AUTH)
    assert second.status_code == 409
    assert len(await outbox(conn)) == 3  # nothing more written


async def test_a_claim_failing_eligibility_is_kept_as_rejected_with_the_rule(claims):
    client, conn = claims
    pid = await known_worker(conn, paid=False)
    filed = await client.post("/v1/claims", json=jkm(pid), headers=AUTH)
    assert filed.status_code == 201, filed.text
    body = filed.json()
    assert body["status"] == "rejected" and body["reason"] and body["rule"].startswith("jkm.")
    assert body["benefit"] is None
    decided = await client.post(f"/v1/claims/{body['claim_id']}/decision",
                                json={"decision": "approve"}, headers=AUTH)
    assert decided.status_code == 409
    # a rejected JKM does not block a new one
    assert (await client.post("/v1/claims", json=jkm(pid, "KLAIM-2"),
                              headers=AUTH)).status_code == 201


async def test_bad_claims_are_4xx_and_write_nothing(claims):
    client, conn = claims
    pid = await known_worker(conn)
    cases = [
        ({**jkm(pid), "program": "JHT", "cause": "age"}, 422),  # not enrolled in JHT
        ({**jkm(pid), "incident_date": "2026-11-21"}, 422),  # in the future
        ({**jkm(pid), "incident_date": "2026-11-01"}, 422),  # before registration
        ({**jkm(pid), "benefit": {"amount": 1}}, 422),  # benefit fields from the client
        ({**jkm(pid), "program": "XYZ"}, 422),
        ({**jkm(pid), "claim_ref": "A\x00B"}, 422),
        ({**jkm(pid), "incident_date": "18-11-2026"}, 422),
        ({**jkm(pid), "participant_id": "not-a-uuid"}, 422),
    ]
    for body, status in cases:
        response = await client.post("/v1/claims", json=body, headers=AUTH)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await conn.fetchval("SELECT count(*) FROM claims") == 0
    assert await outbox(conn) == []
    junk = await client.post(f"/v1/claims/{uuid.uuid4()}/decision",
                             json={"decision": "maybe"}, headers=AUTH)
    assert junk.status_code == 422
    filed = (await client.post("/v1/claims", json=jkm(pid), headers=AUTH)).json()
    for decision in ({"decision": "reject"}, {"decision": "approve", "extra": 1}, [], "x"):
        response = await client.post(f"/v1/claims/{filed['claim_id']}/decision",
                                     json=decision, headers=AUTH)
        assert response.status_code == 422, (decision, response.text)
    assert (await client.post(f"/v1/claims/{uuid.uuid4()}/decision",
                              json={"decision": "approve"}, headers=AUTH)).status_code == 404


async def test_an_unknown_worker_is_404_and_not_yet_known_while_events_wait(claims):
    client, conn = claims

    async def file_while_the_worker_reports(waiting: int):
        asking = asyncio.create_task(client.post("/v1/claims", json=jkm(uuid.uuid4()),
                                                 headers=AUTH))
        await asyncio.sleep(0.8)
        await record_progress(conn, PARTICIPANT_CONSUMER, waiting)
        return await asking

    waiting = await file_while_the_worker_reports(5)
    assert waiting.status_code == 404
    assert waiting.json()["type"].endswith("/not-yet-known")
    assert waiting.headers["retry-after"] == "1"
    unknown = await file_while_the_worker_reports(0)  # read everything, said after the question
    assert unknown.status_code == 404 and unknown.json()["type"] == "about:blank"
    assert await conn.fetchval("SELECT count(*) FROM claims") == 0


async def test_twenty_identical_claims_at_once_get_the_first_result(claims):
    client, conn = claims
    pid = await known_worker(conn)
    answers = await asyncio.gather(*[client.post("/v1/claims", json=jkm(pid), headers=AUTH)
                                     for _ in range(20)])
    assert sorted(a.status_code for a in answers) == [200] * 19 + [201]
    assert len({a.json()["claim_id"] for a in answers}) == 1
    other = await known_worker(conn)
    reused = await asyncio.gather(*[client.post("/v1/claims", json=jkm(other), headers=AUTH)
                                    for _ in range(5)])
    assert [a.status_code for a in reused] == [409] * 5
    assert await conn.fetchval("SELECT count(*) FROM claims") == 1


async def test_a_partner_reads_the_claims_of_its_own_workers_only(claims):
    client, conn = claims
    made = {}
    for name, scopes in (("a", ["claims:read", "claims:write"]), ("b", ["claims:read"]),
                         ("officer", ["claims:read", "claims:decide"])):
        made[name] = (await client.post("/v1/api-keys", json={"name": name, "scopes": scopes},
                                        headers=AUTH)).json()
    a, b, officer = ({"Authorization": f"Bearer {made[n]['key']}"} for n in
                     ("a", "b", "officer"))
    pid = await known_worker(conn, owner=made["a"]["partner_id"])
    filed = (await client.post("/v1/claims", json=jkm(pid), headers=a)).json()
    path = f"/v1/claims/{filed['claim_id']}"
    assert (await client.get(path, headers=a)).status_code == 200
    assert (await client.get(path, headers=officer)).status_code == 200
    assert (await client.get(path, headers=b)).status_code == 404
    assert (await client.get("/v1/claims", headers=b)).json()["claims"] == []
    assert len((await client.get("/v1/claims", headers=a)).json()["claims"]) == 1
    assert (await client.post(f"{path}/decision", json={"decision": "approve"},
                              headers=a)).status_code == 403


async def test_officers_page_through_claims_by_status_and_programme(claims):
    client, conn = claims
    for n in range(5):
        pid = await known_worker(conn)
        assert (await client.post("/v1/claims", json=jkm(pid, f"K-{n}"),
                                  headers=AUTH)).status_code == 201
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "status": "submitted", "program": "JKM"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/claims", params=params, headers=AUTH)).json()
        seen += [c["claim_ref"] for c in page["claims"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"K-{n}" for n in range(5)]
    assert (await client.get("/v1/claims", params={"cursor": "junk"},
                             headers=AUTH)).status_code == 422
    assert (await client.get("/v1/claims", params={"status": "approved"},
                             headers=AUTH)).json()["claims"] == []


async def test_a_membership_that_ended_before_the_incident_is_not_active(claims):
    client, conn = claims
    pid = await known_worker(conn)
    lapse = make_envelope(MembershipStatusChanged(participant_id=pid, status="terminated",
                                                  reason="lapsed"), source="contributions",
                          subject=str(pid), sequence=2,
                          occurred_at=datetime(2026, 11, 10, tzinfo=WIB))
    async with conn.transaction():
        await store.learn(conn, [(lapse, parse_payload(lapse))])
    filed = (await client.post("/v1/claims", json=jkm(pid), headers=AUTH)).json()
    assert filed["status"] == "rejected", filed
