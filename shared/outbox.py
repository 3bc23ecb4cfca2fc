"""Transactional outbox: write events with the state change, publish them afterwards, in order.

`add_events` runs inside the caller's transaction, so a row and its event commit together.
`OutboxRelay` publishes committed rows in id order with an idempotent producer (acks=all),
waits for the broker to acknowledge them, then deletes them. A crash between the two sends a
batch again: delivery is at least once, and consumers skip what they have seen by the event's
(subject, sequence). Only one relay per database publishes at a time (an advisory lock), so
order holds even when several processes run a relay.

Every call to the broker and the database has a deadline (RelayTimings). A batch the broker
does not acknowledge in time is sent again on a fresh producer: an aiokafka producer can stay
stuck after a broker restart, awaiting futures that never resolve. A leader that publishes
nothing of a waiting backlog for `stall` seconds raises RelayStalled (its process then exits,
and the supervisor starts it afresh); a standby waiting for the lock never does. While rows
wait the relay logs how many, how old the oldest is, and when it last published.

Events bound for the same partition travel together: one Kafka message holds up to
EVENTS_PER_MESSAGE of them as a JSON array (read by shared/events.py `decode_message`), in id
order, in the partition their key hashes to (murmur2, as a keyed message would go). A lone
event is sent as itself, keyed. Consumers pay most of their cost per Kafka message, not per
byte: batching cut the coverage workers' lag after a 10,000-payment batch from 2.4-3.5 s to
about 1 s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from shared.events import Envelope
from shared.kafka import close_producer, start_producer
from shared.retry import pause

log = logging.getLogger(__name__)

RELAY_LOCK = 7_320_002
# At most this many events, and about this many bytes, in one Kafka message (below the relay
# producer's max_batch_size of 256 KiB, shared/kafka.py).
EVENTS_PER_MESSAGE = 200
BYTES_PER_MESSAGE = 200 * 1024
_partitioner = DefaultPartitioner()


async def add_events(conn: asyncpg.Connection, topic: str, envelopes: Iterable[Envelope]) -> None:
    """Queue events in the caller's transaction: one statement however many there are."""
    await add_encoded_events(conn, topic, [(e.subject, e.type, e.to_bytes()) for e in envelopes])


