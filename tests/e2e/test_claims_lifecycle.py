"""End to end across the four services, as processes on the real broker and database:
register → pay → a JKM (death) claim → approve → the coverage counters show the worker
terminated at village, district, regency, province and national level, once; contributions
refuses their dues; the same NIK may register again; and replaying the decision's events to
the broker changes nothing."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.clock import WIB
from shared.events import events_in
from shared.topics import CLAIMS, MEMBERSHIPS, PARTICIPANTS, topic_name
from tests.e2e.conftest import AUTH, synthetic_worker
from tests.e2e.test_contributions_flow import line, register, wait_known
from tests.e2e.test_live_coverage import coverage, wait_until
from tests.integration.conftest import read_topic

pytestmark = pytest.mark.e2e

# Kota Sibolga: no other test of this stack counts here.
VILLAGE = "12.73.01.1001"
LEVELS = ("12.73.01.1001", "12.73.01", "12.73", "12", "ID")


def counters(running) -> dict[str, tuple[int, int, int]]:
    """(registered, active, terminated) at every level above the village."""
    out = {}
    for code in LEVELS:
        c = coverage(running, code)
        out[code] = (c["registered"], c["active"], c["terminated"])
    return out


def moved(before: dict, after: dict) -> dict[str, tuple[int, int, int]]:
    return {code: tuple(a - b for a, b in zip(after[code], before[code], strict=True))
            for code in LEVELS}


async def claims_know_payment(running, pid: str, seconds: float = 30.0) -> None:
    """Until the claims worker has learnt the worker's payment (white box: its database)."""
    conn = await asyncpg.connect(running.infra.database_urls["ucj_claims"])
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while not await conn.fetchval(
                "SELECT 1 FROM member_payments WHERE participant_id = $1", pid):
            assert asyncio.get_running_loop().time() < deadline, "claims never learnt it"
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def coverage_caught_up(running, specs: tuple = (PARTICIPANTS, MEMBERSHIPS, CLAIMS),
                             seconds: float = 30.0) -> None:
    """Until the coverage workers have folded everything the topics they count from hold so
    far: their
    tracking records (source_offsets, in the coverage database, written in the transaction of
    each fold) reach the end of every partition."""
    prefix = running.infra.prefix
    topics = [topic_name(spec, prefix) for spec in specs]
    consumer = AIOKafkaConsumer(bootstrap_servers=running.infra.bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(t, p) for t in topics
                                           for p in range(12)])
    finally:
        await consumer.stop()
    conn = await asyncpg.connect(running.infra.database_urls["ucj_coverage"])
    try:
        deadline = asyncio.get_running_loop().time() + seconds
        while True:
            folded = {(r["topic"], r["partition"]): r["next_offset"] for r in await conn.fetch(
                "SELECT topic, partition, next_offset FROM source_offsets")}
            behind = [tp for tp, end in ends.items()
                      if end and folded.get((tp.topic, tp.partition), 0) < end]
            if not behind:
                return
            assert asyncio.get_running_loop().time() < deadline, f"coverage behind: {behind}"
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def claim_counters(running) -> dict[str, int]:
    """The village's claim counters as the coverage workers keep them (summed over partitions),
    once they have folded every claim event published so far."""
    await coverage_caught_up(running, (CLAIMS,))
    conn = await asyncpg.connect(running.infra.database_urls["ucj_coverage"])
    try:
        return {r["name"]: r["value"] for r in await conn.fetch(
            "SELECT name, sum(value)::bigint AS value FROM village_counters"
            " WHERE village = $1 AND name LIKE 'claims.%' GROUP BY name HAVING sum(value) <> 0",
            VILLAGE)}
    finally:
        await conn.close()


