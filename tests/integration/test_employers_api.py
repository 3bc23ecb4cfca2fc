"""Issue 11 on the registration service, on a real PostgreSQL (and Kafka for the relay):
employers (OPDs included) and their declared workers, workers naming registered employers of
the right kind, and the channel each worker came through."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from shared.topics import ORGANISATIONS, topic_name
from tests.employers import employer_body, new_employer
from tests.integration.conftest import relayed_events, worker

pytestmark = pytest.mark.integration

DINAS = {"name": "Dinas Kebersihan Kota Binjai", "kind": "opd", "region_code": "12.75",
         "npp": "NPP-1275-0001",
         "declared_workers": {"year": 2025, "count": 310, "source": "SK Walikota 2025"}}


def wage_earner(serial: int, employer_id: str | None, segment: str = "PU", **overrides) -> dict:
    return worker(serial, segment=segment, employer_id=employer_id, monthly_income=4_000_000,
                  **overrides)


@pytest.fixture
def service(keyed_registration):
    """The registration service of conftest, with the API keys' topic:
    (client, connection, settings)."""
    return keyed_registration


async def counts(conn) -> tuple[int, int, int]:
    """(employers, participants, outbox rows)."""
    return (await conn.fetchval("SELECT count(*) FROM employers"),
            await conn.fetchval("SELECT count(*) FROM participants"),
            await conn.fetchval("SELECT count(*) FROM outbox"))


async def outbox(conn) -> list[tuple[str, str, dict]]:
    """(topic, key, event) of every outbox row, in order."""
    return [(r["topic"], r["key"], orjson.loads(r["payload"])) for r in await conn.fetch(
        "SELECT topic, key, payload FROM outbox ORDER BY id")]


async def partner(client, auth, *scopes: str) -> dict[str, str]:
    made = (await client.post("/v1/api-keys", json={"name": "partner", "scopes": list(scopes)},
                              headers=auth)).json()
    return {"Authorization": f"Bearer {made['key']}"}


# --- employers ----------------------------------------------------------------------------------


async def test_a_registered_employer_is_stored_with_its_event_on_the_organisations_topic(
        service, auth):
    client, conn, settings = service
    response = await client.post("/v1/employers", json=DINAS, headers=auth)
    assert response.status_code == 201, response.text
    body = response.json()
    eid = body["employer_id"]
    assert body == {"employer_id": eid, "name": DINAS["name"], "kind": "opd",
                    "region_code": "12.75", "npp": "NPP-1275-0001",
                    "declared_workers": [DINAS["declared_workers"]],
                    "registered_on": body["registered_on"]}
    assert await counts(conn) == (1, 0, 1)
    [(topic, key, event)] = await outbox(conn)
    assert topic == topic_name(ORGANISATIONS, settings.topic_prefix)
    assert key == eid == event["subject"]
    assert (event["type"], event["source"], event["sequence"]) == (
        "employer.registered", "registration", 1)
    assert event["data"] == {"employer_id": eid, "name": DINAS["name"], "kind": "opd",
                             "region_code": "12.75", "npp": "NPP-1275-0001",
                             "declared_workers": [DINAS["declared_workers"]]}
    # Reads give the same employer.
    read = await client.get(f"/v1/employers/{eid}", headers=auth)
    assert read.status_code == 200 and read.json() == body


async def test_an_employer_event_carries_no_personal_data(service, auth):
    client, conn, _ = service
    _ = await client.post("/v1/participants", json=worker(), headers=auth)
    await new_employer(client, auth)
    [(_, _, registered), (_, _, employer)] = await outbox(conn)
    raw = orjson.dumps(employer).decode()
    for personal in ("1275014508900001", "Siti", "Aminah", "1990-08-05"):
        assert personal not in raw
    assert "owner" not in employer["data"] and "registered_by" not in employer["data"]
    assert registered["type"] == "participant.registered"


async def test_an_unknown_employer_is_404(service, auth):
    client, _, _ = service
    assert (await client.get(f"/v1/employers/{uuid.uuid4()}", headers=auth)).status_code == 404
    assert (await client.get("/v1/employers/nope", headers=auth)).status_code == 404
    put = await client.put(f"/v1/employers/{uuid.uuid4()}/declared-workers",
                           json={"year": 2025, "count": 3}, headers=auth)
    assert put.status_code == 404


async def test_an_npp_already_registered_is_409_with_the_existing_employer(service, auth):
    client, conn, _ = service
    first = (await client.post("/v1/employers", json=DINAS, headers=auth)).json()
    again = await client.post("/v1/employers", json={**DINAS, "name": "Dinas Lain"},
                              headers=auth)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")
    assert again.json()["employer_id"] == first["employer_id"]
    assert await counts(conn) == (1, 0, 1)
    # Employers without an NPP never collide.
    await new_employer(client, auth)
    await new_employer(client, auth)
    assert await counts(conn) == (3, 0, 3)


async def test_the_same_idempotency_key_registers_an_employer_once(service, auth):
    client, conn, _ = service
    headers = {**auth, "Idempotency-Key": "emp-001"}
    body = employer_body()
    first = await client.post("/v1/employers", json=body, headers=headers)
    second = await client.post("/v1/employers", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    other = await client.post("/v1/employers", json=employer_body(), headers=headers)
    assert other.status_code == 422
    assert await counts(conn) == (1, 0, 1)


@pytest.mark.parametrize("changes, field", [
    ({"region_code": "99.99"}, "region_code"),
    ({"region_code": "ID"}, "region_code"),
    ({"region_code": "12.75.01.9999"}, "region_code"),
    ({"kind": "ngo"}, "kind"),
    ({"kind": None}, "kind"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"name": "Dinas\x00Kebersihan"}, "name"),
    ({"npp": "NPP 1"}, "npp"),
    ({"npp": "NPP\x1b1"}, "npp"),
    ({"declared_workers": {"year": 2025, "count": -1}}, "declared_workers.count"),
    ({"declared_workers": {"year": 2025, "count": 10_000_001}}, "declared_workers.count"),
    ({"declared_workers": {"year": 1999, "count": 5}}, "declared_workers.year"),
    ({"declared_workers": {"year": 2101, "count": 5}}, "declared_workers.year"),
    ({"declared_workers": {"year": 2025, "count": "5"}}, "declared_workers.count"),
    ({"declared_workers": {"year": 2025, "count": 5, "source": "a\x00b"}},
     "declared_workers.source"),
    ({"website": "https://example.org"}, "website"),
])
async def test_a_bad_employer_is_a_422_naming_the_field_and_writes_nothing(service, auth,
                                                                           changes, field):
    client, conn, _ = service
    response = await client.post("/v1/employers", json={**DINAS, **changes}, headers=auth)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in {e["field"] for e in response.json()["errors"]}
    assert await counts(conn) == (0, 0, 0)


async def test_declared_workers_add_or_replace_one_year_with_an_event_each(service, auth):
    client, conn, _ = service
    eid = (await client.post("/v1/employers", json=DINAS, headers=auth)).json()["employer_id"]
    url = f"/v1/employers/{eid}/declared-workers"
    added = await client.put(url, json={"year": 2024, "count": 290}, headers=auth)
    assert added.status_code == 200, added.text
    replaced = await client.put(url, json={"year": 2025, "count": 320, "source": "revisi"},
                                headers=auth)
    assert replaced.json()["declared_workers"] == [
        {"year": 2024, "count": 290, "source": None},
        {"year": 2025, "count": 320, "source": "revisi"}]
    same = await client.put(url, json={"year": 2025, "count": 320, "source": "revisi"},
                            headers=auth)
    assert same.status_code == 200 and same.json() == replaced.json()
    events = [e for _, _, e in await outbox(conn)]
    assert [(e["type"], e["sequence"]) for e in events] == [
        ("employer.registered", 1), ("employer.changed", 2), ("employer.changed", 3)]
    assert events[-1]["data"]["declared_workers"] == replaced.json()["declared_workers"]
    assert (await client.get(f"/v1/employers/{eid}", headers=auth)).json() == replaced.json()


@pytest.mark.parametrize("body, field", [
    ({"year": 2025, "count": -5}, "count"),
    ({"year": 2025, "count": 10_000_001}, "count"),
    ({"year": 1999, "count": 5}, "year"),
    ({"year": 2025}, "count"),
    ({"year": 2025, "count": 5, "extra": 1}, "extra"),
])
async def test_a_bad_declared_figure_is_422_and_changes_nothing(service, auth, body, field):
    client, conn, _ = service
    eid = (await client.post("/v1/employers", json=DINAS, headers=auth)).json()["employer_id"]
    response = await client.put(f"/v1/employers/{eid}/declared-workers", json=body,
                                headers=auth)
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}
    assert await counts(conn) == (1, 0, 1)
    assert (await client.get(f"/v1/employers/{eid}", headers=auth)).json()[
        "declared_workers"] == [DINAS["declared_workers"]]


async def test_employers_are_listed_by_any_region_level_and_kind_a_page_at_a_time(service, auth):
    client, _, _ = service
    village = await new_employer(client, auth, "village_gov", "12.75.01.1001")
    district = await new_employer(client, auth, "private", "12.75.01")
    city = await new_employer(client, auth, "opd", "12.75")
    medan = await new_employer(client, auth, "private", "12.71")
    province = await new_employer(client, auth, "bumd", "12")

    async def ids(**query) -> set[str]:
        response = await client.get("/v1/employers", params=query, headers=auth)
        assert response.status_code == 200, response.text
        return {e["employer_id"] for e in response.json()["items"]}

    assert await ids() == {village, district, city, medan, province}
    assert await ids(region="12") == {village, district, city, medan, province}
    assert await ids(region="12.75") == {village, district, city}
    assert await ids(region="12.75.01") == {village, district}
    assert await ids(region="12.75.01.1001") == {village}
    assert await ids(region="12.75", kind="private") == {district}
    assert await ids(kind="private") == {district, medan}
    # A page at a time, by cursor, every employer once.
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/employers", params=params, headers=auth)).json()
        assert len(page["items"]) <= 2
        seen += [e["employer_id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted({village, district, city, medan, province})


@pytest.mark.parametrize("query, field", [
    ({"region": "12.7"}, "region"), ({"region": "99"}, "region"), ({"kind": "ngo"}, "kind"),
    ({"limit": "0"}, "limit"), ({"limit": "abc"}, "limit"), ({"cursor": "abc"}, "cursor"),
])
async def test_a_bad_employer_list_query_is_422(service, auth, query, field):
    client, _, _ = service
    response = await client.get("/v1/employers", params=query, headers=auth)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_employers_need_the_employers_scopes(service, auth):
    client, conn, _ = service
    assert (await client.post("/v1/employers", json=DINAS)).status_code == 401
    registrar = await partner(client, auth, "participants:write", "participants:read")
    assert (await client.post("/v1/employers", json=DINAS,
                              headers=registrar)).status_code == 403
    assert (await client.get("/v1/employers", headers=registrar)).status_code == 403
    reader = await partner(client, auth, "employers:read")
    assert (await client.post("/v1/employers", json=DINAS, headers=reader)).status_code == 403
    writer = await partner(client, auth, "employers:write")
    created = await client.post("/v1/employers", json=DINAS, headers=writer)
    assert created.status_code == 201
    eid = created.json()["employer_id"]
    assert (await client.get(f"/v1/employers/{eid}", headers=reader)).status_code == 200
    assert (await client.put(f"/v1/employers/{eid}/declared-workers",
                             json={"year": 2025, "count": 1},
                             headers=reader)).status_code == 403
    assert await counts(conn) == (1, 0, 1)


async def test_the_relay_publishes_employer_events_on_the_organisations_topic(service, auth,
                                                                             infra):
    client, conn, settings = service
    eid = (await client.post("/v1/employers", json=DINAS, headers=auth)).json()["employer_id"]
    await client.put(f"/v1/employers/{eid}/declared-workers", json={"year": 2026, "count": 330},
                     headers=auth)
    events = await relayed_events(infra, settings, ORGANISATIONS, expect=2,
                                  client_id="test-relay-employers")
    assert [(e.envelope.type, e.envelope.sequence) for e in events] == [
        ("employer.registered", 1), ("employer.changed", 2)]
    assert {e.envelope.subject for e in events} == {eid}
    assert await conn.fetchval("SELECT count(*) FROM outbox") == 0


# --- workers naming employers -------------------------------------------------------------------


async def test_a_wage_earner_of_a_city_agency_registers_naming_it(service, auth):
    client, conn, _ = service
    agency = await new_employer(client, auth, "opd")
    response = await client.post("/v1/participants", json=wage_earner(1, agency.upper()),
                                 headers=auth)
    assert response.status_code == 201, response.text
    pid = response.json()["participant_id"]
    assert (await client.get(f"/v1/participants/{pid}", headers=auth)).json()[
        "employer_id"] == agency  # one spelling
    _, _, event = (await outbox(conn))[-1]
    assert event["data"]["employer_id"] == agency


@pytest.mark.parametrize("segment, kind", [("JAKON", "opd"), ("JAKON", "village_gov"),
                                           ("PMI", "bumn"), ("PMI", "opd")])
async def test_a_worker_naming_the_wrong_kind_of_employer_is_422(service, auth, segment, kind):
    client, conn, _ = service
    employer = await new_employer(client, auth, kind)
    body = wage_earner(1, employer, segment,
                       programs=["JKK", "JKM"])
    response = await client.post("/v1/participants", json=body, headers=auth)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["employer_id"]
    assert await counts(conn) == (1, 0, 1)


@pytest.mark.parametrize("employer_id", ["EMP-1", "0b8f5c1e-2f4d-4a7b-9c1e-5d6f7a8b9c01"])
async def test_a_worker_naming_an_unknown_employer_is_422_and_writes_nothing(service, auth,
                                                                              employer_id):
    client, conn, _ = service
    for headers in (auth, {**auth, "Idempotency-Key": f"ghost-{employer_id}"}):
        response = await client.post("/v1/participants", json=wage_earner(1, employer_id),
                                     headers=headers)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["employer_id"]
    assert await counts(conn) == (0, 0, 0)
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0


async def test_a_bulk_refuses_rows_naming_unknown_or_wrong_employers_on_their_own(service,
                                                                                   auth):
    client, conn, _ = service
    factory = await new_employer(client, auth, "private")
    agency = await new_employer(client, auth, "opd")
    rows = [wage_earner(1, factory), wage_earner(2, str(uuid.uuid4())),
            wage_earner(3, agency, "JAKON", programs=["JKK", "JKM"]), wage_earner(4, agency),
            worker(5), wage_earner(6, factory, "JAKON", programs=["JKK", "JKM"])]
    response = await client.post("/v1/participants/bulk", json={"participants": rows},
                                 headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["index"] for r in body["results"]] == [0, 3, 4, 5]
    assert [(r["index"], [e["field"] for e in r["errors"]]) for r in body["rejected"]] == [
        (1, ["employer_id"]), (2, ["employer_id"])]
    assert await counts(conn) == (2, 4, 6)


async def test_a_csv_bulk_checks_employers_and_channels(service, auth):
    client, conn, _ = service
    factory = await new_employer(client, auth, "private")
    header = ("nik,full_name,birth_date,sex,region_code,segment,employer_id,occupation,"
              "monthly_income,programs,channel,agent_id,office_village\n")
    base = "Siti Aminah,1990-08-05,F,12.75.01.1001"
    lines = [
        f"1275014508900001,{base},PU,{factory},operator,4000000,JKK JKM,employer,,\n",
        f"1275014508900002,{base},BPU,,pedagang,1000000,JKK JKM,agent,perisai-007,\n",
        f"1275014508900003,{base},BPU,,pedagang,1000000,JKK JKM,village_office,,12.75.01.1002\n",
        f"1275014508900004,{base},BPU,,pedagang,1000000,JKK JKM,,,\n",
        f"1275014508900005,{base},PU,{uuid.uuid4()},operator,4000000,JKK JKM,,,\n",
        f"1275014508900006,{base},BPU,,pedagang,1000000,JKK JKM,agent,,\n",
        f"1275014508900007,{base},BPU,,pedagang,1000000,JKK JKM,pemda,perisai-007,\n",
        f"1275014508900008,{base},BPU,,pedagang,1000000,JKK JKM,village_office,,12.75.01\n",
        f"1275014508900009,{base},BPU,,pedagang,1000000,JKK JKM,sms,,\n",
    ]
    response = await client.post("/v1/participants/bulk", content=header + "".join(lines),
                                 headers={**auth, "content-type": "text/csv"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3]
    assert [(r["index"], [e["field"] for e in r["errors"]]) for r in body["rejected"]] == [
        (4, ["employer_id"]), (5, ["agent_id"]), (6, ["agent_id"]), (7, ["office_village"]),
        (8, ["channel"])]
    stored = await conn.fetch("SELECT nik, channel, agent_id, office_village FROM participants"
                              " ORDER BY nik")
    assert [(r["channel"], r["agent_id"], r["office_village"]) for r in stored] == [
        ("employer", None, None), ("agent", "perisai-007", None),
        ("village_office", None, "12.75.01.1002"), ("partner_api", None, None)]


# --- channels -----------------------------------------------------------------------------------


async def test_the_channel_is_stored_returned_and_carried_in_the_events(service, auth):
    client, conn, _ = service
    agent = await client.post("/v1/participants", headers=auth, json=worker(
        1, channel="agent", agent_id="perisai-binjai.007"))
    office = await client.post("/v1/participants", headers=auth, json=worker(
        2, channel="village_office", office_village="12.75.01.1002"))
    plain = await client.post("/v1/participants", headers=auth, json=worker(3))
    assert {r.status_code for r in (agent, office, plain)} == {201}
    read = [(await client.get(f"/v1/participants/{r.json()['participant_id']}",
                              headers=auth)).json() for r in (agent, office, plain)]
    assert [(r["channel"], r["agent_id"], r["office_village"]) for r in read] == [
        ("agent", "perisai-binjai.007", None), ("village_office", None, "12.75.01.1002"),
        ("partner_api", None, None)]
    events = [e for _, _, e in await outbox(conn)]
    assert [(e["data"]["channel"], e["data"]["agent_id"], e["data"]["office_village"])
            for e in events] == [(r["channel"], r["agent_id"], r["office_village"]) for r in read]
    # A change keeps the channel, in the record and in participant.changed.
    pid = agent.json()["participant_id"]
    moved = await client.patch(f"/v1/participants/{pid}", json={"region_code": "12.71.01.1001"},
                               headers=auth)
    assert moved.status_code == 200 and moved.json()["channel"] == "agent"
    _, _, changed = (await outbox(conn))[-1]
    assert changed["type"] == "participant.changed"
    assert (changed["data"]["channel"], changed["data"]["agent_id"]) == (
        "agent", "perisai-binjai.007")


@pytest.mark.parametrize("changes, field", [
    ({"channel": "agent"}, "agent_id"),
    ({"channel": "agent", "agent_id": "-bad"}, "agent_id"),
    ({"agent_id": "perisai-007"}, "agent_id"),
    ({"channel": "village_office"}, "office_village"),
    ({"channel": "village_office", "office_village": "99.99.99.9999"}, "office_village"),
    ({"channel": "pemda", "office_village": "12.75.01.1001"}, "office_village"),
    ({"channel": "employer"}, "employer_id"),
    ({"channel": "telegram"}, "channel"),
])
async def test_a_registration_breaking_a_channel_rule_is_422_and_writes_nothing(
        service, auth, changes, field):
    client, conn, _ = service
    response = await client.post("/v1/participants", json=worker(**changes), headers=auth)
    assert response.status_code == 422, response.text
    assert field in {e["field"] for e in response.json()["errors"]}
    assert await counts(conn) == (0, 0, 0)


async def test_a_patch_cannot_change_the_channel_nor_name_an_unknown_employer(service, auth):
    client, conn, _ = service
    factory = await new_employer(client, auth, "private")
    pid = (await client.post("/v1/participants", json=wage_earner(1, factory),
                             headers=auth)).json()["participant_id"]
    for body, field in (({"channel": "pemda"}, "channel"), ({"agent_id": "a1"}, "agent_id"),
                        ({"employer_id": str(uuid.uuid4())}, "employer_id"),
                        ({"employer_id": "EMP-1"}, "employer_id")):
        response = await client.patch(f"/v1/participants/{pid}", json=body, headers=auth)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == [field]
    agency = await new_employer(client, auth, "opd")
    refused = await client.patch(f"/v1/participants/{pid}", headers=auth,
                                 json={"segment": "JAKON", "employer_id": agency,
                                       "programs": ["JKK", "JKM"]})
    assert refused.status_code == 422
    assert await counts(conn) == (2, 1, 3)
    moved = await client.patch(f"/v1/participants/{pid}", json={"employer_id": agency},
                               headers=auth)
    assert moved.status_code == 200 and moved.json()["employer_id"] == agency


# --- races --------------------------------------------------------------------------------------


async def test_one_npp_raced_by_twenty_registrations_registers_once(service, auth):
    client, conn, _ = service
    responses = await asyncio.gather(*[
        client.post("/v1/employers", json={**DINAS, "name": f"Dinas {n}"}, headers=auth)
        for n in range(20)])
    assert sorted(r.status_code for r in responses) == [201] + [409] * 19
    [created] = [r.json()["employer_id"] for r in responses if r.status_code == 201]
    assert {r.json()["employer_id"] for r in responses} == {created}
    assert await counts(conn) == (1, 0, 1)


async def test_declared_figures_raced_for_ten_years_each_get_their_own_version(service, auth):
    client, conn, _ = service
    eid = (await client.post("/v1/employers", json=DINAS, headers=auth)).json()["employer_id"]
    responses = await asyncio.gather(*[
        client.put(f"/v1/employers/{eid}/declared-workers", json={"year": 2010 + n, "count": n},
                   headers=auth) for n in range(10)])
    assert {r.status_code for r in responses} == {200}
    final = (await client.get(f"/v1/employers/{eid}", headers=auth)).json()
    assert [d["year"] for d in final["declared_workers"]] == [*range(2010, 2020), 2025]
    events = [e for _, _, e in await outbox(conn)]
    assert [e["sequence"] for e in events] == list(range(1, 12))
    assert events[-1]["data"]["declared_workers"] == final["declared_workers"]
