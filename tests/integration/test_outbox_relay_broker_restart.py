"""The outbox relay survives a broker restart: nothing lost, one aggregate's order kept.

This test owns its broker (the project's local Kafka, from the Maven jars, on free ports), since
it stops and starts it; PostgreSQL comes from the shared test infrastructure.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import defaultdict

import pytest

from deploy.local import stack
from shared.db import create_pool, migrate
from shared.events import ParticipantChanged, make_envelope
from shared.kafka import idempotent_producer
from shared.outbox import OutboxRelay, add_events
from shared.topics import PARTICIPANTS, topic_name
from tests.integration.conftest import read_events

pytestmark = pytest.mark.integration

SUBJECTS = [uuid.uuid4() for _ in range(8)]
ROUNDS = 40


def event(subject: uuid.UUID, sequence: int):
    payload = ParticipantChanged(participant_id=subject, kpj="00000000018",
                                 region_code="12.75.01.1001", segment="BPU",
                                 monthly_income=1_000_000, programs=["JKK", "JKM"],
                                 registered_on="2026-11-25", changed=["monthly_income"])
    return make_envelope(payload, source="registration", subject=str(subject), sequence=sequence)


@pytest.fixture
def own_broker(tmp_path):
    ports = (stack.free_port(), stack.free_port())
    broker = stack.start_kafka(tmp_path / "kafka", *ports)
    holder = {"process": broker}

    def restart() -> None:
        holder["process"].stop(30)
        holder["process"] = stack.start_kafka(tmp_path / "kafka", *ports)

    try:
        yield f"127.0.0.1:{ports[0]}", restart
    finally:
        holder["process"].stop(30)


async def test_the_relay_keeps_every_event_and_each_subjects_order_across_a_broker_restart(
        infra, own_broker):
    bootstrap, restart_broker = own_broker
    prefix = "relay."
    await stack.acreate_topics(bootstrap, prefix)
    topic = topic_name(PARTICIPANTS, prefix)
    url = infra.new_database("relay")
    pool = await create_pool(url)
    await migrate(pool)
    factory = functools.partial(idempotent_producer, bootstrap, client_id="test-relay")
    stop = asyncio.Event()
    relay = asyncio.create_task(OutboxRelay(url, producer_factory=factory).run(stop))

    async def write_events(first_round: int, last_round: int) -> None:
        for sequence in range(first_round, last_round + 1):
            async with pool.acquire() as conn, conn.transaction():
                await add_events(conn, topic, [event(s, sequence) for s in SUBJECTS])
            await asyncio.sleep(0.01)

    try:
        await write_events(1, ROUNDS // 2)
        await asyncio.to_thread(restart_broker)  # events keep being written meanwhile
        await write_events(ROUNDS // 2 + 1, ROUNDS)
        events = await read_events(bootstrap, topic, expect=len(SUBJECTS) * ROUNDS,
                                   wait_s=90)
        async with pool.acquire() as conn:
            left = await conn.fetchval("SELECT count(*) FROM outbox")
    finally:
        stop.set()
        await relay
        await pool.close()

    first_seen: dict[str, list[int]] = defaultdict(list)
    for found in events:
        envelope = found.envelope
        if envelope.sequence not in first_seen[envelope.subject]:
            first_seen[envelope.subject].append(envelope.sequence)
    assert left == 0
    assert set(first_seen) == {str(s) for s in SUBJECTS}
    for subject, sequences in first_seen.items():
        assert sequences == list(range(1, ROUNDS + 1)), subject


async def test_two_relays_on_one_database_publish_through_one_leader(infra, prefix):
    url = infra.new_database("relay")
    pool = await create_pool(url)
    await migrate(pool)
    topic = topic_name(PARTICIPANTS, prefix)
    stop = asyncio.Event()
    relays = [OutboxRelay(url, producer_factory=functools.partial(
        idempotent_producer, infra.bootstrap, client_id=f"relay-{i}")) for i in (1, 2)]
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        subject = uuid.uuid4()
        for sequence in range(1, 51):
            async with pool.acquire() as conn:
                await add_events(conn, topic, [event(subject, sequence)])
        events = await read_events(infra.bootstrap, topic, expect=50)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await pool.close()
    assert [e.envelope.sequence for e in events] == list(range(1, 51))
    assert sorted(r.published for r in relays) == [0, 50]
