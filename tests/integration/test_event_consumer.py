"""The shared event consumer on the real broker and PostgreSQL: an event that can never be
applied is a dead letter and the partition moves on; a database away brings the batch again
and dead-letters nothing; a consumer that stops fetching is replaced."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

import services.contributions
from services.contributions.worker import participant_consumer
from shared.clock import WIB, FixedClock
from shared.db import create_pool, migrate
from shared.event_consumer import EventConsumer
from shared.events import ParticipantRegistered, events_in
from shared.topics import DEAD_LETTER, PARTICIPANTS, topic_name
from tests.integration.conftest import read_topic

pytestmark = pytest.mark.integration

CONTRIBUTIONS_MIGRATIONS = Path(services.contributions.__file__).parent / "migrations"
CLOCK = FixedClock(datetime(2026, 11, 20, 9, 0, tzinfo=WIB))
PARTITION = 3
FAST = {"retry_first": 0.2, "retry_max": 1.0, "kafka_timeout": 10.0}


def participant(**changes) -> dict:
    return {"participant_id": str(uuid.uuid4()), "kpj": "99000000001",
            "region_code": "12.75.01.1002", "segment": "BPU", "employer_id": None,
            "monthly_income": 1_000_000, "programs": ["JKK", "JKM"],
            "registered_on": "2026-11-20", **changes}


def registration(data: dict, sequence: int = 1) -> bytes:
    """A registration event as a producer may write it: a valid envelope and payload; the
    standard library's JSON, which writes integers of any size."""
    return json.dumps({"id": str(uuid.uuid4()), "type": ParticipantRegistered.TYPE,
                       "version": 1, "source": "registration",
                       "occurred_at": datetime.now(UTC).isoformat(),
                       "subject": data["participant_id"], "sequence": sequence,
                       "data": data}).encode()


async def send(bootstrap: str, topic: str, values: list[bytes]) -> list[int]:
    """Each value as one message in PARTITION, in order; their offsets."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        return [(await producer.send_and_wait(topic, value, key=b"poison-test",
                                              partition=PARTITION)).offset
                for value in values]
    finally:
        await producer.stop()


async def committed(bootstrap: str, group: str, topic: str) -> int | None:
    """The group's committed offset in PARTITION; None while there is none (or, on a fresh
    broker, no group coordinator yet)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except KafkaError:
        return None
    finally:
        await admin.close()
    found = offsets.get(TopicPartition(topic, PARTITION))
    return found.offset if found else None


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 40.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached in {within}s: {what}")
        await asyncio.sleep(0.2)


async def consume_until(consumer: EventConsumer, check: Callable[[], Awaitable[bool]],
                        what: str, within: float = 40.0) -> None:
    """Run `consumer` until `check` holds (`what` names it if it never does), then stop it."""
    stop = asyncio.Event()
    running = asyncio.create_task(consumer.run(stop))
    try:
        await until(check, what, within=within)
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


async def consume_all(consumer: EventConsumer, bootstrap: str, group: str, topic: str,
                      offsets: list[int]) -> None:
    """Run `consumer` until its group's committed offset in PARTITION is past every one of
    `offsets`, then stop it."""
    await consume_until(
        consumer, lambda: _equal(committed(bootstrap, group, topic), offsets[-1] + 1),
        "the committed offset past every event")


async def letters(bootstrap: str, prefix: str, group: str, expect: int) -> list[dict]:
    messages = await read_topic(bootstrap, topic_name(DEAD_LETTER, prefix), expect=expect,
                                wait_s=5, partitions=DEAD_LETTER.partitions)
    return [letter for m in messages
            if (letter := orjson.loads(m.value))["consumer"] == group]


@pytest.fixture
async def database(infra):
    pool = await create_pool(infra.new_database("consumer"))
    try:
        yield pool
    finally:
        await pool.close()


async def test_unusable_registrations_are_dead_letters_and_the_good_ones_behind_them_apply(
        infra, prefix, database):
    await migrate(database, CONTRIBUTIONS_MIGRATIONS)
    topic = topic_name(PARTICIPANTS, prefix)
    bad_date = registration(participant(registered_on="2026-13-45"))
    huge_income = registration(participant(monthly_income=10**30))
    good, later = participant(), participant()
    huge_sequence = registration(participant(), sequence=2**40)
    # The last message is a batch, as the relay sends: the unusable element is a letter alone.
    batch = b"[" + huge_sequence + b"," + registration(later) + b"]"
    offsets = await send(infra.bootstrap, topic,
                         [bad_date, huge_income, registration(good), batch])
    consumer = participant_consumer(database, CLOCK, bootstrap=infra.bootstrap,
                                    topic_prefix=prefix, **FAST)
    group = f"{prefix}ucj-contributions"
    await consume_all(consumer, infra.bootstrap, group, topic, offsets)

    members = {str(r["participant_id"]) for r in await database.fetch(
        "SELECT participant_id FROM members")}
    assert members == {good["participant_id"], later["participant_id"]}
    found = await letters(infra.bootstrap, prefix, group, expect=3)
    by_offset = {letter["offset"]: letter for letter in found}
    assert len(found) == 3 and set(by_offset) == {offsets[0], offsets[1], offsets[3]}
    expected_bytes = {offsets[0]: bad_date, offsets[1]: huge_income,
                      offsets[3]: events_in(batch)[0]}
    for offset, letter in by_offset.items():
        raw = expected_bytes[offset]
        assert "value" not in letter
        assert (letter["topic"], letter["partition"]) == (topic, PARTITION)
        assert letter["sha256"] == hashlib.sha256(raw).hexdigest()
        assert letter["size"] == len(raw)
    assert "registered_on that is not an ISO date" in by_offset[offsets[0]]["reason"]
    assert "monthly_income" in by_offset[offsets[1]]["reason"]
    assert "sequence beyond" in by_offset[offsets[3]]["reason"]
    for letter in found:
        assert "2026-13-45" not in letter["reason"] and str(10**30) not in letter["reason"]
    assert consumer.applied == 2 and consumer.dead_letters == 3


