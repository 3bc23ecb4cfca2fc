"""End to end: workers registered over HTTP show in the live coverage counters at every
level, exactly once, also when the worker and the relay are killed mid-stream."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from shared.events import ParticipantChanged, ParticipantRegistered, envelope_bytes
from shared.topics import DEAD_LETTER, PARTICIPANTS, topic_name
from tests.e2e.conftest import AUTH, synthetic_worker, wait_for_worker
from tests.integration.conftest import read_topic

pytestmark = pytest.mark.e2e

BINJAI_VILLAGES = ["12.75.01.1001", "12.75.01.1002", "12.75.02.1001", "12.75.05.1003"]
MEDAN_VILLAGE = "12.71.01.1001"
LEVELS = ["12.75.01.1001", "12.75.01", "12.75", "12", "ID"]


def coverage(running, code: str) -> dict:
    response = httpx.get(f"{running.url('coverage')}/v1/coverage/regions/{code}", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def wait_until(check, timeout: float = 30.0, what: str = "counters"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last is True:
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached in {timeout}s; last: {last}")


def snapshot(running, codes) -> dict[str, dict]:
    return {code: coverage(running, code) for code in codes}


def test_a_registration_moves_the_counters_at_every_level(running_stack):
    before = snapshot(running_stack, LEVELS)
    rng = random.Random(1)
    response = httpx.post(f"{running_stack.url('registration')}/v1/participants",
                          json=synthetic_worker("12.75.01.1001", rng), headers=AUTH, timeout=10)
    assert response.status_code == 201, response.text

    def moved():
        now = snapshot(running_stack, LEVELS)
        done = all(now[c]["registered"] == before[c]["registered"] + 1 and
                   now[c]["inactive"] == before[c]["inactive"] + 1 and
                   now[c]["by_segment"]["BPU"]["registered"] ==
                   before[c]["by_segment"]["BPU"]["registered"] + 1 for c in LEVELS)
        return True if done else {c: now[c]["registered"] for c in LEVELS}

    wait_until(moved, 10)
    region = coverage(running_stack, "12.75")["region"]
    assert region == {"code": "12.75", "name": "Kota Binjai", "level": "regency"}


def test_a_move_to_medan_leaves_binjai_and_counts_in_medan(running_stack):
    rng = random.Random(2)
    registration = running_stack.url("registration")
    pid = httpx.post(f"{registration}/v1/participants",
                     json=synthetic_worker("12.75.02.1001", rng), headers=AUTH,
                     timeout=10).json()["participant_id"]
    wait_until(lambda: coverage(running_stack, "12.75.02.1001")["registered"] >= 1 or None, 10)
    before = snapshot(running_stack, ["12.75", "12.71", "12"])
    moved = httpx.patch(f"{registration}/v1/participants/{pid}",
                        json={"region_code": MEDAN_VILLAGE}, headers=AUTH, timeout=10)
    assert moved.status_code == 200, moved.text

    def followed():
        now = snapshot(running_stack, ["12.75", "12.71", "12"])
        ok = (now["12.75"]["registered"] == before["12.75"]["registered"] - 1 and
              now["12.71"]["registered"] == before["12.71"]["registered"] + 1 and
              now["12"]["registered"] == before["12"]["registered"])
        return True if ok else {c: now[c]["registered"] for c in now}

    wait_until(followed, 10)


def test_workforce_figures_give_ucj(running_stack):
    url = f"{running_stack.url('coverage')}/v1/workforce/12.75"
    body = {"workforce": 132826, "year": 2024, "source": "BPJS Ketenagakerjaan Cabang Binjai"}
    assert httpx.put(url, json=body, timeout=5).status_code == 401
    response = httpx.put(url, json=body, headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    binjai = coverage(running_stack, "12.75")
    assert binjai["workforce"] == 132826
    assert binjai["ucj"] == pytest.approx(binjai["active"] / 132826, abs=1e-6)
    bad = httpx.put(url, json={**body, "workforce": -1}, headers=AUTH, timeout=5)
    assert bad.status_code == 422


async def _register_in_bulk(registration: str, rows: list[dict], chunk: int) -> int:
    accepted = 0
    async with httpx.AsyncClient(timeout=60) as client:
        for start in range(0, len(rows), chunk):
            response = await client.post(f"{registration}/v1/participants/bulk",
                                         json={"participants": rows[start:start + chunk]},
                                         headers=AUTH)
            assert response.status_code == 200, response.text
            accepted += response.json()["accepted"]
            await asyncio.sleep(0.05)
    return accepted


def test_killing_the_worker_and_the_relay_mid_stream_loses_and_doubles_nothing(running_stack):
    rng = random.Random(3)
    rows = [synthetic_worker(rng.choice(BINJAI_VILLAGES), rng) for _ in range(3000)]
    before = snapshot(running_stack, ["12.75", "ID"])

    async def scenario() -> int:
        load = asyncio.create_task(
            _register_in_bulk(running_stack.url("registration"), rows, chunk=100))
        await asyncio.sleep(1.0)
        running_stack.processes["coverage-worker"].kill9()
        running_stack.processes["registration-relay"].kill9()
        await asyncio.sleep(1.0)
        await asyncio.to_thread(running_stack.restart, "registration-relay", "coverage-worker")
        await asyncio.sleep(1.5)
        running_stack.processes["coverage-worker"].kill9()  # once more, after a recovery
        await asyncio.to_thread(running_stack.restart, "coverage-worker")
        return await load

    accepted = asyncio.run(scenario())
    assert accepted == len(rows)
    wait_for_worker(running_stack)

    def exact():
        now = snapshot(running_stack, ["12.75", "ID"])
        ok = all(now[c]["registered"] == before[c]["registered"] + accepted for c in now)
        return True if ok else {c: now[c]["registered"] - before[c]["registered"] for c in now}

    wait_until(exact, 60, "exact counters after kill -9")
    time.sleep(3)  # and they stay exact: nothing arrives twice later
    assert all(coverage(running_stack, c)["registered"] == before[c]["registered"] + accepted
               for c in ["12.75", "ID"])


def participant_consumers(running) -> set[str]:
    """The consumer groups that read the participants topic."""
    return {f"{running.infra.prefix}ucj-coverage", f"{running.infra.prefix}ucj-contributions"}


def dead_letters(running, key: bytes, timeout: float = 15.0) -> dict[str, dict]:
    """The dead letters sent under `key`, per consumer, once every participant consumer has
    sent one (or the timeout passed)."""
    deadline = time.monotonic() + timeout
    while True:
        dead = asyncio.run(read_topic(running.infra.bootstrap,
                                      topic_name(DEAD_LETTER, running.infra.prefix),
                                      expect=1, wait_s=2, partitions=DEAD_LETTER.partitions))
        letters = {orjson.loads(m.value)["consumer"]: orjson.loads(m.value) for m in dead
                   if m.key == key}
        if set(letters) >= participant_consumers(running) or time.monotonic() > deadline:
            return letters
        time.sleep(0.2)


def test_a_malformed_event_goes_to_the_dead_letter_topic_and_the_worker_keeps_going(
        running_stack):

    async def send_garbage() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=running_stack.infra.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic_name(PARTICIPANTS, running_stack.infra.prefix),
                                         b"{not json", key=b"garbage")
        finally:
            await producer.stop()

    asyncio.run(send_garbage())
    before = coverage(running_stack, "12.75")["registered"]
    response = httpx.post(f"{running_stack.url('registration')}/v1/participants",
                          json=synthetic_worker("12.75.01.1001", random.Random(4)),
                          headers=AUTH, timeout=10)
    assert response.status_code == 201
    wait_until(lambda: coverage(running_stack, "12.75")["registered"] == before + 1 or None, 10)
    # Every consumer of the topic reports it: the coverage worker and contributions.
    letters = dead_letters(running_stack, b"garbage")
    assert set(letters) == participant_consumers(running_stack)
    for letter in letters.values():
        assert "malformed" in letter["reason"] and "value" not in letter
        assert letter["sha256"] == hashlib.sha256(b"{not json").hexdigest()


def test_a_malformed_event_inside_a_batch_is_a_dead_letter_alone_and_the_rest_counts(
        running_stack):
    pid = str(uuid.uuid4())
    data = {"participant_id": pid, "kpj": "99000000001", "region_code": "12.75.01.1002",
            "segment": "BPU", "employer_id": None, "monthly_income": 1_000_000,
            "programs": ["JKK", "JKM"], "registered_on": "2026-11-20"}
    registered = envelope_bytes(ParticipantRegistered, data, source="registration",
                                subject=pid, sequence=1)
    moved = envelope_bytes(ParticipantChanged, {**data, "region_code": "12.75.02.1001",
                                                "changed": ["region_code"]},
                           source="registration", subject=pid, sequence=2)
    broken = b'{"type":"participant.registered","broken":true}'
    # As the relay sends it: one message, in the partition the participant's key hashes to.
    partition = DefaultPartitioner()(pid.encode(), list(range(12)), list(range(12)))
    before = snapshot(running_stack, ["12.75.01", "12.75.02"])

    async def send_batch() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=running_stack.infra.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(topic_name(PARTICIPANTS, running_stack.infra.prefix),
                                         b"[" + b",".join((registered, broken, moved)) + b"]",
                                         key=b"batch-garbage", partition=partition)
        finally:
            await producer.stop()

    asyncio.run(send_batch())

    def counted():
        now = snapshot(running_stack, ["12.75.01", "12.75.02"])
        moved_in = now["12.75.02"]["registered"] - before["12.75.02"]["registered"]
        left = now["12.75.01"]["registered"] - before["12.75.01"]["registered"]
        return True if (moved_in, left) == (1, 0) else (moved_in, left)

    wait_until(counted, 15, "both good events of the batch counted, in order")
    letters = dead_letters(running_stack, b"batch-garbage")
    assert set(letters) == participant_consumers(running_stack)
    for letter in letters.values():
        # No copy of the bytes (they may hold personal data): their hash and size only.
        assert "value" not in letter and letter["size"] == len(orjson.dumps(
            {"type": "participant.registered", "broken": True}))


def test_a_restarted_coverage_api_shows_the_same_counters(running_stack):
    before = snapshot(running_stack, ["12.75", "12", "ID"])
    running_stack.processes["coverage"].kill9()
    running_stack.restart("coverage")
    after = snapshot(running_stack, ["12.75", "12", "ID"])
    for code in before:
        for counter in ("registered", "active", "inactive", "terminated"):
            assert after[code][counter] == before[code][counter], (code, counter)
