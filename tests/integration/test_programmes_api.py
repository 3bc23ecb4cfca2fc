"""Funded programmes on the contributions service, in-process on a real PostgreSQL: creating
and reading programmes with their live figures, enrolling workers (one, in bulk, and 50 at
once for 10 places), every refusal, payments naming a programme, and the events queued in the
outbox. Members are learnt from registration events, as the worker learns them.

Today is 20 November 2026 (WIB): an enrolment in a 2026 programme covers November-December.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date

import orjson
import pytest

from shared.events import ParticipantRegistered, decode, make_envelope
from tests.integration.conftest import contributions_learn

pytestmark = pytest.mark.integration

BINJAI = "12.75"
IN_BINJAI = "12.75.01.1001"
IN_MEDAN = "12.71.01.1001"
MONTHLY = 16_800
TODAY = date(2026, 11, 20)
PERSONAL = ("nik", "full_name", "name_of_worker", "birth_date", "born_in", "kpj")


@pytest.fixture
def service(contributions):
    """The contributions service of conftest, on 20 November 2026: (client, connection)."""
    return contributions


async def workers(conn, count: int = 1, *, segment: str = "BPU", region: str = IN_BINJAI,
                  registered_on: str = "2026-11-03",
                  programs: tuple[str, ...] = ("JKK", "JKM")) -> list[uuid.UUID]:
    """`count` workers learnt from their registration events."""
    pids = [uuid.uuid4() for _ in range(count)]
    events = []
    for pid in pids:
        payload = ParticipantRegistered(
            participant_id=pid, kpj="00000000018", region_code=region, segment=segment,
            employer_id="EMP-1" if segment in ("PU", "JAKON") else None,
            monthly_income=1_000_000, programs=list(programs),  # type: ignore[arg-type]
            registered_on=registered_on)
        events.append((make_envelope(payload, source="registration", subject=str(pid),
                                     sequence=1), payload))
    async with conn.transaction():
        await contributions_learn(conn, events, TODAY)
    return pids


def programme_body(**overrides):
    body = {"name": "Binjai BPU 2026", "funder_region": BINJAI, "year": 2026, "quota": 100,
            "budget_rupiah": 10 * MONTHLY, "funding_code": "SG", "programs": ["JKK", "JKM"],
            "months": 12}
    body.update(overrides)
    return body


async def new_programme(client, auth, **overrides) -> dict:
    response = await client.post("/v1/programmes", json=programme_body(**overrides),
                                 headers=auth)
    assert response.status_code == 201, response.text
    return response.json()


async def enrol(client, auth, programme: dict, pid) -> object:
    return await client.post(f"/v1/programmes/{programme['programme_id']}/enrolments",
                             json={"participant_id": str(pid)}, headers=auth)


def funded(pid, programme: dict, ref: str = "APBD-1", **overrides):
    body = {"payment_ref": ref, "participant_id": str(pid), "first_period": "2026-11",
            "months": 1, "amount": MONTHLY, "payer": "government", "funding_code": "SG",
            "programme_id": programme["programme_id"]}
    body.update(overrides)
    return body


async def outbox(conn) -> list[tuple[str, dict]]:
    """Every queued event, in order: (topic, envelope)."""
    return [(r["topic"], orjson.loads(r["payload"])) for r in await conn.fetch(
        "SELECT topic, payload FROM outbox ORDER BY id")]


# --- programmes -------------------------------------------------------------------------------


async def test_a_programme_is_created_read_and_listed_and_its_event_queued(service, auth):
    client, conn = service
    made = await new_programme(client, auth, months=6, first_period="2026-07")
    assert made["first_period"] == "2026-07" and made["last_period"] == "2026-12"
    assert made["quota"] == 100 and made["enrolled"] == 0 and made["places_left"] == 100
    assert made["budget_spent"] == 0 and made["budget_left"] == 10 * MONTHLY
    read = await client.get(f"/v1/programmes/{made['programme_id']}", headers=auth)
    assert read.status_code == 200 and read.json() == made
    await new_programme(client, auth, funder_region="12.71", name="Medan")
    await new_programme(client, auth, year=2027, name="Binjai 2027")
    listed = (await client.get("/v1/programmes?funder_region=12.75&year=2026",
                               headers=auth)).json()["items"]
    assert [p["programme_id"] for p in listed] == [made["programme_id"]]
    [(topic, event), *_] = await outbox(conn)
    assert topic.endswith("ucj.organisations")
    assert event["type"] == "programme.created" and event["sequence"] == 1
    assert event["subject"] == made["programme_id"] and event["source"] == "contributions"
    envelope, payload = decode(orjson.dumps(event))
    assert payload.first_period == "2026-07" and payload.funding_code == "SG"  # type: ignore


@pytest.mark.parametrize("overrides", [
    {"funder_region": "99.99"}, {"funder_region": "ID"}, {"months": 13}, {"months": 0},
    {"funding_code": "XX"}, {"programs": ["JKK"]}, {"programs": ["JKK", "JKM", "JP"]},
    {"first_period": "2025-12"}, {"quota": 0}, {"budget_rupiah": -1}, {"year": "2026"},
    {"extra": 1},
])
async def test_a_bad_programme_is_a_422_and_writes_nothing(service, auth, overrides):
    client, conn = service
    response = await client.post("/v1/programmes", json=programme_body(**overrides),
                                 headers=auth)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"]
    assert await conn.fetchval("SELECT count(*) FROM programmes") == 0
    assert await outbox(conn) == []


async def test_programmes_need_a_key_and_an_unknown_one_is_404(service, auth):
    client, _ = service
    assert (await client.post("/v1/programmes", json=programme_body())).status_code == 401
    assert (await client.get("/v1/programmes")).status_code == 401
    assert (await client.get(f"/v1/programmes/{uuid.uuid4()}", headers=auth)).status_code == 404
    assert (await client.get("/v1/programmes/nope", headers=auth)).status_code == 404
    nowhere = await client.post(f"/v1/programmes/{uuid.uuid4()}/enrolments", headers=auth,
                                json={"participant_id": str(uuid.uuid4())})
    assert nowhere.status_code == 404
    programme = await new_programme(client, auth)
    # a worker not learnt yet, while no report says the registrations were all read
    unknown = await enrol(client, auth, programme, uuid.uuid4())
    assert unknown.status_code == 404  # type: ignore[attr-defined]
    assert unknown.json()["type"].endswith("/not-yet-known")  # type: ignore[attr-defined]


async def test_a_programme_change_never_goes_below_what_is_enrolled_or_spent(service, auth):
    client, conn = service
    programme = await new_programme(client, auth, quota=3)
    pids = await workers(conn, 2)
    for pid in pids:
        await enrol(client, auth, programme, pid)
    await client.post("/v1/contributions", headers=auth, json=funded(pids[0], programme))
    url = f"/v1/programmes/{programme['programme_id']}"
    low = await client.patch(url, json={"quota": 1, "budget_rupiah": MONTHLY - 1}, headers=auth)
    assert low.status_code == 409
    assert [e["field"] for e in low.json()["errors"]] == ["quota", "budget_rupiah"]
    changed = await client.patch(url, json={"quota": 2, "budget_rupiah": MONTHLY}, headers=auth)
    assert changed.status_code == 200, changed.text
    assert changed.json()["places_left"] == 0 and changed.json()["budget_left"] == 0
    assert (await client.patch(url, json={"year": 2027}, headers=auth)).status_code == 422
    events = [e for t, e in await outbox(conn) if e["subject"] == programme["programme_id"]]
    assert [(e["type"], e["sequence"]) for e in events] == [("programme.created", 1),
                                                           ("programme.changed", 2)]
    assert events[1]["data"]["quota"] == 2


HOSTILE = ["\x00", "12.75\x00", "\ud800", "x" * 10_000, -1, 2**63, 1.5, True, None, [], {}]


async def test_hostile_input_is_a_problem_never_a_5xx(service, auth):
    client, conn = service
    programme = await new_programme(client, auth)
    [pid] = await workers(conn)
    base = f"/v1/programmes/{programme['programme_id']}"
    requests: list[tuple[str, str, object]] = []
    for value in HOSTILE:
        for field in ("name", "funder_region", "year", "quota", "budget_rupiah", "funding_code",
                      "programs", "months", "first_period"):
            requests.append(("POST", "/v1/programmes", programme_body(**{field: value})))
        for field in ("name", "quota", "budget_rupiah"):
            requests.append(("PATCH", base, {field: value}))
        requests.append(("POST", f"{base}/enrolments", {"participant_id": value}))
        requests.append(("POST", f"{base}/enrolments", {"enrolments": [{"participant_id": value}]}))
        requests.append(("POST", f"{base}/enrolments", {"enrolments": value}))
        requests.append(("POST", "/v1/contributions", funded(pid, programme, programme_id=value)))
        requests.append(("POST", "/v1/contributions", funded(pid, programme, agent_id=value)))
        if isinstance(value, str) and len(value) < 100 and value != "\ud800":
            for query in ("funder_region", "year", "limit"):
                requests.append(("GET", "/v1/programmes", {query: value}))
            for query in ("unpaid_for", "cursor", "limit"):
                requests.append(("GET", f"{base}/enrolments", {query: value}))
    for method, url, body in requests:
        if method == "GET":
            response = await client.get(url, params=body, headers=auth)  # type: ignore[arg-type]
        else:
            # The standard library's JSON escapes a lone surrogate (orjson refuses one).
            response = await client.request(method, url, content=json.dumps(body).encode(),
                                            headers={**auth, "content-type": "application/json"})
        assert response.status_code < 500, (method, url, body, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
    assert await conn.fetchval("SELECT count(*) FROM programme_enrolments") == 0
    # (programme_id null makes a plain government payment: fine, and not the programme's)
    assert await conn.fetchval(
        "SELECT count(*) FROM contributions WHERE programme_id IS NOT NULL") == 0


# --- enrolment --------------------------------------------------------------------------------


async def test_a_worker_is_enrolled_once_and_again_gets_the_same_enrolment(service, auth):
    client, conn = service
    programme = await new_programme(client, auth)
    [pid] = await workers(conn)
    first = await enrol(client, auth, programme, pid)
    assert first.status_code == 201, first.text
    assert first.json() == {"programme_id": programme["programme_id"],
                            "participant_id": str(pid), "first_period": "2026-11",
                            "last_period": "2026-12", "enrolled": True, "created": True}
    again = await enrol(client, auth, programme, pid)
    assert again.status_code == 200 and again.json()["created"] is False
    assert await conn.fetchval("SELECT count(*) FROM programme_enrolments") == 1
    enrolments = [e for _, e in await outbox(conn) if e["type"] == "programme.enrolment_changed"]
    assert len(enrolments) == 1 and enrolments[0]["subject"] == str(pid)


async def test_a_bulk_enrolment_takes_or_refuses_each_row_alone(service, auth):
    client, conn = service
    programme = await new_programme(client, auth)
    ok = await workers(conn, 2)
    [pu] = await workers(conn, segment="PU")
    [medan] = await workers(conn, region=IN_MEDAN)
    [lapsed] = await workers(conn, registered_on="2026-05-04")
    rows = [{"participant_id": str(ok[0])}, {"participant_id": str(pu)},
            {"participant_id": str(medan)}, {"participant_id": "nope"},
            {"participant_id": str(uuid.uuid4())}, {"participant_id": str(lapsed)},
            {"participant_id": str(ok[1])}, {"participant_id": str(ok[0])}]
    response = await client.post(f"/v1/programmes/{programme['programme_id']}/enrolments",
                                 json={"enrolments": rows}, headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 3
    assert [(r["index"], r["created"]) for r in body["results"]] == [(0, True), (6, True),
                                                                      (7, False)]
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3, 4, 5]
    reasons = {r["index"]: r["errors"][0]["message"] for r in body["rejected"]}
    assert "only BPU" in reasons[1] and "region 12.75" in reasons[2]
    assert "terminated" in reasons[5]
    figures = (await client.get(f"/v1/programmes/{programme['programme_id']}",
                                headers=auth)).json()
    assert figures["enrolled"] == 2 and figures["places_left"] == 98


async def test_10000_workers_are_enrolled_in_one_request_and_no_more(service, auth):
    client, conn = service
    programme = await new_programme(client, auth, quota=10_000)
    pids = await workers(conn, 10_000)
    url = f"/v1/programmes/{programme['programme_id']}/enrolments"
    too_many = [{"participant_id": str(p)} for p in pids] + [{"participant_id": str(pids[0])}]
    refused = await client.post(url, json={"enrolments": too_many}, headers=auth)
    assert refused.status_code == 422
    response = await client.post(url, json={"enrolments": too_many[:10_000]}, headers=auth)
    assert response.status_code == 200 and response.json()["accepted"] == 10_000
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE event_type ="
                               " 'programme.enrolment_changed'") == 10_000


@pytest.mark.parametrize(("segment", "region"), [("PU", IN_BINJAI), ("BPU", IN_MEDAN)])
async def test_a_pu_worker_or_one_outside_the_region_is_refused(service, auth, segment, region):
    client, conn = service
    programme = await new_programme(client, auth)
    [pid] = await workers(conn, segment=segment, region=region)
    response = await enrol(client, auth, programme, pid)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await conn.fetchval("SELECT count(*) FROM programme_enrolments") == 0


async def test_a_worker_in_another_programme_for_overlapping_months_is_refused(service, auth):
    client, conn = service
    city = await new_programme(client, auth)
    province = await new_programme(client, auth, funder_region="12", name="Sumut",
                                   funding_code="SA", months=3, first_period="2026-12")
    [pid] = await workers(conn)
    assert (await enrol(client, auth, city, pid)).status_code == 201
    refused = await enrol(client, auth, province, pid)
    assert refused.status_code == 409
    assert "one programme at a time" in refused.json()["detail"]


async def test_one_worker_raced_into_two_overlapping_programmes_gets_one(service, auth):
    client, conn = service
    city = await new_programme(client, auth)
    province = await new_programme(client, auth, funder_region="12", funding_code="SA")
    [pid] = await workers(conn)
    answers = await asyncio.gather(enrol(client, auth, city, pid),
                                   enrol(client, auth, province, pid))
    assert sorted(a.status_code for a in answers) == [201, 409]  # type: ignore[attr-defined]
    assert await conn.fetchval("SELECT count(*) FROM programme_enrolments") == 1


async def test_a_full_programme_refuses_the_next_worker(service, auth):
    client, conn = service
    programme = await new_programme(client, auth, quota=1)
    first, second = await workers(conn, 2)
    assert (await enrol(client, auth, programme, first)).status_code == 201
    full = await enrol(client, auth, programme, second)
    assert full.status_code == 409 and "full" in full.json()["detail"]


async def test_50_concurrent_enrolments_fill_exactly_the_10_places_left(service, auth):
    client, conn = service
    programme = await new_programme(client, auth, quota=15)
    earlier = await workers(conn, 5)
    response = await client.post(
        f"/v1/programmes/{programme['programme_id']}/enrolments", headers=auth,
        json={"enrolments": [{"participant_id": str(p)} for p in earlier]})
    assert response.json()["accepted"] == 5
    racing = await workers(conn, 50)
    answers = await asyncio.gather(*(enrol(client, auth, programme, p) for p in racing))
    codes = sorted(a.status_code for a in answers)  # type: ignore[attr-defined]
    assert codes == [201] * 10 + [409] * 40
    assert await conn.fetchval(
        "SELECT count(*) FROM programme_enrolments WHERE programme_id = $1",
        uuid.UUID(programme["programme_id"])) == 15
    figures = (await client.get(f"/v1/programmes/{programme['programme_id']}",
                                headers=auth)).json()
    assert figures["enrolled"] == 15 and figures["places_left"] == 0


async def test_a_withdrawal_frees_the_place_and_queues_enrolled_false(service, auth):
    client, conn = service
    programme = await new_programme(client, auth, quota=1)
    first, second = await workers(conn, 2)
    await enrol(client, auth, programme, first)
    url = f"/v1/programmes/{programme['programme_id']}/enrolments/{first}"
    withdrawn = await client.delete(url, headers=auth)
    assert withdrawn.status_code == 200 and withdrawn.json()["enrolled"] is False
    assert (await client.delete(url, headers=auth)).status_code == 404
    assert (await enrol(client, auth, programme, second)).status_code == 201
    changes = [e for _, e in await outbox(conn)
               if e["type"] == "programme.enrolment_changed" and e["subject"] == str(first)]
    assert [(e["sequence"], e["data"]["enrolled"]) for e in changes] == [(1, True), (2, False)]


async def test_the_unpaid_list_pages_through_participant_ids_only(service, auth):
    client, conn = service
    programme = await new_programme(client, auth)
    pids = await workers(conn, 5)
    await client.post(f"/v1/programmes/{programme['programme_id']}/enrolments", headers=auth,
                      json={"enrolments": [{"participant_id": str(p)} for p in pids]})
    await client.post("/v1/contributions", headers=auth, json=funded(pids[0], programme))
    url = f"/v1/programmes/{programme['programme_id']}/enrolments"
    seen: list[str] = []
    cursor = None
    while True:
        query = "?unpaid_for=2026-11&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url + query, headers=auth)).json()
        seen += [item["participant_id"] for item in page["items"]]
        assert all(set(item) == {"participant_id", "first_period", "last_period"}
                   for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(str(p) for p in pids[1:])
    everyone = (await client.get(url, headers=auth)).json()["items"]
    assert len(everyone) == 5
    december = (await client.get(url + "?unpaid_for=2026-12", headers=auth)).json()["items"]
    assert len(december) == 5
    assert (await client.get(url + "?unpaid_for=2027-01", headers=auth)).json()["items"] == []
    assert (await client.get(url + "?unpaid_for=11-2026", headers=auth)).status_code == 422
    assert (await client.get(url + "?cursor=nope", headers=auth)).status_code == 422


# --- payments naming a programme --------------------------------------------------------------


async def test_a_programme_pays_for_an_enrolled_worker_and_the_figures_follow(service, auth):
    client, conn = service
    programme = await new_programme(client, auth)
    paid, unpaid = await workers(conn, 2)
    for pid in (paid, unpaid):
        await enrol(client, auth, programme, pid)
    response = await client.post("/v1/contributions", headers=auth,
                                 json=funded(paid, programme, agent_id="AGT-0042"))
    assert response.status_code == 201, response.text
    figures = (await client.get(f"/v1/programmes/{programme['programme_id']}",
                                headers=auth)).json()
    assert figures["enrolled"] == 2 and figures["paid_this_month"] == 1
    assert figures["active"] == 1
    assert figures["budget_spent"] == MONTHLY and figures["budget_left"] == 9 * MONTHLY
    row = await conn.fetchrow("SELECT programme_id, agent_id, paid_on FROM contributions")
    assert str(row["programme_id"]) == programme["programme_id"]
    assert row["agent_id"] == "AGT-0042" and row["paid_on"] == TODAY
    unpaid_list = (await client.get(
        f"/v1/programmes/{programme['programme_id']}/enrolments?unpaid_for=2026-11",
        headers=auth)).json()
    assert unpaid_list == {"items": [{"participant_id": str(unpaid), "first_period": "2026-11",
                                      "last_period": "2026-12"}], "next_cursor": None}


@pytest.mark.parametrize(("overrides", "status", "field"), [
    ({"payer": "self", "funding_code": None}, 422, "payer"),
    ({"payer": "csr", "funding_code": "SC"}, 422, "payer"),
    ({"funding_code": "SD"}, 422, "funding_code"),
    ({"months": 3, "amount": 3 * MONTHLY}, 422, "months"),
    ({"programme_id": str(uuid.uuid4())}, 422, "programme_id"),
    ({"agent_id": "-bad agent"}, 422, "agent_id"),
])
async def test_a_payment_the_programme_may_not_make_is_refused(service, auth, overrides,
                                                              status, field):
    client, conn = service
    programme = await new_programme(client, auth)
    [pid] = await workers(conn)
    await enrol(client, auth, programme, pid)
    response = await client.post("/v1/contributions", headers=auth,
                                 json=funded(pid, programme, **overrides))
    assert response.status_code == status, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert await conn.fetchval("SELECT count(*) FROM contributions") == 0


async def test_a_programme_pays_no_programme_it_does_not_fund(service, auth):
    client, conn = service
    programme = await new_programme(client, auth)  # JKK and JKM
    [pid] = await workers(conn, programs=("JKK", "JKM", "JHT"))
    assert (await enrol(client, auth, programme, pid)).status_code == 201
    response = await client.post("/v1/contributions", headers=auth,
                                 json=funded(pid, programme, amount=36_800))
    assert response.status_code == 422
    assert "also hold JHT" in response.json()["detail"]


async def test_a_programme_pays_no_worker_it_has_not_enrolled(service, auth):
    client, conn = service
    programme = await new_programme(client, auth)
    [pid] = await workers(conn)
    response = await client.post("/v1/contributions", headers=auth,
                                 json=funded(pid, programme))
    assert response.status_code == 422
    assert "not enrolled" in response.json()["detail"]
    assert await conn.fetchval("SELECT count(*) FROM contributions") == 0


async def test_the_budget_is_never_exceeded_and_each_bulk_line_stands_alone(service, auth):
    client, conn = service
    programme = await new_programme(client, auth, budget_rupiah=2 * MONTHLY)
    pids = await workers(conn, 3)
    for pid in pids:
        await enrol(client, auth, programme, pid)
    lines = [funded(pid, programme, ref=f"APBD-{i}") for i, pid in enumerate(pids)]
    response = await client.post("/v1/contributions/bulk", json={"contributions": lines},
                                 headers=auth)
    body = response.json()
    assert body["accepted"] == 2 and [r["index"] for r in body["rejected"]] == [2]
    assert "budget" in body["rejected"][0]["errors"][0]["message"]
    single = await client.post("/v1/contributions", headers=auth,
                               json=funded(pids[2], programme, ref="APBD-9"))
    assert single.status_code == 409 and single.json()["title"] == "Payment refused"
    assert await conn.fetchval("SELECT sum(amount) FROM contributions") == 2 * MONTHLY
    paid_events = [e for _, e in await outbox(conn) if e["type"] == "contribution.paid"]
    assert sorted(e["subject"] for e in paid_events) == sorted(str(p) for p in pids[:2])


async def test_concurrent_payments_never_take_a_programme_beyond_its_budget(service, auth):
    client, conn = service
    programme = await new_programme(client, auth, budget_rupiah=3 * MONTHLY)
    pids = await workers(conn, 8)
    await client.post(f"/v1/programmes/{programme['programme_id']}/enrolments", headers=auth,
                      json={"enrolments": [{"participant_id": str(p)} for p in pids]})
    answers = await asyncio.gather(*(client.post(
        "/v1/contributions", headers=auth, json=funded(p, programme, ref=f"R-{i}"))
        for i, p in enumerate(pids)))
    assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 5
    assert await conn.fetchval("SELECT sum(amount) FROM contributions") == 3 * MONTHLY


# --- events -----------------------------------------------------------------------------------


async def test_a_workers_events_keep_one_increasing_sequence_and_no_personal_data(service,
                                                                                  auth):
    client, conn = service
    programme = await new_programme(client, auth)
    [pid] = await workers(conn)
    await enrol(client, auth, programme, pid)
    await client.post("/v1/contributions", headers=auth, json=funded(pid, programme))
    await client.delete(f"/v1/programmes/{programme['programme_id']}/enrolments/{pid}",
                        headers=auth)
    events = [(t, e) for t, e in await outbox(conn) if e["subject"] == str(pid)]
    assert [e["type"] for _, e in events] == [
        "programme.enrolment_changed", "contribution.paid", "membership.status_changed",
        "programme.enrolment_changed"]
    assert [e["sequence"] for _, e in events] == [1, 2, 3, 4]
    assert all(t.endswith("ucj.memberships") and e["source"] == "contributions"
               for t, e in events)
    paid = events[1][1]["data"]
    assert paid["months_paid"] == 1 and paid["payer"] == "government"
    assert paid["funding_code"] == "SG" and paid["programme_id"] == programme["programme_id"]
    assert paid["agent_id"] is None
    for _, event in await outbox(conn):
        decode(orjson.dumps(event))  # every event reads back with the shared models
        assert not set(PERSONAL) & set(event["data"]), event["type"]
