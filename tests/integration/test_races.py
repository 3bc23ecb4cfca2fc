"""Idempotency under races, on the real PostgreSQL: 20 requests fired at once, in-process.

Identical requests all get the first answer (same status, same body) and have one effect;
requests that reuse a key or a payment_ref for something else are refused with a 4xx (never
a 5xx), and only the first of them has an effect. The database decides who was first.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import date

import httpx
import orjson
import pytest

from shared.events import ParticipantRegistered, make_envelope
from tests.integration.conftest import (
    contributions_learn,
    registered_rows,
)
from tests.integration.test_registration_api import worker

pytestmark = pytest.mark.integration

AT_ONCE = 20
BINJAI_VILLAGE = "12.75.01.1001"


async def at_once(*requests) -> list[httpx.Response]:
    return list(await asyncio.gather(*requests))


def answers(responses: list[httpx.Response]) -> set[tuple[int, bytes]]:
    return {(r.status_code, r.content) for r in responses}


def no_5xx(responses: list[httpx.Response]) -> None:
    assert all(r.status_code < 500 for r in responses), [r.text for r in responses
                                                         if r.status_code >= 500]


# --- registration: Idempotency-Key and the one live NIK ---------------------------------------


async def test_twenty_identical_registrations_with_one_key_register_once_and_answer_alike(
        registration, auth):
    client, conn = registration
    headers = {**auth, "Idempotency-Key": "race-single"}
    responses = await at_once(*[client.post("/v1/participants", json=worker(), headers=headers)
                                for _ in range(AT_ONCE)])
    [(status, body)] = answers(responses)
    assert status == 201, body
    assert await registered_rows(conn) == (1, 1)


async def test_twenty_identical_bulk_registrations_with_one_key_register_once(registration,
                                                                              auth):
    client, conn = registration
    headers = {**auth, "Idempotency-Key": "race-bulk"}
    body = {"participants": [worker(1), worker(2), worker(3, nik="bad")]}
    responses = await at_once(*[client.post("/v1/participants/bulk", json=body,
                                            headers=headers) for _ in range(AT_ONCE)])
    [(status, content)] = answers(responses)
    assert status == 200
    assert orjson.loads(content)["accepted"] == 2
    assert await registered_rows(conn) == (2, 2)


async def test_twenty_identical_csv_uploads_with_one_key_register_once(registration, auth):
    client, conn = registration
    rows = [worker(serial) for serial in (1, 2)]
    columns = list(rows[0])
    csv = "\n".join([",".join(columns)] + [
        ",".join(" ".join(row[c]) if c == "programs" else str(row[c] or "") for c in columns)
        for row in rows]) + "\n"
    headers = {**auth, "Idempotency-Key": "race-csv", "content-type": "text/csv"}
    responses = await at_once(*[client.post("/v1/participants/bulk", content=csv.encode(),
                                            headers=headers) for _ in range(AT_ONCE)])
    [(status, content)] = answers(responses)
    assert status == 200 and orjson.loads(content)["accepted"] == 2
    assert await registered_rows(conn) == (2, 2)


async def test_one_key_raced_with_twenty_different_workers_registers_only_the_first(
        registration, auth):
    client, conn = registration
    headers = {**auth, "Idempotency-Key": "race-conflict"}
    responses = await at_once(*[client.post("/v1/participants", json=worker(serial),
                                            headers=headers) for serial in range(1, AT_ONCE + 1)])
    no_5xx(responses)
    statuses = sorted(r.status_code for r in responses)
    # CONTRACT.md: the same Idempotency-Key with another body is 422.
    assert statuses == [201] + [422] * (AT_ONCE - 1)
    for refused in (r for r in responses if r.status_code == 422):
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["title"] == "Idempotency-Key reused"
    assert await registered_rows(conn) == (1, 1)


async def test_one_nik_raced_by_twenty_registrations_registers_once(registration, auth):
    client, conn = registration
    responses = await at_once(*[
        client.post("/v1/participants", json=worker(full_name=f"Siti {n}"), headers=auth)
        for n in range(AT_ONCE)])
    no_5xx(responses)
    created = [r for r in responses if r.status_code == 201]
    duplicates = [r for r in responses if r.status_code == 409]
    assert len(created) == 1 and len(duplicates) == AT_ONCE - 1
    assert {r.json()["participant_id"] for r in duplicates} == {created[0].json()[
        "participant_id"]}
    assert await registered_rows(conn) == (1, 1)


# --- contributions: payment_ref ---------------------------------------------------------------


async def members(conn, n: int) -> list[uuid.UUID]:
    """n BPU members on 1,000,000 a month with JKK and JKM (16,800 a month), as learnt from
    registration events."""
    ids = [uuid.uuid4() for _ in range(n)]
    events = []
    for pid in ids:
        payload = ParticipantRegistered(
            participant_id=pid, kpj="00000000018", region_code=BINJAI_VILLAGE, segment="BPU",
            employer_id=None, monthly_income=1_000_000, programs=["JKK", "JKM"],
            registered_on="2026-11-03")
        events.append((make_envelope(payload, source="registration", subject=str(pid),
                                     sequence=1), payload))
    async with conn.transaction():
        await contributions_learn(conn, events, date(2026, 11, 20))
    return ids


def payment(pid: uuid.UUID, ref: str = "VA-RACE-1", **overrides) -> dict:
    body = {"payment_ref": ref, "participant_id": str(pid), "first_period": "2026-11",
            "months": 1, "amount": 16_800, "payer": "self"}
    body.update(overrides)
    return body


async def paid_rows(conn) -> tuple[int, int]:
    """(payments recorded, contribution.paid events queued)."""
    return (await conn.fetchval("SELECT count(*) FROM contributions"),
            await conn.fetchval("SELECT count(*) FROM outbox"
                                " WHERE event_type = 'contribution.paid'"))


async def test_twenty_identical_payments_at_once_pay_once_and_answer_alike(contributions,
                                                                           auth):
    client, conn = contributions
    [pid] = await members(conn, 1)
    responses = await at_once(*[client.post("/v1/contributions", json=payment(pid),
                                            headers=auth) for _ in range(AT_ONCE)])
    [(status, content)] = answers(responses)
    assert status == 201, content
    assert orjson.loads(content)["membership_status"] == "active"
    assert await paid_rows(conn) == (1, 1)  # one payment, one membership.status_changed


async def test_one_payment_ref_raced_for_twenty_workers_pays_only_the_first(contributions,
                                                                            auth):
    client, conn = contributions
    pids = await members(conn, AT_ONCE)
    responses = await at_once(*[client.post("/v1/contributions", json=payment(pid),
                                            headers=auth) for pid in pids])
    no_5xx(responses)
    assert sorted(r.status_code for r in responses) == [201] + [409] * (AT_ONCE - 1)
    for refused in (r for r in responses if r.status_code == 409):
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in refused.json()["errors"]] == ["payment_ref"]
    assert await paid_rows(conn) == (1, 1)
    [winner] = [pid for pid, r in zip(pids, responses, strict=True) if r.status_code == 201]
    assert await conn.fetchval("SELECT participant_id FROM contributions") == winner


async def test_twenty_identical_bulk_batches_at_once_pay_each_line_once(contributions, auth):
    client, conn = contributions
    pids = await members(conn, 5)
    body = {"contributions": [payment(pid, f"APBD-RACE-{i}", payer="government",
                                      funding_code="SD") for i, pid in enumerate(pids)]
            + [payment(pids[0], "APBD-RACE-bad", amount=1)]}
    responses = await at_once(*[client.post("/v1/contributions/bulk", json=body, headers=auth)
                                for _ in range(AT_ONCE)])
    [(status, content)] = answers(responses)
    assert status == 200
    out = orjson.loads(content)
    assert out["accepted"] == 5 and [r["index"] for r in out["rejected"]] == [5]
    assert await paid_rows(conn) == (5, 5)


async def test_one_payment_ref_raced_in_twenty_bulk_batches_pays_only_the_first(contributions,
                                                                                auth):
    client, conn = contributions
    pids = await members(conn, AT_ONCE)
    # Each batch: its own line, and the shared ref for a different worker each time.
    responses = await at_once(*[client.post("/v1/contributions/bulk", headers=auth, json={
        "contributions": [payment(pid, f"OWN-{n}"),
                          payment(pid, "SHARED", first_period="2026-12")]
    }) for n, pid in enumerate(pids)])
    no_5xx(responses)
    bodies = [r.json() for r in responses]
    assert all(b["accepted"] in (1, 2) for b in bodies)
    assert sum(b["accepted"] == 2 for b in bodies) == 1
    refused = [b["rejected"][0] for b in bodies if b["accepted"] == 1]
    assert all(r["index"] == 1 and [e["field"] for e in r["errors"]] == ["payment_ref"]
               for r in refused)
    assert await paid_rows(conn) == (AT_ONCE + 1, AT_ONCE + 1)
