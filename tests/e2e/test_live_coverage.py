"""End to end: workers registered over HTTP show in the live coverage counters at every
level, exactly once, also when the worker and the relay are killed mid-stream."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from shared.clock import WIB
from shared.events import ParticipantChanged, ParticipantRegistered, envelope_bytes
from shared.topics import DEAD_LETTER, PARTICIPANTS, topic_name
from tests.e2e.conftest import AUTH, synthetic_worker, wait_for_worker
from tests.integration.conftest import read_topic, registered_rows

pytestmark = pytest.mark.e2e

BINJAI_VILLAGES = ["12.75.01.1001", "12.75.01.1002", "12.75.02.1001", "12.75.05.1003"]
MEDAN_VILLAGE = "12.71.01.1001"
LEVELS = ["12.75.01.1001", "12.75.01", "12.75", "12", "ID"]
# Kota Padangsidimpuan: no other test of this module registers there.
PADANGSIDIMPUAN_VILLAGES = ["12.77.01.1001", "12.77.01.1002", "12.77.02.1001"]
# Every process's calendar for this module: November is due on the 15th, so paying the month
# owed makes a worker active (as in test_contributions_flow).
TODAY = datetime(2026, 11, 20, 9, 0, tzinfo=WIB)


@pytest.fixture(scope="module", autouse=True)
def fixed_calendar(running_stack):
    running_stack.set_clock(TODAY)


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


def register(running, rows: list[dict]) -> list[str]:
    response = httpx.post(f"{running.url('registration')}/v1/participants/bulk",
                          json={"participants": rows}, headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(rows), response.json()["rejected"][:3]
    return [r["participant_id"] for r in response.json()["results"]]


def pay(running, pids: list[str], ref: str) -> None:
    """Pay the month each worker owes (once contributions has learnt of them): each becomes
    active."""
    url = running.url("contributions")
    with httpx.Client(timeout=5, headers=AUTH) as client:
        for n, pid in enumerate(pids):
            wait_until(lambda p=pid: client.get(f"{url}/v1/memberships/{p}").status_code
                       == 200 or None, 30, f"participant {pid} known to contributions")
            owed = client.get(f"{url}/v1/dues/{pid}?months=1")
            assert owed.status_code == 200, owed.text
            response = client.post(f"{url}/v1/contributions", json={
                "payment_ref": f"{ref}-{n}", "participant_id": pid,
                "first_period": owed.json()["first_period"], "months": 1,
                "amount": owed.json()["amount"], "payer": "self"})
            assert response.status_code == 201, response.text
            assert response.json()["membership_status"] == "active", response.text


def test_workforce_figures_give_ucj(running_stack):
    # UCJ is active over workforce: with nobody active it is 0 whatever the code computes, so
    # some Binjai workers are paid for first (and some left unpaid: registered is not active).
    before = coverage(running_stack, "12.75")
    rng = random.Random(5)
    pids = register(running_stack, [synthetic_worker(village, rng)
                                    for village in BINJAI_VILLAGES * 3])
    pay(running_stack, pids[:7], "VA-UCJ")

    def counted():
        now = coverage(running_stack, "12.75")
        ok = (now["active"] == before["active"] + 7 and
              now["registered"] == before["registered"] + len(pids))
        return True if ok else {k: now[k] - before[k] for k in ("registered", "active")}

    wait_until(counted, 20, "7 more active in Binjai")
    url = f"{running_stack.url('coverage')}/v1/workforce/12.75"
    body = {"workforce": 132826, "year": 2024, "source": "BPJS Ketenagakerjaan Cabang Binjai"}
    assert httpx.put(url, json=body, timeout=5).status_code == 401
    response = httpx.put(url, json=body, headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    binjai = coverage(running_stack, "12.75")
    assert binjai["workforce"] == 132826
    active = binjai["active"]
    assert active == before["active"] + 7 and 0 < active < binjai["registered"]
    assert binjai["ucj"] > 0
    assert binjai["ucj"] == pytest.approx(active / 132826, abs=1e-6)
    # Not registered over workforce, nor any other count of the region.
    assert binjai["ucj"] != pytest.approx(binjai["registered"] / 132826, abs=1e-6)
    target = coverage_with_target(running_stack, "12.75", 0.3248)
    assert target["gap_to_target"] == 43142 - active  # ceil(0.3248 * 132826) = 43142
    bad = httpx.put(url, json={**body, "workforce": -1}, headers=AUTH, timeout=5)
    assert bad.status_code == 422


def coverage_with_target(running, code: str, target: float) -> dict:
    response = httpx.get(f"{running.url('coverage')}/v1/coverage/regions/{code}",
                         params={"target": target}, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


@dataclass(frozen=True)
class AtKill:
    """What the sources held just after a kill -9: new participants written in the registration
    database, rows its outbox still held, new registrations the coverage counters showed."""

    what: str
    written: int
    outbox: int
    counted: int


async def _register_until(registration: str, rng: random.Random, enough: asyncio.Event,
                          chunk: int = 50, most: int = 20_000) -> int:
    """Register Binjai workers in bulk, chunk after chunk, until `enough` is set (at most
    `most`): the load goes on whatever is killed meanwhile. Gives the number accepted."""
    accepted = 0
    async with httpx.AsyncClient(timeout=60) as client:
        while not enough.is_set():
            assert accepted < most, f"the load wrote {accepted} rows before the kills were done"
            rows = [synthetic_worker(rng.choice(BINJAI_VILLAGES), rng) for _ in range(chunk)]
            response = await client.post(f"{registration}/v1/participants/bulk",
                                         json={"participants": rows}, headers=AUTH)
            assert response.status_code == 200, response.text
            assert response.json()["accepted"] == chunk, response.json()["rejected"][:3]
            accepted += chunk
            await asyncio.sleep(0.1)
    return accepted


def test_killing_the_worker_and_the_relay_mid_stream_loses_and_doubles_nothing(running_stack):
    rng = random.Random(3)
    before = snapshot(running_stack, ["12.75", "ID"])
    registration_db = running_stack.infra.database_urls["ucj_registration"]

    async def scenario() -> tuple[int, list[AtKill], int]:
        conn = await asyncpg.connect(registration_db)
        try:
            base, _ = await registered_rows(conn)
            enough = asyncio.Event()
            load = asyncio.create_task(
                _register_until(running_stack.url("registration"), rng, enough))

            async def now(what: str) -> AtKill:
                written, outbox = await registered_rows(conn)
                counted = (await asyncio.to_thread(coverage, running_stack, "12.75"))[
                    "registered"] - before["12.75"]["registered"]
                return AtKill(what, written - base, outbox, counted)

            async def until(check, what: str, seconds: float = 60.0) -> AtKill:
                deadline = asyncio.get_running_loop().time() + seconds
                while True:
                    assert not load.done(), f"the load ended before {what}: {load}"
                    found = await now(what)
                    if check(found):
                        return found
                    assert asyncio.get_running_loop().time() < deadline, (what, found)
                    await asyncio.sleep(0.05)

            kills: list[AtKill] = []
            # Once rows are written, published and counted (and the load goes on).
            first = await until(lambda n: n.written >= 300 and n.counted > 0, "the first kill")
            running_stack.processes["coverage-worker"].kill9()
            running_stack.processes["registration-relay"].kill9()
            kills.append(await now("worker and relay killed"))
            # With the relay dead the rows wait in the outbox while the load goes on.
            backlog = await until(lambda n: n.outbox >= kills[0].outbox + 200 and
                                  n.written >= kills[0].written + 200, "a backlog")
            await asyncio.to_thread(running_stack.restart, "registration-relay",
                                    "coverage-worker")
            # Once more, after a recovery: the worker back with its share of the partitions
            # and the relay publishing again (the backlog drains).
            await asyncio.to_thread(wait_for_worker, running_stack)
            await until(lambda n: n.outbox < backlog.outbox and n.counted > kills[0].counted,
                        "a recovery")
            running_stack.processes["coverage-worker"].kill9()
            kills.append(await now("worker killed again"))
            await until(lambda n: n.written >= kills[1].written + 200, "writes after it")
            await asyncio.to_thread(running_stack.restart, "coverage-worker")
            await until(lambda n: n.written >= kills[1].written + 400, "writes after a restart")
            enough.set()
            accepted = await load
            written, _ = await registered_rows(conn)
            assert first.counted > 0
            return accepted, kills, written - base
        finally:
            await conn.close()

    accepted, kills, written = asyncio.run(scenario())
    assert written == accepted
    # Each kill landed mid-load: rows written before it and after it, some of them published
    # and counted before it, and not all.
    for kill in kills:
        assert 0 < kill.written < accepted, kill
        assert 0 < kill.written - kill.outbox < accepted, kill  # the relay had published some
        assert 0 < kill.counted < accepted, kill
    assert kills[0].written < kills[1].written
    wait_for_worker(running_stack)

    def exact():
        now = snapshot(running_stack, ["12.75", "ID"])
        ok = all(now[c]["registered"] == before[c]["registered"] + accepted for c in now)
        return True if ok else {c: now[c]["registered"] - before[c]["registered"] for c in now}

    wait_until(exact, 60, "exact counters after kill -9")
    time.sleep(3)  # and they stay exact: nothing arrives twice later
    assert all(coverage(running_stack, c)["registered"] == before[c]["registered"] + accepted
               for c in ["12.75", "ID"])
    print(f"\n{accepted} registered; at each kill: {kills}")


def participant_consumers(running) -> set[str]:
    """The consumer groups that read the participants topic."""
    return {f"{running.infra.prefix}{group}"
            for group in ("ucj-coverage", "ucj-contributions", "ucj-claims")}


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


async def registered_in(running, region: str) -> int:
    """Live participants the registration database holds in a region."""
    conn = await asyncpg.connect(running.infra.database_urls["ucj_registration"])
    try:
        return await conn.fetchval("SELECT count(*) FROM participants WHERE region_code LIKE $1"
                                   " AND status <> 'terminated'", f"{region}.%")
    finally:
        await conn.close()


def test_a_restarted_coverage_api_shows_the_same_counters(running_stack):
    # Counters that are not zero, and are what was registered and paid: 0 == 0 after a restart
    # would pass whatever the restarted API served.
    rng = random.Random(6)
    pids = register(running_stack, [synthetic_worker(village, rng)
                                    for village in PADANGSIDIMPUAN_VILLAGES * 3])
    pay(running_stack, pids[:4], "VA-RESTART")
    expected = {"registered": 9, "active": 4, "inactive": 5, "terminated": 0}

    def counted():
        now = coverage(running_stack, "12.77")
        found = {k: now[k] for k in expected}
        return True if found == expected else found

    wait_until(counted, 20, "Padangsidimpuan's counters")
    assert asyncio.run(registered_in(running_stack, "12.77")) == expected["registered"]
    codes = ["12.77.01", "12.77", "12", "ID"]
    before = snapshot(running_stack, codes)
    for code in codes:
        for counter in ("registered", "active", "inactive"):
            assert before[code][counter] > 0, (code, counter, before[code])
    running_stack.processes["coverage"].kill9()
    running_stack.restart("coverage")
    after = snapshot(running_stack, codes)
    assert {k: after["12.77"][k] for k in expected} == expected
    for code in codes:
        for counter in ("registered", "active", "inactive", "terminated", "by_segment"):
            assert after[code][counter] == before[code][counter], (code, counter)
