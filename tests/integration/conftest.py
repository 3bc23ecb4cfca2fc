"""Fixtures for tests that run one service in-process against the real broker and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import Envelope, decode, events_in
from shared.topics import TopicSpec, topic_name

BOOTSTRAP_KEY = "test-bootstrap-key"
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


async def asgi_client(app) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, with its lifespan (pool, migrations) running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@dataclass(frozen=True)
class TopicEvent:
    """One event read from a topic: where its message was, the message's key, the envelope."""

    partition: int
    offset: int
    key: bytes | None
    envelope: Envelope


async def read_events(bootstrap: str, topic: str, *, expect: int, wait_s: float = 20.0,
                      partitions: int = 12) -> list[TopicEvent]:
    """Every event of a topic from the start (one per message, or several in a batch), in
    each partition's order, waiting until at least `expect` events arrived."""
    messages = await read_topic(bootstrap, topic, expect=expect, wait_s=wait_s,
                                partitions=partitions, count=lambda m: len(events_in(m.value)))
    return [TopicEvent(m.partition, m.offset, m.key, decode(raw)[0])
            for m in sorted(messages, key=lambda m: (m.partition, m.offset))
            for raw in events_in(m.value)]


async def relayed_events(infra, settings, topic: TopicSpec, *, expect: int,
                         client_id: str) -> list[TopicEvent]:
    """The events an outbox relay on a service's database (its `settings`) publishes on `topic`,
    the prefix's topics created first, once `expect` arrived; the relay stopped then."""
    from deploy.local import stack
    from shared.kafka import idempotent_producer
    from shared.outbox import OutboxRelay

    await stack.acreate_topics(infra.bootstrap, settings.topic_prefix)
    producer = idempotent_producer(infra.bootstrap, client_id=client_id)
    await producer.start()
    stop = asyncio.Event()
    task = asyncio.create_task(OutboxRelay(settings.database_url, producer).run(stop))
    try:
        return await read_events(infra.bootstrap, topic_name(topic, settings.topic_prefix),
                                 expect=expect)
    finally:
        stop.set()
        await task
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, *, expect: int, wait_s: float = 20.0,
                     partitions: int = 12, count: Callable[[Any], int] = lambda m: 1) -> list:
    """Every message of a topic from the start, waiting until at least `expect` arrived
    (as `count` counts each message)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        messages: list = []
        seen = 0
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for chunk in batch.values():
                messages.extend(chunk)
                seen += sum(count(m) for m in chunk)
            if seen >= expect and not batch:
                break
        return messages
    finally:
        await consumer.stop()


async def next_version(conn, partition: int) -> int:
    """The next version of a coverage worker's partition, as its transaction takes it (the API
    follows versions, services/coverage/counting_store.py): call in the caller's transaction."""
    await conn.execute("INSERT INTO counting_partitions (partition) VALUES ($1)"
                       " ON CONFLICT DO NOTHING", partition)
    return await conn.fetchval("UPDATE counting_partitions SET version = version + 1"
                               " WHERE partition = $1 RETURNING version", partition)


@pytest.fixture
def auth() -> dict[str, str]:
    return dict(AUTH)


BINJAI_VILLAGE = "12.75.01.1001"


