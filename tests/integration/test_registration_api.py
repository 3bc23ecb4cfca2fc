"""The registration service on a real PostgreSQL (and, for the outbox relay, a real Kafka)."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from shared.topics import PARTICIPANTS
from tests.integration.conftest import BINJAI_VILLAGE, relayed_events, worker

MEDAN_VILLAGE = "12.71.01.1001"

pytestmark = pytest.mark.integration


@pytest.fixture
def service(keyed_registration):
    """The registration service of conftest, with the API keys' topic:
    (client, connection, settings)."""
    return keyed_registration


async def counts(conn) -> tuple[int, int]:
    return (await conn.fetchval("SELECT count(*) FROM participants"),
            await conn.fetchval("SELECT count(*) FROM outbox"))


async def test_a_registered_worker_gets_an_id_a_kpj_and_one_event(service, auth):
    client, conn, _ = service
    response = await client.post("/v1/participants", json=worker(), headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "registered" and len(body["kpj"]) == 11
    assert await counts(conn) == (1, 1)
    payload = await conn.fetchval("SELECT payload FROM outbox")
    event = orjson.loads(payload)
    assert event["type"] == "participant.registered" and event["sequence"] == 1
    assert event["subject"] == body["participant_id"]
    assert event["data"]["region_code"] == BINJAI_VILLAGE


async def test_events_carry_no_personal_data(service, auth):
    client, conn, _ = service
    await client.post("/v1/participants", json=worker(), headers=auth)
    payload = (await conn.fetchval("SELECT payload FROM outbox")).decode()
    for personal in ("1275014508900001", "Siti", "Aminah", "1990-08-05"):
        assert personal not in payload


async def test_a_nik_already_registered_gets_409_with_the_existing_participant(service, auth):
    client, conn, _ = service
    first = (await client.post("/v1/participants", json=worker(), headers=auth)).json()
    again = await client.post("/v1/participants", json=worker(full_name="Siti A"), headers=auth)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["participant_id"] == first["participant_id"]
    assert await counts(conn) == (1, 1)


async def test_the_same_idempotency_key_and_body_return_the_first_response(service, auth):
    client, conn, _ = service
    headers = {**auth, "Idempotency-Key": "req-001"}
    first = await client.post("/v1/participants", json=worker(), headers=headers)
    second = await client.post("/v1/participants", json=worker(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert await counts(conn) == (1, 1)


async def test_the_same_idempotency_key_with_another_body_is_422(service, auth):
    client, conn, _ = service
    headers = {**auth, "Idempotency-Key": "req-002"}
    await client.post("/v1/participants", json=worker(), headers=headers)
    other = await client.post("/v1/participants", json=worker(2), headers=headers)
    assert other.status_code == 422
    assert await counts(conn) == (1, 1)


async def test_concurrent_retries_with_one_idempotency_key_register_once(service, auth):
    client, conn, _ = service
    headers = {**auth, "Idempotency-Key": "req-003"}
    responses = await asyncio.gather(*[
        client.post("/v1/participants", json=worker(), headers=headers) for _ in range(5)])
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["participant_id"] for r in responses}) == 1
    assert await counts(conn) == (1, 1)


@pytest.mark.parametrize("content, content_type, status", [
    (b'{"nik": ', "application/json", 400),
    (orjson.dumps(worker()), "text/plain", 415),
    (orjson.dumps(worker(full_name="x" * 1_000_000)), "application/json", 413),
    (orjson.dumps(worker(monthly_income="1000000")), "application/json", 422),
    (orjson.dumps(worker(monthly_income=-5)), "application/json", 422),
    (orjson.dumps(worker(birth_date="2090-01-01")), "application/json", 422),
    (orjson.dumps(worker(nik="127501450890001")), "application/json", 422),
    (orjson.dumps(worker(nik="١٢٧٥٠١٤٥٠٨٩٠٠٠٠١")), "application/json", 422),
    (orjson.dumps(worker(sex="M")), "application/json", 422),
    (orjson.dumps(worker(region_code="12.75.01")), "application/json", 422),
    (orjson.dumps(worker(region_code="99.99.99.9999")), "application/json", 422),
    (orjson.dumps(worker(employer_id="EMP-1")), "application/json", 422),
    (orjson.dumps(worker(programs=["JKK", "JKM", "JP"])), "application/json", 422),
    (orjson.dumps({k: v for k, v in worker().items() if k != "segment"}), "application/json", 422),
    (b"[1, 2, 3]", "application/json", 422),
])
async def test_bad_input_is_a_clear_4xx_problem_and_writes_nothing(service, auth, content,
                                                                   content_type, status):
    client, conn, _ = service
    response = await client.post("/v1/participants", content=content,
                                 headers={**auth, "content-type": content_type})
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await counts(conn) == (0, 0)


async def test_a_problem_names_the_field_that_is_wrong(service, auth):
    client, _, _ = service
    response = await client.post("/v1/participants", json=worker(sex="M"), headers=auth)
    assert "nik" in {e["field"] for e in response.json()["errors"]}


async def test_without_a_key_registration_is_401_and_with_a_read_key_403(service, auth):
    client, conn, _ = service
    assert (await client.post("/v1/participants", json=worker())).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await client.post("/v1/participants", json=worker(), headers=bad)).status_code == 401
    created = await client.post("/v1/api-keys", json={"name": "dashboard",
                                                      "scopes": ["participants:read"]},
                                headers=auth)
    assert created.status_code == 201
    reader = {"Authorization": f"Bearer {created.json()['key']}"}
    assert (await client.post("/v1/participants", json=worker(),
                              headers=reader)).status_code == 403
    assert await counts(conn) == (0, 0)
    stored = await conn.fetchval("SELECT key_hash FROM api_keys")
    assert created.json()["key"].encode() not in stored  # hashed, not kept


async def test_bulk_rows_succeed_or_fail_on_their_own(service, auth):
    client, conn, _ = service
    rows = [worker(1), worker(2, sex="M"), worker(3), worker(1), {"nik": 5}]
    response = await client.post("/v1/participants/bulk", json={"participants": rows},
                                 headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert [r["index"] for r in body["results"]] == [0, 2]
    assert [r["index"] for r in body["rejected"]] == [1, 3, 4]
    assert body["rejected"][1]["participant_id"] == body["results"][0]["participant_id"]
    assert await counts(conn) == (2, 2)


async def test_bulk_accepts_csv_with_space_separated_programmes(service, auth):
    client, conn, _ = service
    header = ("nik,full_name,birth_date,sex,region_code,segment,employer_id,occupation,"
              "monthly_income,programs\n")
    lines = [f"127501450890{i:04d},Siti Aminah,1990-08-05,F,{BINJAI_VILLAGE},BPU,,pedagang,"
             f"1000000,JKK JKM JHT\n" for i in range(1, 4)]
    response = await client.post("/v1/participants/bulk", content=header + "".join(lines),
                                 headers={**auth, "content-type": "text/csv"})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 3
    assert await counts(conn) == (3, 3)


async def test_bulk_of_more_than_ten_thousand_rows_is_refused_whole(service, auth):
    client, conn, _ = service
    response = await client.post("/v1/participants/bulk",
                                 json={"participants": [worker(1)] * 10_001}, headers=auth)
    assert response.status_code == 422
    assert await counts(conn) == (0, 0)


async def partner(client, auth, *scopes: str) -> tuple[str, dict[str, str]]:
    """A new partner key with these scopes: (its id, its headers)."""
    made = (await client.post("/v1/api-keys", json={"name": "partner", "scopes": list(scopes)},
                              headers=auth)).json()
    return made["id"], {"Authorization": f"Bearer {made['key']}"}


async def test_every_read_masks_the_nik_and_name_even_for_the_registering_partner(service, auth):
    client, _, _ = service
    _, agent = await partner(client, auth, "participants:read", "participants:write")
    pid = (await client.post("/v1/participants", json=worker(), headers=agent)).json()[
        "participant_id"]
    own = (await client.get(f"/v1/participants/{pid}", headers=agent)).json()
    assert own["nik"] == "127501******0001" and "Siti" not in own["full_name"]
    admin = (await client.get(f"/v1/participants/{pid}", headers=auth)).json()
    assert admin["nik"] == "127501******0001"  # every scope, but no reason given: masked
    assert (await client.get(f"/v1/participants/{uuid.uuid4()}", headers=auth)).status_code == 404
    assert (await client.get("/v1/participants/not-a-uuid", headers=auth)).status_code == 404


async def test_a_partner_sees_and_changes_only_its_own_workers_unless_granted(service, auth):
    client, _, _ = service
    _, agent = await partner(client, auth, "participants:read", "participants:write")
    other_id, other = await partner(client, auth, "participants:read", "participants:write")
    pid = (await client.post("/v1/participants", json=worker(), headers=agent)).json()[
        "participant_id"]
    assert (await client.get(f"/v1/participants/{pid}", headers=other)).status_code == 404
    patched = await client.patch(f"/v1/participants/{pid}", headers=other,
                                 json={"region_code": MEDAN_VILLAGE})
    assert patched.status_code == 404
    assert (await client.get(f"/v1/participants/{pid}", headers=agent)).json()[
        "region_code"] != MEDAN_VILLAGE  # nothing changed
    # The 409 for a known NIK gives the id (whoever knows the NIK may pay), nothing else.
    again = await client.post("/v1/participants", json=worker(), headers=other)
    assert again.status_code == 409 and again.json()["participant_id"] == pid
    assert "full_name" not in again.json() and "region_code" not in again.json()
    # An admin grants the other partner this worker.
    _, granter = await partner(client, auth, "participants:grant")
    refused = await client.post(f"/v1/participants/{pid}/grants", json={"key_id": other_id},
                                headers=agent)
    assert refused.status_code == 403
    granted = await client.post(f"/v1/participants/{pid}/grants", json={"key_id": other_id},
                                headers=auth)
    assert granted.status_code == 201, granted.text
    assert (await client.get(f"/v1/participants/{pid}", headers=other)).status_code == 200
    assert (await client.post(f"/v1/participants/{pid}/grants", json={"key_id": other_id},
                              headers=granter)).status_code == 404  # not its worker to give


async def test_a_full_read_needs_the_pii_scope_and_a_reason_and_is_audited(service, auth):
    client, conn, _ = service
    _, agent = await partner(client, auth, "participants:read", "participants:write")
    pii_id, pii = await partner(client, auth, "participants:read", "participants:pii")
    pid = (await client.post("/v1/participants", json=worker(), headers=agent)).json()[
        "participant_id"]
    await client.post(f"/v1/participants/{pid}/grants", json={"key_id": pii_id}, headers=auth)
    reason = {"X-Access-Reason": "claim JKK-2026-0042: identity check"}
    refused = await client.get(f"/v1/participants/{pid}", headers={**agent, **reason})
    assert refused.status_code == 403  # no pii scope: asking is refused, not silently masked
    masked = (await client.get(f"/v1/participants/{pid}", headers=pii)).json()
    assert masked["nik"] == "127501******0001"  # the scope alone: still masked, not audited
    assert await conn.fetchval("SELECT count(*) FROM pii_reads") == 0
    full = await client.get(f"/v1/participants/{pid}", headers={**pii, **reason})
    assert full.status_code == 200
    assert full.json()["nik"] == "1275014508900001" and "Siti" in full.json()["full_name"]
    audit = await conn.fetch("SELECT key_id, participant_id::text AS pid, reason FROM pii_reads")
    assert [(r["key_id"], r["pid"], r["reason"]) for r in audit] == [
        (pii_id, pid, reason["X-Access-Reason"])]
    bad = await client.get(f"/v1/participants/{pid}", headers={**pii, "X-Access-Reason": " "})
    assert bad.status_code == 400


async def test_a_nik_is_looked_up_in_the_body_and_gives_the_id_only(service, auth):
    client, _, _ = service
    _, agent = await partner(client, auth, "participants:read", "participants:write")
    _, pemda = await partner(client, auth, "participants:read")
    pid = (await client.post("/v1/participants", json=worker(), headers=agent)).json()[
        "participant_id"]
    found = await client.post("/v1/participants/lookup", json={"nik": worker()["nik"]},
                              headers=pemda)
    assert found.status_code == 200 and found.json() == {"participant_id": pid}
    missing = await client.post("/v1/participants/lookup", json={"nik": "1275019999990001"},
                                headers=pemda)
    assert missing.status_code == 404
    assert (await client.post("/v1/participants/lookup", json={"nik": "12"},
                              headers=pemda)).status_code == 422


async def test_a_move_to_another_village_publishes_participant_changed(service, auth):
    client, conn, _ = service
    pid = (await client.post("/v1/participants", json=worker(), headers=auth)).json()[
        "participant_id"]
    moved = await client.patch(f"/v1/participants/{pid}", json={"region_code": MEDAN_VILLAGE},
                               headers=auth)
    assert moved.status_code == 200, moved.text
    assert moved.json()["region_code"] == MEDAN_VILLAGE
    rows = await conn.fetch("SELECT payload FROM outbox ORDER BY id")
    last = orjson.loads(rows[-1]["payload"])
    assert last["type"] == "participant.changed" and last["sequence"] == 2
    assert last["data"]["changed"] == ["region_code"]
    unchanged = await client.patch(f"/v1/participants/{pid}",
                                   json={"region_code": MEDAN_VILLAGE}, headers=auth)
    assert unchanged.status_code == 200
    assert await counts(conn) == (1, 2)  # no change, no event


async def test_a_patch_that_breaks_the_segment_rules_is_refused(service, auth):
    client, conn, _ = service
    pid = (await client.post("/v1/participants", json=worker(), headers=auth)).json()[
        "participant_id"]
    response = await client.patch(f"/v1/participants/{pid}", json={"segment": "PU"},
                                  headers=auth)
    assert response.status_code == 422
    assert "employer_id" in {e["field"] for e in response.json()["errors"]}
    assert await counts(conn) == (1, 1)


async def test_the_relay_publishes_the_outbox_in_order_and_empties_it(service, auth, infra):
    client, conn, settings = service
    pid = (await client.post("/v1/participants", json=worker(), headers=auth)).json()[
        "participant_id"]
    for village in (MEDAN_VILLAGE, BINJAI_VILLAGE, MEDAN_VILLAGE):
        await client.patch(f"/v1/participants/{pid}", json={"region_code": village},
                           headers=auth)
    events = await relayed_events(infra, settings, PARTICIPANTS, expect=4,
                                  client_id="test-relay")
    assert [e.envelope.sequence for e in events] == [1, 2, 3, 4]
    assert {e.envelope.subject for e in events} == {pid}
    # Already in the outbox together, they travel as one batch, in the partition the
    # participant's key hashes to (as a keyed message of its own would).
    assert len({(e.partition, e.offset) for e in events}) == 1
    assert events[0].partition == DefaultPartitioner()(pid.encode(), list(range(12)),
                                                       list(range(12)))
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 0


async def test_the_request_id_follows_the_change_into_its_event(service, auth):
    """One change followed through the services: the X-Request-ID a partner sent (or the one
    given) is the event's correlation_id (and, test below, in the request's log lines)."""
    client, conn, _ = service
    sent = "0b9f1c2e-7d4a-4c1b-9a55-3e8d2f6a1b70"  # a proxy's id (free text is not kept)
    response = await client.post("/v1/participants", json=worker(),
                                 headers={**auth, "X-Request-ID": sent})
    assert response.status_code == 201 and response.headers["x-request-id"] == sent
    event = orjson.loads(await conn.fetchval("SELECT payload FROM outbox"))
    assert event["correlation_id"] == sent
    given = await client.post("/v1/participants", json=worker(2), headers=auth)
    events = [orjson.loads(r["payload"]) for r in await conn.fetch(
        "SELECT payload FROM outbox ORDER BY id")]
    assert events[1]["correlation_id"] == given.headers["x-request-id"] != sent


def test_log_lines_are_json_with_the_request_id():
    import logging

    from shared.logs import REQUEST_ID, JsonFormatter

    token = REQUEST_ID.set("pemda-req-0042")
    try:
        record = logging.LogRecord("ucj.test", logging.INFO, __file__, 1, "%d rows", (3,), None)
        line = orjson.loads(JsonFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line["message"] == "3 rows" and line["request_id"] == "pemda-req-0042"
    assert line["level"] == "INFO" and line["logger"] == "ucj.test"
