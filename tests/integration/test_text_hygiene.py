"""Hostile text in every text field of every request body, on the real PostgreSQL (which
refuses NUL in text): a 422 problem that names the field, before anything is written.

(Named test_races_* only to sit with the other issue-8 tests; see shared/text.py.)
"""

from __future__ import annotations

import uuid
from datetime import date

import asyncpg
import pytest

from services.coverage.api import create_app as coverage_app
from services.coverage.settings import CoverageApiSettings
from shared.events import ParticipantRegistered, make_envelope
from shared.text import CONTROL_CHARACTERS
from tests.employers import new_employer
from tests.integration.conftest import (
    BOOTSTRAP_KEY,
    asgi_client,
    contributions_learn,
    registered_rows,
)

pytestmark = pytest.mark.integration

BINJAI_VILLAGE = "12.75.01.1001"
# NUL (what PostgreSQL refuses), another C0 control, escape, line feed (no field is multi-line),
# DEL, and the C1 controls NEL and APC. (A lone surrogate cannot arrive in JSON: the parser
# refuses it with a 400; the unit tests cover it.)
HOSTILE = ["\x00", "\x01", "\x1b", "\n", "\x7f", "\x85", "\x9f"]

WAGE_EARNER = {  # Budi, PU: every registration text field is filled in
    "nik": "1275010503850002", "full_name": "Budi Santoso", "birth_date": "1985-03-05",
    "sex": "M", "region_code": "12.75.01.1002", "segment": "PU",
    # Replaced by a registered employer's id wherever the worker must register (new_employer);
    # rows refused for a control character never get as far as the employer lookup.
    "employer_id": "0b8f5c1e-2f4d-4a7b-9c1e-5d6f7a8b9c01", "occupation": "operator mesin",
    "monthly_income": 4_000_000, "programs": ["JKK", "JKM", "JHT", "JP", "JKP"],
}
REGISTRATION_TEXT = ["nik", "full_name", "region_code", "employer_id", "occupation"]


def spoiled(text: str, char: str) -> str:
    """`text` with `char` in the middle (where a strip() would not remove it)."""
    middle = len(text) // 2
    return text[:middle] + char + text[middle:]


