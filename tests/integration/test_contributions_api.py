"""The contributions service in-process on a real PostgreSQL: dues, payments, memberships, and
the calendar, with members learnt from registration events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import orjson
import pytest

from shared.clock import WIB
from shared.events import ParticipantChanged, ParticipantRegistered, make_envelope
from tests.integration.conftest import contributions_calendar, contributions_learn

pytestmark = pytest.mark.integration


def registered(pid, *, segment="BPU", income=1_000_000, programs=("JKK", "JKM"),
               registered_on="2026-11-03", sequence=1, changed=None):
    fields = {"participant_id": pid, "kpj": "00000000018", "region_code": "12.75.01.1001",
              "segment": segment, "employer_id": "EMP-1" if segment in ("PU", "JAKON") else None,
              "monthly_income": income, "programs": list(programs),
              "registered_on": registered_on}
    payload = (ParticipantChanged(**fields, changed=changed) if changed
               else ParticipantRegistered(**fields))
    return make_envelope(payload, source="registration", subject=str(pid),
                         sequence=sequence), payload


@pytest.fixture
def service(contributions, contributions_clock):
    """The contributions service of conftest and its clock: (client, connection, clock)."""
    return (*contributions, contributions_clock)


async def learn(conn, *events, today=None):
    async with conn.transaction():
        return await contributions_learn(conn, list(events),
                                                    today or datetime(2026, 11, 20).date())


def payment(pid, ref="VA-1", **overrides):
    body = {"payment_ref": ref, "participant_id": str(pid), "first_period": "2026-11",
            "months": 1, "amount": 16_800, "payer": "self"}
    body.update(overrides)
    return body


async def outbox_events(conn, event_type: str = "membership.status_changed") -> list[dict]:
    """The queued events of one type (status changes unless told), in order."""
    return [orjson.loads(r["payload"]) for r in await conn.fetch(
        "SELECT payload FROM outbox WHERE event_type = $1 ORDER BY id", event_type)]


async def test_bpu_dues_on_one_million_with_jkk_and_jkm_are_16800_a_month(service, auth):
    client, conn, _ = service
    pid = uuid.uuid4()
    await learn(conn, registered(pid))
    one = (await client.get(f"/v1/dues/{pid}", headers=auth)).json()
    assert one["first_period"] == "2026-11" and one["amount"] == 16_800
    assert {line["program"]: line["amount"] for line in one["lines"]} == {"JKK": 10_000,
                                                                         "JKM": 6_800}
    three = (await client.get(f"/v1/dues/{pid}?months=3", headers=auth)).json()
    assert three["amount"] == 3 * 16_800 and three["months"] == 3


async def test_a_payment_makes_the_member_active_and_publishes_it_once(service, auth):
    client, conn, _ = service
    pid = uuid.uuid4()
    await learn(conn, registered(pid))
    response = await client.post("/v1/contributions", json=payment(pid), headers=auth)
    assert response.status_code == 201, response.text
    assert response.json()["paid_through"] == "2026-11"
    assert response.json()["membership_status"] == "active"
    membership = (await client.get(f"/v1/memberships/{pid}", headers=auth)).json()
    assert membership["status"] == "active" and membership["paid_through"] == "2026-11"
    # what claims judges by: the months paid, the day, each programme's share; then the status
    [paid] = await outbox_events(conn, "contribution.paid")
    assert paid["sequence"] == 1 and paid["subject"] == str(pid)
    assert paid["data"] == {"participant_id": str(pid), "first_period": "2026-11",
                            "last_period": "2026-11", "paid_on": "2026-11-20",
                            "amount": 16_800, "by_program": {"JKK": 10_000, "JKM": 6_800},
                            "months_paid": 1, "payer": "self", "funding_code": None,
                            "programme_id": None, "agent_id": None}
    [event] = await outbox_events(conn)
    assert event["type"] == "membership.status_changed" and event["sequence"] == 2
    assert event["data"]["status"] == "active" and event["subject"] == str(pid)


async def test_the_same_payment_ref_returns_the_first_result_and_changes_nothing(service, auth):
    client, conn, _ = service
    pid = uuid.uuid4()
    await learn(conn, registered(pid))
    first = await client.post("/v1/contributions", json=payment(pid), headers=auth)
    again = await client.post("/v1/contributions", json=payment(pid), headers=auth)
    assert again.status_code == 201 and again.json() == first.json()
    other = await client.post("/v1/contributions", json=payment(pid, months=3, amount=50_400),
                              headers=auth)
    assert other.status_code == 409
    assert await conn.fetchval("SELECT count(*) FROM contributions") == 1
    assert len(await outbox_events(conn)) == 1


async def test_a_wrong_amount_is_refused_with_the_expected_amount(service, auth):
    client, conn, _ = service
    pid = uuid.uuid4()
    await learn(conn, registered(pid))
    response = await client.post("/v1/contributions", json=payment(pid, amount=16_000),
                                 headers=auth)
    assert response.status_code == 422
    assert response.json()["expected_amount"] == 16_800
    assert "16800" in response.json()["detail"].replace(",", "").replace(".", "")


@pytest.mark.parametrize("overrides", [
    {"months": 0}, {"months": 13}, {"months": "1"}, {"months": 2, "amount": 33_600},
    {"amount": -16_800},
    {"first_period": "2026-13"}, {"first_period": "11-2026"}, {"first_period": "2031-01"},
    {"first_period": "1999-01"}, {"payer": "uncle"}, {"payer": "government"},
    {"participant_id": "not-a-uuid"}, {"participant_id": str(uuid.UUID(int=7))},
    {"payment_ref": ""}, {"payment_ref": "x" * 101}, {"extra": 1},
])
async def test_bad_payments_are_clear_4xx_problems_and_write_nothing(service, auth, overrides):
    client, conn, _ = service
    pid = uuid.uuid4()
    await learn(conn, registered(pid))
    response = await client.post("/v1/contributions", json=payment(pid, **overrides),
                                 headers=auth)
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"]
    assert await conn.fetchval("SELECT count(*) FROM contributions") == 0
    assert await outbox_events(conn) == []


async def test_a_government_payment_needs_its_funding_code(service, auth):
    client, conn, _ = service
    pid = uuid.uuid4()
    await learn(conn, registered(pid))
    response = await client.post("/v1/contributions", headers=auth,
                                 json=payment(pid, payer="government", funding_code="SG"))
    assert response.status_code == 201, response.text


async def test_the_city_budget_batch_accepts_or_refuses_each_line_alone(service, auth):
    client, conn, _ = service
    pids = [uuid.uuid4() for _ in range(3)]
    await learn(conn, *[registered(p) for p in pids])
    lines = [payment(pids[0], ref="APBD-1", payer="government", funding_code="SG"),
             payment(pids[1], ref="APBD-2", payer="government", funding_code="SG", amount=1),
             payment(pids[2], ref="APBD-3", payer="government", funding_code="SG"),
             {"payment_ref": "APBD-4"},
             payment(pids[0], ref="APBD-5", payer="government", funding_code="SG",
                     first_period="2026-12")]
    response = await client.post("/v1/contributions/bulk", json={"contributions": lines},
                                 headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 3
    assert [r["index"] for r in body["results"]] == [0, 2, 4]
    assert body["results"][2]["paid_through"] == "2026-12"
    assert [r["index"] for r in body["rejected"]] == [1, 3]
    events = await outbox_events(conn)
    assert sorted(e["subject"] for e in events) == sorted([str(pids[0]), str(pids[2])])


async def test_a_month_falls_overdue_on_the_16th_and_the_calendar_publishes_it(service, auth):
    client, conn, clock = service
    pid = uuid.uuid4()
    await learn(conn, registered(pid))
    await client.post("/v1/contributions", json=payment(pid), headers=auth)
    for day in (datetime(2026, 12, 15, 23, 0, tzinfo=WIB), datetime(2026, 12, 16, 0, 5,
                                                                     tzinfo=WIB)):
        async with conn.transaction():
            await contributions_calendar(conn, day.date())
    events = await outbox_events(conn)
    assert [e["data"]["status"] for e in events] == ["active", "inactive"]
    assert [e["sequence"] for e in events] == [2, 3]  # 1: the payment's contribution.paid


async def test_an_income_change_changes_future_dues(service, auth):
    client, conn, _ = service
    pid = uuid.uuid4()
    await learn(conn, registered(pid))
    await learn(conn, registered(pid, income=2_000_000, sequence=2, changed=["monthly_income"]))
    await learn(conn, registered(pid, income=3_000_000, sequence=1))  # an old event, replayed
    dues = (await client.get(f"/v1/dues/{pid}", headers=auth)).json()
    assert dues["amount"] == 20_000 + 6_800


async def test_unknown_participants_and_bad_months_are_problems(service, auth):
    client, conn, _ = service
    assert (await client.get(f"/v1/dues/{uuid.uuid4()}", headers=auth)).status_code == 404
    assert (await client.get("/v1/memberships/nope", headers=auth)).status_code == 404
    pid = uuid.uuid4()
    await learn(conn, registered(pid))
    assert (await client.get(f"/v1/dues/{pid}?months=13", headers=auth)).status_code == 422
    assert (await client.get(f"/v1/dues/{pid}?months=x", headers=auth)).status_code == 422
    assert (await client.get(f"/v1/dues/{pid}")).status_code == 401


async def test_bpu_dues_and_payments_come_in_1_3_6_or_12_months(service, auth):
    client, conn, _ = service
    pid = uuid.uuid4()
    await learn(conn, registered(pid))
    two = await client.get(f"/v1/dues/{pid}?months=2", headers=auth)
    assert two.status_code == 422
    assert two.headers["content-type"].startswith("application/problem+json")
    assert two.json()["detail"] == (
        "BPU contributions are paid 1, 3, 6 or 12 months at a time, not 2")
    six = (await client.get(f"/v1/dues/{pid}?months=6", headers=auth)).json()
    paid = await client.post("/v1/contributions", headers=auth,
                             json=payment(pid, months=6, amount=six["amount"]))
    assert paid.status_code == 201, paid.text
    assert paid.json()["paid_through"] == "2027-04"


async def test_a_lapsed_bpu_membership_takes_no_payment(service, auth):
    client, conn, _ = service
    pid = uuid.uuid4()
    await learn(conn, registered(pid, registered_on="2026-05-04"))  # never paid since May
    membership = (await client.get(f"/v1/memberships/{pid}", headers=auth)).json()
    assert membership["status"] == "terminated" and membership["reason"] == "lapsed"
    response = await client.post("/v1/contributions", headers=auth,
                                 json=payment(pid, first_period="2026-05"))
    assert response.status_code == 422
    assert "lapsed" in response.json()["detail"]
    assert (await client.get(f"/v1/dues/{pid}", headers=auth)).status_code == 409
    assert await conn.fetchval("SELECT count(*) FROM contributions") == 0


async def test_pu_months_paid_after_their_due_date_carry_the_late_charge(service, auth):
    client, conn, _ = service
    pid = uuid.uuid4()
    await learn(conn, registered(pid, segment="PU", income=5_000_000,
                                 programs=("JKK", "JKM", "JHT", "JP"),
                                 registered_on="2026-09-03"))
    owed = (await client.get(f"/v1/dues/{pid}?months=2", headers=auth)).json()
    # September (due 15 Oct) is 2 months late on 20 Nov, October (due 15 Nov) 1 month:
    # 4% and 2% of Rp 462,000.
    assert owed["first_period"] == "2026-09"
    assert owed["late_charge"] == 18_480 + 9_240
    assert owed["amount"] == sum(line["amount"] for line in owed["lines"]) + owed["late_charge"]
    short = await client.post("/v1/contributions", headers=auth, json=payment(
        pid, first_period="2026-09", months=2, amount=924_000, payer="employer"))
    assert short.status_code == 422 and short.json()["expected_amount"] == 951_720
    assert "late charge" in short.json()["detail"]
    paid = await client.post("/v1/contributions", headers=auth, json=payment(
        pid, first_period="2026-09", months=2, amount=951_720, payer="employer"))
    assert paid.status_code == 201, paid.text
    assert paid.json()["paid_through"] == "2026-10"


async def test_the_calendar_first_looks_at_a_new_member_when_time_alone_changes_it(service):
    _, conn, _ = service
    new, old = uuid.uuid4(), uuid.uuid4()
    await learn(conn, registered(new), registered(old, registered_on="2026-05-04"))
    checks = {r["participant_id"]: r["next_check_on"] for r in
              await conn.fetch("SELECT participant_id, next_check_on FROM members")}
    # Registered in November and never paying: the fourth overdue month (February) lapses
    # it on 16 February 2027. The old registration has lapsed already: look today.
    assert str(checks[new]) == "2027-02-16"
    assert str(checks[old]) == "2026-11-20"


async def test_an_id_not_learnt_yet_is_not_yet_known_while_registrations_wait(service, auth):
    """CONTRACT: a well-formed id the service has not learnt yet, while it is still catching up
    with its input events, is 404 `.../not-yet-known` with Retry-After: 1. It is plainly unknown
    once a report made after the question says the worker has read every registration."""
    client, conn, _ = service
    from shared.consumer_progress import PARTICIPANT_CONSUMER, record_progress

    async def answer():
        response = await client.get(f"/v1/dues/{uuid.uuid4()}", headers=auth)
        assert response.status_code == 404
        return response

    never_reported = await answer()  # no worker has said anything
    assert never_reported.json()["type"].endswith("/not-yet-known")
    assert never_reported.headers["retry-after"] == "1"
    await record_progress(conn, PARTICIPANT_CONSUMER, 0)
    # Caught up, but said before the question: it may not cover the registration asked about.
    assert (await answer()).json()["type"].endswith("/not-yet-known")

    async def report_while_asked(waiting: int):
        asking = asyncio.create_task(answer())
        await asyncio.sleep(0.8)
        await record_progress(conn, PARTICIPANT_CONSUMER, waiting)
        return await asking

    assert (await report_while_asked(250)).json()["type"].endswith("/not-yet-known")
    unknown = await report_while_asked(0)  # read everything, said after the question
    assert unknown.json()["type"] == "about:blank" and "retry-after" not in unknown.headers