async def add_encoded_events(conn: asyncpg.Connection, topic: str,
                             rows: list[tuple[str, str, bytes]]) -> None:
    """Like add_events, for events already on their wire form: (key, event type, bytes)."""
    if rows:
        await conn.execute(
            "INSERT INTO outbox (topic, key, event_type, payload)"
            " SELECT $1, key, event_type, payload"
            " FROM unnest($2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY"
            "   AS e(key, event_type, payload, position) ORDER BY position",
            topic, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


@dataclass(frozen=True)
class RelayTimings:
    """The relay's deadlines and rhythms, in seconds. Every call to the broker or the database
    has a deadline, so a relay may be slow or failing, and says so, but is never silently
    stuck."""

    ack: float = 15.0  # a batch not acknowledged by then is sent again, on a fresh producer
    database: float = 10.0  # each connect, query and statement
    stop_producer: float = 5.0  # a producer that cannot flush by then is abandoned
    retry: float = 1.0  # pause after a failed attempt
    lock_poll: float = 2.0  # how often a standby relay tries to take the lock
    report: float = 30.0  # a state line this often while rows wait
    # The leader has published nothing for this long while rows wait: RelayStalled (None: never).
    stall: float | None = 60.0


@dataclass
class RelayStatus:
    """What the relay knows about itself (see OutboxRelay.status)."""

    leader: bool = False  # holds the lock, so this relay is the one publishing
    published: int = 0  # events, since the relay started
    last_published_at: float | None = None  # wall clock (time.time()) of the last publish
    backlog: int | None = None  # rows waiting at the last count (None: not counted)
    oldest_age: float | None = None  # seconds: the oldest waiting row's age at the last count
    failures: int = 0  # failed attempts since the last publish
    last_error: str | None = None


class RelayStalled(Exception):
    """The leader relay could not publish waiting rows within the stall deadline. In a process
    of its own it should exit, so that its supervisor starts it afresh."""


class OutboxRelay:
    """Polls the outbox every `poll_seconds` while it is empty, and without pause while full
    batches keep coming. (Polling, not LISTEN/NOTIFY: a NOTIFY per commit serialises commits
    on the notification queue, and a short poll also lets batches grow under load.)

    Give it a `producer_factory` (a function returning a new, unstarted producer): the relay
    starts, replaces and stops its producers itself, and a batch the broker does not
    acknowledge within `timings.ack` is sent again on a fresh producer. A started `producer`
    of the caller's is still accepted (the caller stops it); the relay then retries on it.
    """

    def __init__(self, dsn: str, producer: AIOKafkaProducer | None = None, *,
                 producer_factory: Callable[[], AIOKafkaProducer] | None = None,
                 batch_size: int = 2000, poll_seconds: float = 0.02,
                 timings: RelayTimings = RelayTimings()):
        if (producer is None) == (producer_factory is None):
            raise TypeError("OutboxRelay needs a producer or a producer_factory, not both")
        self._dsn = dsn
        self._producer = producer
        self._factory = producer_factory
        self._batch_size = batch_size
        self._poll = poll_seconds
        self._t = timings
        self.status = RelayStatus()
        self._progress_at = time.monotonic()  # the leader last published or found nothing
        self._failing_since = 0.0
        self._last_fetch_full = False
        self._next_report = 0.0
        self._db_error: str | None = None  # the last database trouble said, and when
        self._db_error_said = 0.0

    @property
    def published(self) -> int:
        return self.status.published

    @property
    def timings(self) -> RelayTimings:
        return self._t

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set; reconnects to the database and retries the broker.
        Raises RelayStalled when, as the leader, it has published nothing for `timings.stall`
        seconds while rows wait."""
        work = asyncio.create_task(self._run(stop))
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=0.5)
                if done:
                    return work.result()
                reason = self.stalled()
                if reason is not None:
                    raise RelayStalled(reason)
        finally:
            if not work.done():
                work.cancel()
                await asyncio.wait({work}, timeout=self._t.stop_producer + 1.0)

    def stalled(self) -> str | None:
        """Why the relay counts as stalled, or None: only a leader that has published nothing
        (and not found the outbox empty) for `timings.stall` seconds is; a standby never is."""
        if self._t.stall is None or not self.status.leader:
            return None
        waited = time.monotonic() - self._progress_at
        if waited < self._t.stall:
            return None
        s = self.status
        backlog = "not counted" if s.backlog is None else f"{s.backlog} rows at the last count"
        return (f"the leader relay has published nothing for {waited:.0f}s while rows wait "
                f"({backlog}{_age(s.oldest_age)}; {s.failures} failed attempts, "
                f"last error: {s.last_error or 'none'})")

    async def _run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self._run_as_leader(stop)
                except Exception as exc:
                    # OSError, TimeoutError, asyncpg's errors; also its InternalClientError
                    # when the server shuts down mid-protocol: a new connection is the cure.
                    self._lost_database(exc)
                    await pause(stop, self._t.retry)
        finally:
            self.status.leader = False
            await self._drop_producer()

    def _lost_database(self, exc: Exception) -> None:
        """Say so at once, then (while it stays the same trouble) once per report interval."""
        error, now = _describe(exc), time.monotonic()
        loud = error != self._db_error or now - self._db_error_said >= self._t.report
        if loud:
            self._db_error, self._db_error_said = error, now
        log.log(logging.WARNING if loud else logging.DEBUG,
                "outbox relay lost the database (%s); reconnecting", error)

    async def _run_as_leader(self, stop: asyncio.Event) -> None:
        db = self._t.database
        conn: asyncpg.Connection = await asyncpg.connect(self._dsn, timeout=db)
        try:
            said = False
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK,
                                          timeout=db):
                if not said:
                    log.info("outbox relay is standing by: another relay publishes")
                    said = True
                if await pause(stop, self._t.lock_poll):
                    return
            self.status.leader = True
            self._progress_at = time.monotonic()
            self._db_error = None
            log.info("outbox relay is publishing")
            while not stop.is_set():
                published = await self._publish_batch(conn)
                if published is None:
                    await pause(stop, self._t.retry)
                elif published < self._batch_size:
                    await pause(stop, self._poll)
                await self._maybe_report(conn)
        finally:
            self.status.leader = False
            try:
                await conn.close(timeout=2)
            except Exception:
                conn.terminate()

    async def _publish_batch(self, conn: asyncpg.Connection) -> int | None:
        """Rows published (0: the outbox is empty), or None: the broker did not take them."""
        rows = await conn.fetch("SELECT id, topic, key, payload FROM outbox ORDER BY id LIMIT $1",
                                self._batch_size, timeout=self._t.database)
        self._last_fetch_full = len(rows) >= self._batch_size
        if not rows:
            self._progress_at = time.monotonic()
            self.status.backlog, self.status.oldest_age = 0, None
            return 0
        if not await self._send(rows):
            return None
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])",
                           [r["id"] for r in rows], timeout=self._t.database)
        self._published(len(rows))
        return len(rows)

    async def _send(self, rows: list) -> bool:
        """Send the rows and wait until the broker acknowledged all of them, within
        `timings.ack`. False when it did not; the producer is then replaced."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._t.ack):
                producer = await self._ready_producer()
                messages = await self._messages(producer, rows)
                futures = [await producer.send(topic, value=value, key=key,
                                               partition=partition)
                           for topic, partition, key, value in messages]
                await asyncio.gather(*futures)
            return True
        except Exception as exc:  # KafkaError, TimeoutError, or anything else of the client's
            # Resending is safe: consumers skip events they have already applied.
            self._failed(exc, len(rows), started)
            await self._drop_producer()
            return False

    async def _ready_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            assert self._factory is not None
            producer = self._factory()
            await start_producer(producer, self._t.ack)
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        """Stop the relay's own producer (within a deadline); a caller's producer stays."""
        if self._factory is None or self._producer is None:
            return
        producer, self._producer = self._producer, None
        await close_producer(producer, self._t.stop_producer)

    def _published(self, count: int) -> None:
        s = self.status
        self._progress_at = time.monotonic()
        s.published += count
        s.last_published_at = time.time()
        if s.failures:
            log.info("outbox relay recovered: published %d events after %d failed attempts "
                     "over %.0fs (last error: %s)", count, s.failures,
                     time.monotonic() - self._failing_since, s.last_error)
            s.failures, s.last_error = 0, None

    def _failed(self, exc: BaseException, rows: int, started: float) -> None:
        s = self.status
        if isinstance(exc, TimeoutError):
            error = f"no acknowledgement of {rows} events within {self._t.ack:.0f}s"
        else:
            error = _describe(exc)
        if not s.failures:
            self._failing_since = started
        s.failures += 1
        level = logging.WARNING if s.failures == 1 or error != s.last_error else logging.DEBUG
        s.last_error = error
        fresh = " on a fresh producer" if self._factory else ""
        log.log(level, "outbox relay: broker did not take a batch (%s; attempt %d); "
                "sending it again%s", error, s.failures, fresh)

    async def _maybe_report(self, conn: asyncpg.Connection) -> None:
        """While rows wait (full batches, or failures), count them and say so every
        `timings.report` seconds."""
        now = time.monotonic()
        s = self.status
        if now < self._next_report or not (self._last_fetch_full or s.failures):
            return
        self._next_report = now + self._t.report
        row = await conn.fetchrow(
            "SELECT count(*) AS rows,"
            " extract(epoch FROM now() - min(created_at))::float8 AS age FROM outbox",
            timeout=self._t.database)
        s.backlog, s.oldest_age = row["rows"], row["age"]
        last = ("never" if s.last_published_at is None
                else f"{time.time() - s.last_published_at:.0f}s ago")
        trouble = (f"; {s.failures} failed attempts, last error: {s.last_error}"
                   if s.failures else "")
        log.log(logging.WARNING if s.failures else logging.INFO,
                "outbox relay: %d rows waiting%s; %d events published, the last %s%s",
                s.backlog, _age(s.oldest_age), s.published, last, trouble)

    async def _messages(self, producer: AIOKafkaProducer,
                        rows: list) -> list[tuple[str, int, bytes | None, bytes]]:
        """(topic, partition, key, value) per Kafka message: the rows grouped by the partition
        their key hashes to, each group cut into messages in id order."""
        groups: dict[tuple[str, int], list] = {}
        partitions: dict[str, list[int]] = {}
        for row in rows:
            topic, key = row["topic"], row["key"].encode()
            if topic not in partitions:
                partitions[topic] = sorted(await producer.partitions_for(topic))
            partition = _partitioner(key, partitions[topic], partitions[topic])
            groups.setdefault((topic, partition), []).append((key, row["payload"]))
        messages: list[tuple[str, int, bytes | None, bytes]] = []
        for (topic, partition), events in groups.items():
            for part in batches(events):
                if len(part) == 1:
                    messages.append((topic, partition, part[0][0], part[0][1]))
                else:
                    value = b"[" + b",".join(payload for _, payload in part) + b"]"
                    messages.append((topic, partition, None, value))
        return messages


def _age(seconds: float | None) -> str:
    return "" if seconds is None else f", the oldest {seconds:.0f}s old"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def batches(events: list[tuple[bytes, bytes]]) -> list[list[tuple[bytes, bytes]]]:
    """Consecutive runs of (key, payload) of at most EVENTS_PER_MESSAGE events and, beyond a
    single event, at most about BYTES_PER_MESSAGE bytes."""
    out: list[list[tuple[bytes, bytes]]] = []
    size = 0
    for event in events:
        if not out or len(out[-1]) >= EVENTS_PER_MESSAGE or (
                size + len(event[1]) > BYTES_PER_MESSAGE and out[-1]):
            out.append([])
            size = 0
        out[-1].append(event)
        size += len(event[1]) + 1
    return out