def refused_naming(response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    errors = response.json()["errors"]
    assert {"field": field, "message": CONTROL_CHARACTERS} in errors, errors


def rejected_row_naming(body: dict, index: int, field: str) -> None:
    [row] = [r for r in body["rejected"] if r["index"] == index]
    assert {"field": field, "message": CONTROL_CHARACTERS} in row["errors"], row


# --- registration -----------------------------------------------------------------------------


@pytest.mark.parametrize("char", HOSTILE, ids=[f"U+{ord(c):04X}" for c in HOSTILE])
async def test_control_characters_in_any_registration_field_are_422_naming_it(
        registration, auth, char):
    client, conn = registration
    for field in REGISTRATION_TEXT:
        body = {**WAGE_EARNER, field: spoiled(WAGE_EARNER[field], char)}
        refused_naming(await client.post("/v1/participants", json=body, headers=auth), field)
        keyed = {**auth, "Idempotency-Key": f"hostile-{field}-{ord(char)}"}
        refused_naming(await client.post("/v1/participants", json=body, headers=keyed), field)
    assert await registered_rows(conn) == (0, 0)
    # and the clean worker registers: the refusals left nothing behind
    employer_id = await new_employer(client, auth)
    assert (await client.post("/v1/participants", json={**WAGE_EARNER, "employer_id": employer_id},
                              headers=auth)).status_code == 201


async def test_a_bulk_row_with_a_control_character_fails_alone_naming_its_field(registration,
                                                                                auth):
    client, conn = registration
    rows = [{**WAGE_EARNER, field: spoiled(WAGE_EARNER[field], "\x00")}
            for field in REGISTRATION_TEXT]
    response = await client.post("/v1/participants/bulk", json={"participants": rows},
                                 headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 0
    for index, field in enumerate(REGISTRATION_TEXT):
        rejected_row_naming(body, index, field)
    assert await registered_rows(conn) == (0, 0)


async def test_a_csv_row_with_a_control_character_fails_alone_naming_its_field(registration,
                                                                               auth):
    client, conn = registration
    columns = list(WAGE_EARNER)

    def line(row: dict) -> str:
        return ",".join(" ".join(row[c]) if c == "programs" else str(row[c]) for c in columns)

    spoilt = [{**WAGE_EARNER, field: spoiled(WAGE_EARNER[field], char)}
              for field in REGISTRATION_TEXT for char in ("\x00", "\x1b", "\x7f", "\x85")]
    csv = "\n".join([",".join(columns), *map(line, spoilt)]) + "\n"
    response = await client.post("/v1/participants/bulk", content=csv.encode(),
                                 headers={**auth, "content-type": "text/csv"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 0 and len(body["rejected"]) == len(spoilt)
    for index, row in enumerate(spoilt):
        [field] = [f for f in REGISTRATION_TEXT if row[f] != WAGE_EARNER[f]]
        rejected_row_naming(body, index, field)
    assert await registered_rows(conn) == (0, 0)


@pytest.mark.parametrize("field", ["region_code", "employer_id"])
async def test_a_patch_with_a_control_character_is_422_and_changes_nothing(registration, auth,
                                                                           field):
    client, conn = registration
    worker = {**WAGE_EARNER, "employer_id": await new_employer(client, auth)}
    created = await client.post("/v1/participants", json=worker, headers=auth)
    pid = created.json()["participant_id"]
    response = await client.patch(f"/v1/participants/{pid}", headers=auth,
                                  json={field: spoiled(worker[field], "\x00")})
    refused_naming(response, field)
    assert await conn.fetchval(f"SELECT {field} FROM participants") == worker[field]
    assert await registered_rows(conn) == (1, 2)  # the employer's event and the worker's


# --- contributions ----------------------------------------------------------------------------


@pytest.fixture
async def member(contributions):
    """The contributions service knowing one BPU worker: (client, connection, participant)."""
    client, conn = contributions
    pid = uuid.uuid4()
    payload = ParticipantRegistered(
        participant_id=pid, kpj="00000000018", region_code=BINJAI_VILLAGE,
        segment="BPU", employer_id=None, monthly_income=1_000_000,
        programs=["JKK", "JKM"], registered_on="2026-11-03")
    envelope = make_envelope(payload, source="registration", subject=str(pid), sequence=1)
    async with conn.transaction():
        await contributions_learn(conn, [(envelope, payload)], date(2026, 11, 20))
    return client, conn, pid


def city_budget_line(pid: uuid.UUID) -> dict:
    """A government (APBD) payment: every text field of a payment is filled in."""
    return {"payment_ref": "APBD-2026-0001", "participant_id": str(pid),
            "first_period": "2026-11", "months": 1, "amount": 16_800, "payer": "government",
            "funding_code": "SD"}


PAYMENT_TEXT = ["payment_ref", "first_period", "funding_code", "participant_id"]


async def paid_rows(conn) -> tuple[int, int]:
    return (await conn.fetchval("SELECT count(*) FROM contributions"),
            await conn.fetchval("SELECT count(*) FROM outbox"))


@pytest.mark.parametrize("char", HOSTILE, ids=[f"U+{ord(c):04X}" for c in HOSTILE])
async def test_control_characters_in_any_payment_field_are_422_naming_it(member, auth,
                                                                        char):
    client, conn, pid = member
    clean = city_budget_line(pid)
    for field in PAYMENT_TEXT:
        body = {**clean, field: spoiled(clean[field], char)}
        response = await client.post("/v1/contributions", json=body, headers=auth)
        if field == "participant_id":  # not text but a UUID: refused as one
            assert response.status_code == 422, response.text
            assert [e["field"] for e in response.json()["errors"]] == ["participant_id"]
        else:
            refused_naming(response, field)
    assert await paid_rows(conn) == (0, 0)
    assert (await client.post("/v1/contributions", json=clean, headers=auth)).status_code == 201


async def test_a_bulk_line_with_a_control_character_fails_alone_naming_its_field(member,
                                                                                 auth):
    client, conn, pid = member
    clean = city_budget_line(pid)
    lines = [{**clean, field: spoiled(clean[field], "\x00")}
             for field in ("payment_ref", "first_period", "funding_code")]
    response = await client.post("/v1/contributions/bulk", json={"contributions": lines},
                                 headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 0
    for index, field in enumerate(("payment_ref", "first_period", "funding_code")):
        rejected_row_naming(body, index, field)
    assert await paid_rows(conn) == (0, 0)


# --- coverage ---------------------------------------------------------------------------------


@pytest.fixture
async def coverage(infra, bare_prefix):
    settings = CoverageApiSettings(DATABASE_URL=infra.new_database("coverage"),
                                   KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap,
                                   UCJ_TOPIC_PREFIX=bare_prefix,
                                   UCJ_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY)
    async for client in asgi_client(coverage_app(settings)):
        yield client, settings


@pytest.mark.parametrize("char", HOSTILE, ids=[f"U+{ord(c):04X}" for c in HOSTILE])
async def test_a_workforce_source_with_a_control_character_is_422_naming_it(coverage, auth,
                                                                           char):
    client, settings = coverage
    for source in (spoiled("BPS Sakernas", char), "BPS Sakernas" + char, char + "BPS"):
        response = await client.put("/v1/workforce/12.75", headers=auth, json={
            "workforce": 132826, "year": 2024, "source": source})
        refused_naming(response, "source")
    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM workforce") == 0
    finally:
        await conn.close()