async def test_what_the_database_refuses_is_a_dead_letter_naming_the_error_not_the_value(
        infra, prefix, database):
    # A handler with no checks of its own: the generic fallback catches what PostgreSQL and
    # asyncpg refuse.
    await database.execute("CREATE TABLE seen (subject text PRIMARY KEY, registered_on date,"
                           " income integer)")

    async def handle(events) -> None:
        async with database.acquire() as conn, conn.transaction():
            for envelope, payload in events:
                await conn.execute("INSERT INTO seen VALUES ($1, $2::text::date, $3)",
                                   envelope.subject, payload.registered_on,
                                   payload.monthly_income)

    topic = topic_name(PARTICIPANTS, prefix)
    bad_date, huge_income, good = (participant(registered_on="2026-02-30"),
                                   participant(monthly_income=2**40), participant())
    offsets = await send(infra.bootstrap, topic, [registration(bad_date),
                                                  registration(huge_income),
                                                  registration(good)])
    group = f"{prefix}generic"
    consumer = EventConsumer(bootstrap=infra.bootstrap, topics=[topic], group_id=group,
                             handle=handle, dead_letter_topic=topic_name(DEAD_LETTER, prefix),
                             **FAST)
    await consume_all(consumer, infra.bootstrap, group, topic, offsets)

    assert await database.fetchval("SELECT array_agg(subject) FROM seen") == [
        good["participant_id"]]
    found = {letter["offset"]: letter for letter in
             await letters(infra.bootstrap, prefix, group, expect=2)}
    assert set(found) == {offsets[0], offsets[1]}
    # PostgreSQL's own words would quote the date; asyncpg's the number.
    assert "SQLSTATE 22008" in found[offsets[0]]["reason"]
    assert "2026-02-30" not in found[offsets[0]]["reason"]
    assert "query argument $3" in found[offsets[1]]["reason"]
    assert str(2**40) not in found[offsets[1]]["reason"]


async def test_a_database_away_brings_the_batch_again_and_dead_letters_nothing(
        infra, prefix, database):
    await migrate(database, CONTRIBUTIONS_MIGRATIONS)
    attempts = 0
    consumer = participant_consumer(database, CLOCK, bootstrap=infra.bootstrap,
                                    topic_prefix=prefix, **FAST)
    learn = consumer._handle

    async def database_restarting(events) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:  # the server ends our connection, as on a restart
            async with database.acquire() as conn:
                await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        await learn(events)

    consumer._handle = database_restarting
    topic = topic_name(PARTICIPANTS, prefix)
    people = [participant() for _ in range(3)]
    offsets = await send(infra.bootstrap, topic, [registration(p) for p in people])
    group = f"{prefix}ucj-contributions"
    await consume_all(consumer, infra.bootstrap, group, topic, offsets)

    assert attempts >= 3
    assert await database.fetchval("SELECT count(*) FROM members") == 3
    assert consumer.dead_letters == 0
    assert await letters(infra.bootstrap, prefix, group, expect=0) == []


class _StallingConsumer(AIOKafkaConsumer):
    """A real consumer that stops fetching once it has its partitions, as aiokafka's can after
    a broker restart (#1154, #847): it answers, but brings nothing."""

    async def getmany(self, *partitions, timeout_ms=0, max_records=None):
        if self.assignment():
            self.pause(*self.assignment())
        return await super().getmany(*partitions, timeout_ms=timeout_ms,
                                     max_records=max_records)


async def test_a_consumer_that_stops_fetching_while_events_wait_is_replaced(
        infra, prefix, database):
    await migrate(database, CONTRIBUTIONS_MIGRATIONS)
    consumer = participant_consumer(database, CLOCK, bootstrap=infra.bootstrap,
                                    topic_prefix=prefix, stuck_after=2.0, **FAST)
    made = 0
    real_consumer = consumer._new_consumer

    def first_one_stalls() -> AIOKafkaConsumer:
        nonlocal made
        made += 1
        if made > 1:
            return real_consumer()
        return _StallingConsumer(
            topic_name(PARTICIPANTS, prefix), bootstrap_servers=infra.bootstrap,
            group_id=f"{prefix}ucj-contributions", enable_auto_commit=False,
            auto_offset_reset="earliest")

    consumer._new_consumer = first_one_stalls  # type: ignore[method-assign]
    topic = topic_name(PARTICIPANTS, prefix)
    await send(infra.bootstrap, topic, [registration(participant()) for _ in range(2)])

    async def learnt() -> bool:
        return await database.fetchval("SELECT count(*) FROM members") == 2

    await consume_until(consumer, learnt, "both participants learnt by a new consumer",
                        within=30)
    assert consumer.recreated == 1 and made == 2


async def _equal(value: Awaitable[object], expected: object) -> bool:
    return await value == expected
