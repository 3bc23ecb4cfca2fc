"""End to end: after registrations and a round of refused requests (bad input, unknown ids, a
NIK registered twice, missing keys), no log file of any process and no message of any topic
holds a NIK, a full name or a birth date that went in."""

from __future__ import annotations

import asyncio
import random
import time

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.e2e.conftest import AUTH, synthetic_worker
from tests.e2e.test_live_coverage import coverage, wait_until

pytestmark = pytest.mark.e2e

VILLAGE = "12.71.01.1001"  # Medan
# One per worker; their family names are made up, so no process could write them by chance.
NAMES = ["Ratna Pindaiwati", "Sutrisno Jejakdatanto", "Wulan Rahasiawati"]


def workers() -> list[dict]:
    rng = random.Random(8_2026)
    return [{**synthetic_worker(VILLAGE, rng), "full_name": name} for name in NAMES]


def personal_data(rows: list[dict]) -> list[str]:
    """What must appear nowhere: each NIK, full name, family name and birth date used."""
    found = set()
    for row in rows:
        found |= {row["nik"], row["full_name"], row["full_name"].split()[-1], row["birth_date"]}
    return sorted(found)


def exercise_the_error_paths(running, registered: list[dict], pids: list[str]) -> None:
    registration, contributions = running.url("registration"), running.url("contributions")
    first = registered[0]
    with httpx.Client(timeout=10) as client:
        def post(url: str, **kwargs) -> httpx.Response:
            return client.post(url, **{"headers": AUTH, **kwargs})

        # the same NIK again: 409 naming the existing record
        again = post(f"{registration}/v1/participants", json=first)
        assert again.status_code == 409, again.text
        assert again.json()["participant_id"] == pids[0]
        # bad input carrying personal data: a NIK that does not match the birth date, a
        # malformed body, a wrong content type, a body too large
        wrong_birth = {**registered[1], "birth_date": "1960-01-01"}
        assert post(f"{registration}/v1/participants", json=wrong_birth).status_code == 422
        malformed = f'{{"nik": "{first["nik"]}", "full_name": "{first["full_name"]}"'
        assert post(f"{registration}/v1/participants", content=malformed,
                    headers={**AUTH, "Content-Type": "application/json"}).status_code == 400
        assert post(f"{registration}/v1/participants", content=malformed,
                    headers={**AUTH, "Content-Type": "text/plain"}).status_code == 415
        huge = {**first, "occupation": first["full_name"] * 10_000}
        assert post(f"{registration}/v1/participants", json=huge).status_code == 413
        bulk = post(f"{registration}/v1/participants/bulk",
                    json={"participants": [first, wrong_birth, {"nik": first["nik"]}]})
        assert bulk.status_code == 200 and bulk.json()["accepted"] == 0, bulk.text
        # without a key, with an unknown one, with a request id that is a NIK
        assert client.post(f"{registration}/v1/participants", json=first).status_code == 401
        assert post(f"{registration}/v1/participants", json=first,
                    headers={"Authorization": f"Bearer {first['nik']}"}).status_code == 401
        renamed = post(f"{registration}/v1/participants", json=first,
                       headers={**AUTH, "X-Request-ID": first["nik"]})
        assert renamed.status_code == 409
        assert renamed.headers["x-request-id"] != first["nik"]
        # a NIK where an id goes, or where no route is
        assert client.get(f"{registration}/v1/participants/{first['nik']}",
                          headers=AUTH).status_code == 404
        assert client.patch(f"{registration}/v1/participants/{first['nik']}",
                            json={"region_code": VILLAGE}, headers=AUTH).status_code == 404
        for nik in (first["nik"], wrong_birth["nik"][:-4] + "0000"):  # known, unknown
            assert post(f"{registration}/v1/participants/lookup",
                        json={"nik": nik}).status_code < 500
        assert client.get(f"{registration}/v1/{first['full_name']}").status_code == 404
        moved = client.patch(f"{registration}/v1/participants/{pids[1]}",
                             json={"region_code": "99.99.99.9999", "full_name": NAMES[0]},
                             headers=AUTH)
        assert 400 <= moved.status_code < 500, moved.text
        # contributions: unknown ids, a payment that does not add up
        assert client.get(f"{contributions}/v1/dues/{first['nik']}",
                          headers=AUTH).status_code == 404
        wrong = post(f"{contributions}/v1/contributions", json={
            "payment_ref": f"VA-{first['nik']}", "participant_id": pids[0],
            "first_period": "2026-11", "months": 1, "amount": 1, "payer": "self"})
        assert 400 <= wrong.status_code < 500, wrong.text
        # coverage: a NIK as a region code
        assert client.get(f"{running.url('coverage')}/v1/coverage/regions/{first['nik']}"
                          ).status_code == 404
        assert client.put(f"{running.url('coverage')}/v1/workforce/{first['nik']}",
                          json={"workforce": 1, "year": 2024, "source": first["full_name"]},
                          headers=AUTH).status_code == 404


async def every_message(bootstrap: str, prefix: str) -> dict[str, list[bytes]]:
    """Every message (key, value and headers, as bytes) of every topic of the stack's prefix,
    from the beginning to the end offsets of now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        partitions = [TopicPartition(d["topic"], p["partition"])
                      for d in await admin.describe_topics(topics) for p in d["partitions"]]
    finally:
        await admin.close()
    assert partitions, f"no topics under {prefix!r}"
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: dict[str, list[bytes]] = {t: [] for t in topics}
        deadline = time.monotonic() + 60
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "the topics could not be read in 60 s"
            batch = await consumer.getmany(timeout_ms=500)
            for tp, messages in batch.items():
                for m in messages:
                    found[tp.topic].append(b"\0".join(
                        [m.key or b"", m.value or b"",
                         *(name.encode() + b"=" + value for name, value in m.headers or ())]))
        return found
    finally:
        await consumer.stop()


def test_no_log_line_and_no_event_holds_a_nik_a_name_or_a_birth_date(running_stack):
    rows = workers()
    registration = running_stack.url("registration")
    pids = []
    before = coverage(running_stack, VILLAGE)["registered"]
    for row in rows:
        response = httpx.post(f"{registration}/v1/participants", json=row, headers=AUTH,
                              timeout=10)
        assert response.status_code == 201, response.text
        pids.append(response.json()["participant_id"])
    wait_until(lambda: coverage(running_stack, VILLAGE)["registered"] == before + len(rows)
               or None, 30, "the registrations counted")
    exercise_the_error_paths(running_stack, rows, pids)
    time.sleep(2)  # what the requests made the processes log and publish, written out

    secrets = personal_data(rows)
    logs = sorted(p for p in (running_stack.run_dir / "logs").rglob("*") if p.is_file())
    assert logs, "no log files to scan"
    for path in logs:
        text = path.read_bytes().decode("utf-8", "replace")
        for secret in secrets:
            assert secret not in text, f"{path.name} holds {secret!r}"

    messages = asyncio.run(every_message(running_stack.infra.bootstrap,
                                         running_stack.infra.prefix))
    everything = b"\n".join(b"\n".join(m) for m in messages.values())
    assert all(pid.encode() in everything for pid in pids), "the scan reads the events"
    for topic, found in messages.items():
        for message in found:
            for secret in secrets:
                assert secret.encode() not in message, f"{topic} holds {secret!r}"
