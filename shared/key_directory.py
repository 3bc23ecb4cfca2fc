"""One set of API keys for every service, without one service calling another.

A key is made, revoked or rotated on any service (`/v1/api-keys`, shared/auth.py) by publishing
its whole record, keyed by the key's id, to the compacted topic `ucj.api-keys`: the SHA-256 of
the key and its scopes, never the key. Every service process reads that topic from its start and
keeps a copy in its own database (`api_keys`), which is what it checks bearer keys against.

The topic is the source of truth: a change is made once the broker has it (acks=all); the
service that made it then applies it to its own copy at once, so that it answers with it, and
every other service applies it within about a second (the consumer polls with a short wait and
drops the key from its cache). No broker, no change: a 503.

Copies merge rather than overwrite, so they agree whatever order changes arrive in: a key's
fields never change except `revoked_at`, and the earliest revocation wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime
from typing import Any, Literal

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.kafka import close_producer, idempotent_producer, start_producer
from shared.problems import dependency_away_problem, describe_away
from shared.retry import Backoff
from shared.topics import API_KEYS, topic_name

log = logging.getLogger(__name__)

CONNECT_SECONDS = 15.0
PUBLISH_SECONDS = 10.0
POLL_SECONDS = 30.0
DATABASE_SECONDS = 10.0
RETRY_SECONDS = 1.0
RETRY_MAX_SECONDS = 10.0  # revocations must reach every service within seconds of the broker
# While the topic does not exist (a stack still creating it): look again this often.
TOPIC_CHECK_SECONDS = 5.0
LOG_EVERY_SECONDS = 60.0
BROKER = "the Kafka broker"


class KeyRecord(BaseModel):
    """One key as the topic carries it and each service's `api_keys` table holds it."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    version: Literal[1] = 1
    id: uuid.UUID
    partner_id: uuid.UUID
    name: str
    key_hash: str  # hex SHA-256 of the key
    scopes: list[str]
    requests_per_minute: int
    created_at: datetime
    revoked_at: datetime | None = None
    rotated_from: uuid.UUID | None = None

    def public(self, now: datetime) -> dict[str, Any]:
        """What an admin sees of it: everything but the hash."""
        return {"id": str(self.id), "partner_id": str(self.partner_id), "name": self.name,
                "scopes": self.scopes, "requests_per_minute": self.requests_per_minute,
                "created_at": self.created_at.isoformat(),
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "rotated_from": str(self.rotated_from) if self.rotated_from else None,
                "active": self.revoked_at is None or self.revoked_at > now}


_COLUMNS = ("id, partner_id, name, key_hash, scopes, requests_per_minute, created_at,"
            " revoked_at, rotated_from")


def _record(row: Any) -> KeyRecord:
    return KeyRecord(id=row["id"], partner_id=row["partner_id"], name=row["name"],
                     key_hash=bytes(row["key_hash"]).hex(), scopes=list(row["scopes"]),
                     requests_per_minute=row["requests_per_minute"],
                     created_at=row["created_at"], revoked_at=row["revoked_at"],
                     rotated_from=row["rotated_from"])


async def apply(conn: asyncpg.Pool | asyncpg.Connection, record: KeyRecord) -> None:
    """Merge `record` into the local copy: insert it, or keep the earliest revocation.

    The service that made a key applies it while its own follower may apply the same record
    from the topic: two inserts of one row at once. ON CONFLICT (id) covers the id, but the
    second insert can trip on the key_hash index first (a unique violation, not a conflict on
    the arbiter): then the row is committed, and applying again merges it."""
    for attempt in range(3):
        try:
            await _merge(conn, record)
            return
        except asyncpg.UniqueViolationError:
            if attempt == 2:
                raise


async def _merge(conn: asyncpg.Pool | asyncpg.Connection, record: KeyRecord) -> None:
    await conn.execute(
        f"INSERT INTO api_keys ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        " ON CONFLICT (id) DO UPDATE SET revoked_at = CASE"
        "   WHEN api_keys.revoked_at IS NULL THEN EXCLUDED.revoked_at"
        "   WHEN EXCLUDED.revoked_at IS NULL THEN api_keys.revoked_at"
        "   ELSE least(api_keys.revoked_at, EXCLUDED.revoked_at) END",
        record.id, record.partner_id, record.name, bytes.fromhex(record.key_hash),
        record.scopes, record.requests_per_minute, record.created_at, record.revoked_at,
        record.rotated_from, timeout=DATABASE_SECONDS)


async def local_record(conn: asyncpg.Pool | asyncpg.Connection,
                       key_id: uuid.UUID) -> KeyRecord | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM api_keys WHERE id = $1", key_id,
                              timeout=DATABASE_SECONDS)
    return _record(row) if row else None