async def replay(running, event_types: tuple[str, ...], pid: str) -> set[str]:
    """Publish again, as they were, the messages holding the claims service's events of
    `event_types` for the worker (read back from the topics: the outbox rows are gone once
    published; a message may be a batch, keyed or not); the event types replayed."""
    producer = AIOKafkaProducer(bootstrap_servers=running.infra.bootstrap)
    await producer.start()
    try:
        replayed: set[str] = set()
        for spec in (CLAIMS, MEMBERSHIPS):
            topic = topic_name(spec, running.infra.prefix)
            for m in await read_topic(running.infra.bootstrap, topic, expect=1, wait_s=3):
                for raw in events_in(m.value):
                    event = orjson.loads(raw)
                    if event["type"] in event_types and event["source"] == "claims" \
                            and event["data"]["participant_id"] == pid:
                        await producer.send_and_wait(topic, m.value, key=m.key,
                                                     partition=m.partition)
                        replayed.add(event["type"])
        return replayed
    finally:
        await producer.stop()


def test_a_death_claim_moves_the_worker_to_terminated_everywhere_once(running_stack):
    running = running_stack
    running.set_clock(datetime(2026, 11, 20, 9, 0, tzinfo=WIB))
    rng = random.Random(73)
    rows = [synthetic_worker(VILLAGE, rng) for _ in range(3)]
    pids = register(running, rows)
    wait_known(running, pids)
    with httpx.Client(timeout=10) as client:
        for n, pid in enumerate(pids):
            paid = client.post(f"{running.url('contributions')}/v1/contributions",
                               json=line(running, pid, f"SIBOLGA-{n}"), headers=AUTH)
            assert paid.status_code == 201, paid.text
    wait_until(lambda: coverage(running, VILLAGE)["active"] == 3 or coverage(running, VILLAGE),
               30, "three active in the village")
    before = counters(running)
    dead = pids[0]
    asyncio.run(claims_know_payment(running, dead))

    with httpx.Client(timeout=10) as client:
        claims = running.url("claims")
        filed = client.post(f"{claims}/v1/claims", json={
            "claim_ref": "SIBOLGA-JKM-1", "participant_id": dead, "program": "JKM",
            "incident_date": "2026-11-20"}, headers=AUTH)
        assert filed.status_code == 201, filed.text
        claim = filed.json()
        assert claim["status"] == "submitted", claim
        assert claim["benefit"]["amount"] == 42_000_000
        decided = client.post(f"{claims}/v1/claims/{claim['claim_id']}/decision",
                              json={"decision": "approve"}, headers=AUTH)
        assert decided.status_code == 200 and decided.json()["status"] == "approved"

    def terminated_once():
        now = moved(before, counters(running))
        return all(now[code] == (-1, -1, 1) for code in LEVELS) or now

    wait_until(terminated_once, 30, "the worker terminated at every level")
    assert asyncio.run(claim_counters(running)) == {
        "claims.JKM.approved": 1, "claims.JKM.benefit_paid": 42_000_000}
    approved = {"submitted": 0, "approved": 1, "rejected": 0, "benefit_paid": 42_000_000}
    for code in LEVELS:  # operators see the claim at every level
        assert coverage(running, code)["claims"]["JKM"] == approved, code

    with httpx.Client(timeout=10) as client:
        # contributions learnt it: no more dues, no payment
        wait_until(lambda: client.get(f"{running.url('contributions')}/v1/dues/{dead}",
                                      headers=AUTH).status_code == 409 or None,
                   30, "contributions refuses the dues of a dead worker")
        # registration learnt it: the NIK may register again, as a new membership
        def registers_again():
            again = client.post(f"{running.url('registration')}/v1/participants",
                                json=rows[0], headers=AUTH)
            return again.status_code == 201 or again.status_code
        wait_until(registers_again, 30, "the same NIK registers again")

    # replaying the decision's events changes nothing
    kinds = ("claim.decided", "membership.status_changed")
    assert asyncio.run(replay(running, kinds, dead)) == set(kinds)
    asyncio.run(coverage_caught_up(running))
    after = moved(before, counters(running))
    for code in LEVELS:  # the worker terminated once; the new membership counted, inactive
        assert after[code] == (0, -1, 1), (code, after)
    assert asyncio.run(claim_counters(running)) == {
        "claims.JKM.approved": 1, "claims.JKM.benefit_paid": 42_000_000}