def worker(serial: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid BPU worker from Binjai: a woman born 1990-08-05, so NIK digits 7-12 are 450890
    (a new NIK for each serial; `overrides` replace fields)."""
    body: dict[str, Any] = {"nik": f"127501450890{serial:04d}", "full_name": "Siti Aminah",
                            "birth_date": "1990-08-05", "sex": "F",
                            "region_code": BINJAI_VILLAGE, "segment": "BPU",
                            "employer_id": None, "occupation": "pedagang",
                            "monthly_income": 1_000_000, "programs": ["JKK", "JKM"]}
    body.update(overrides)
    return body


async def registration_service(infra, topic_prefix: str) -> AsyncIterator[tuple[Any, Any, Any]]:
    """The registration service in-process on a database of its own, its topics under
    `topic_prefix`: (client, connection, settings) while it runs."""
    import asyncpg

    from services.registration.api import create_app as registration_app
    from services.registration.settings import RegistrationSettings

    url = infra.new_database("registration")
    settings = RegistrationSettings(DATABASE_URL=url, KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap,
                                    UCJ_TOPIC_PREFIX=topic_prefix,
                                    UCJ_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY)
    async for client in asgi_client(registration_app(settings)):
        conn = await asyncpg.connect(url)
        try:
            yield client, conn, settings
        finally:
            await conn.close()


@pytest.fixture
async def registration(infra, bare_prefix):
    """The registration service in-process on a database of its own: (client, connection)."""
    async for client, conn, _ in registration_service(infra, bare_prefix):
        yield client, conn


@pytest.fixture
async def keyed_registration(infra, keys_prefix):
    """The registration service in-process on a database of its own, with the API keys' topic
    (for tests that make keys or run its outbox relay): (client, connection, settings)."""
    async for running in registration_service(infra, keys_prefix):
        yield running


@pytest.fixture
def contributions_clock():
    """The contributions service's calendar: 20 November 2026, 09:00 WIB."""
    from datetime import datetime

    from shared.clock import WIB, FixedClock

    return FixedClock(datetime(2026, 11, 20, 9, 0, tzinfo=WIB))


@pytest.fixture
async def contributions(infra, bare_prefix, contributions_clock):
    """The contributions service in-process on a database of its own, its calendar on
    20 November 2026 (WIB), the `contributions_clock`: (client, connection)."""
    import asyncpg

    from services.contributions.api import create_app as contributions_app
    from services.contributions.settings import ContributionsSettings

    url = infra.new_database("contributions")
    settings = ContributionsSettings(DATABASE_URL=url, UCJ_TOPIC_PREFIX=bare_prefix,
                                     KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap,
                                     UCJ_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY)
    async for client in asgi_client(contributions_app(settings, clock=contributions_clock)):
        conn = await asyncpg.connect(url)
        try:
            yield client, conn
        finally:
            await conn.close()


async def registered_rows(conn) -> tuple[int, int]:
    """(participants, outbox rows) in a registration database."""
    return (await conn.fetchval("SELECT count(*) FROM participants"),
            await conn.fetchval("SELECT count(*) FROM outbox"))


async def contributions_learn(conn, events, today) -> int:
    """The contributions service learning participant events, in the caller's transaction."""
    from services.contributions import handlers, store

    return await handlers.learn_participants(store.PgContributionsUnit(conn, None), events,
                                             today)


async def contributions_calendar(conn, today, topic: str = "t.memberships") -> tuple[int, int]:
    """One calendar pass of the contributions service, in the caller's transaction."""
    from services.contributions import handlers, store

    return await handlers.settle_due_members(store.PgContributionsUnit(conn, topic), today)


async def until_ready(client, seconds: float = 10.0) -> None:
    """Until GET /healthz answers 200; a clear failure if it never does within `seconds`
    (the tests would otherwise run against an API that is not following its counters)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        response = await client.get("/healthz")
        if response.status_code == 200:
            return
        if asyncio.get_running_loop().time() >= deadline:
            pytest.fail(f"the coverage API never became ready: GET /healthz still answered "
                        f"{response.status_code} after {seconds:.0f}s: {response.text}",
                        pytrace=False)
        await asyncio.sleep(0.1)


@pytest.fixture
async def coverage(infra, prefix):
    """The coverage API in-process on a database of its own, ready: (client, settings)."""
    from services.coverage.api import create_app as coverage_app
    from services.coverage.settings import CoverageApiSettings

    settings = CoverageApiSettings(DATABASE_URL=infra.new_database("coverage"),
                                   KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap,
                                   UCJ_TOPIC_PREFIX=prefix, UCJ_BOOTSTRAP_API_KEY=BOOTSTRAP_KEY)
    async for client in asgi_client(coverage_app(settings)):
        await until_ready(client)
        yield client, settings