async def local_records(conn: asyncpg.Pool | asyncpg.Connection) -> list[KeyRecord]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id",
                            timeout=DATABASE_SECONDS)
    return [_record(r) for r in rows]


class KeyDirectory:
    """Follows the topic into the local copy (`run`, a task for the process's life) and
    publishes changes (`publish`). `forget(hash)` is told of every change applied, so a cache of
    looked-up keys never outlives a revocation."""

    def __init__(self, pool: asyncpg.Pool, *, bootstrap_servers: str, topic_prefix: str,
                 forget: Any, client_id: str = "ucj-keys"):
        self._pool = pool
        self._bootstrap = bootstrap_servers
        self.topic = topic_name(API_KEYS, topic_prefix)
        self._forget = forget
        self._client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._publishing = asyncio.Lock()
        self.caught_up = asyncio.Event()

    # --- the follower -----------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the topic for ever; on any failure (broker or database away) start again
        from the beginning of the topic after a pause (applying a record twice is harmless)."""
        loop, logged = asyncio.get_running_loop(), float("-inf")
        backoff = Backoff(RETRY_SECONDS, RETRY_MAX_SECONDS)
        while True:
            started = loop.time()
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if loop.time() - logged > LOG_EVERY_SECONDS:  # one line a minute while away
                    logged = loop.time()
                    log.warning("API key directory: %s; following again shortly",
                                describe_away(exc))
            if loop.time() - started > RETRY_MAX_SECONDS:
                backoff.succeeded()  # it followed for a while: this is a new outage
            await backoff.wait()

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, group_id=None, enable_auto_commit=False,
            client_id=self._client_id, fetch_max_wait_ms=200, request_timeout_ms=20_000,
            auto_offset_reset="earliest")
        async with asyncio.timeout(CONNECT_SECONDS):
            await consumer.start()
        try:
            tp = TopicPartition(self.topic, 0)
            while True:
                async with asyncio.timeout(CONNECT_SECONDS):
                    if self.topic in await consumer.topics():
                        break
                await asyncio.sleep(TOPIC_CHECK_SECONDS)
            consumer.assign([tp])
            async with asyncio.timeout(CONNECT_SECONDS):
                await consumer.seek_to_beginning(tp)
                end = (await consumer.end_offsets([tp]))[tp]
            while True:
                async with asyncio.timeout(POLL_SECONDS):
                    batch = await consumer.getmany(tp, timeout_ms=1000)
                for message in batch.get(tp, []):
                    await self._take(message)
                if not self.caught_up.is_set():
                    async with asyncio.timeout(CONNECT_SECONDS):
                        if await consumer.position(tp) >= end:
                            self.caught_up.set()
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CONNECT_SECONDS):
                    await consumer.stop()

    async def _take(self, message: Any) -> None:
        if message.value is None:
            return
        try:
            record = KeyRecord.model_validate_json(message.value)
        except ValidationError:
            log.warning("API key directory: skipped a malformed record at offset %d",
                        message.offset)
            return
        await self._apply(record)

    async def _apply(self, record: KeyRecord) -> None:
        await apply(self._pool, record)
        self._forget(bytes.fromhex(record.key_hash))

    # --- changes ----------------------------------------------------------------------------

    async def publish(self, *records: KeyRecord) -> None:
        """Put `records` on the topic, in order, and into the local copy; a 503 Problem when
        the broker does not take them in time."""
        async with self._publishing:
            try:
                producer = await self._started_producer()
                async with asyncio.timeout(PUBLISH_SECONDS):
                    for record in records:
                        await producer.send_and_wait(
                            self.topic, key=str(record.id).encode(),
                            value=record.model_dump_json().encode(), partition=0)
            except Exception as exc:
                log.warning("API key directory: publishing failed (%s)", describe_away(exc))
                await self._drop_producer()
                raise dependency_away_problem(BROKER) from None
        for record in records:
            await self._apply(record)

    async def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = idempotent_producer(self._bootstrap, client_id=self._client_id)
            await start_producer(producer, CONNECT_SECONDS)
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await close_producer(producer, 5.0)

    async def close(self) -> None:
        async with self._publishing:
            await self._drop_producer()


@contextlib.asynccontextmanager
async def key_directory(app: Any, pool: asyncpg.Pool, settings: Any, *, client_id: str):
    """Run a KeyDirectory for the app's life, as `app.state.key_directory`; the app's KeyStore
    (`app.state.keys`) forgets every key the directory changes."""
    directory = KeyDirectory(pool, bootstrap_servers=settings.kafka_bootstrap_servers,
                             topic_prefix=settings.topic_prefix, forget=app.state.keys.forget,
                             client_id=client_id)
    app.state.key_directory = directory
    task = asyncio.create_task(directory.run(), name="api-key directory")
    try:
        yield directory
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await directory.close()
