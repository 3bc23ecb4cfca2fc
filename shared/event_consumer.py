"""A consumer group that applies events in batches, then commits their offsets.

Delivery is at least once: after a crash the last batch comes again, so a handler must be
idempotent (it applies an event only when its sequence is newer than what it has stored).
Unknown event types are skipped (a newer producer may publish types this consumer does not
need). Nothing holds a partition up for good:

- a message that cannot be read (not JSON, no valid envelope or payload) is a dead letter;
- a batch that fails on its data (`failure_kind` "data": a date that is no date, a number its
  column cannot hold, a NUL byte, a constraint) is applied again one event at a time, each in
  its own call of the handler (its own transaction); each event that fails on its data again
  is a dead letter, the others apply, and the offsets are committed;
- a batch that fails because a dependency is away (the database or the broker down, restarting
  or past a deadline) or on a bug comes again after a backoff, and nothing is dead-lettered;
- every wait on the network has a deadline, and a consumer that stops fetching while its
  partitions have events waiting (aiokafka #1154, #847: after a broker restart) is closed and
  a new one started.

A dead letter names the event's place (topic, partition, offset) and hashes its bytes
(shared/dead_letter.py); its reason never quotes input values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from shared.dead_letter import dead_letter
from shared.events import (
    Envelope,
    Payload,
    UnknownEventType,
    decode_message,
    event_bytes_in,
)
from shared.kafka import close_producer, start_producer
from shared.problems import dependency_away, describe_away
from shared.retry import Backoff

log = logging.getLogger(__name__)

Handler = Callable[[list[tuple[Envelope, Payload]]], Awaitable[None]]

# Deadlines and pace, in seconds (EventConsumer's defaults).
KAFKA_TIMEOUT = 30.0  # start, stop, fetch, commit, a dead letter's send
HANDLE_TIMEOUT = 60.0  # one call of the handler: its whole database transaction
STUCK_AFTER = 60.0  # no fetch for this long while events wait: a new consumer
RETRY_FIRST, RETRY_MAX = 1.0, 30.0  # backoff before a batch or a consumer is tried again


class UnusableEvent(ValueError):
    """Raised by a handler for an event it can read but never apply: a date that is no date, a
    number its columns cannot hold. The message is the dead letter's reason, so it names the
    problem and never quotes input values."""


FailureKind = Literal["data", "dependency", "bug"]

# SQLSTATE classes about the statement's data: 22 data exception (a bad date, a number out of
# range, a NUL byte), 23 integrity constraint violation.
_DATA_SQLSTATES = ("22", "23")
# Transient on a healthy server: 40 transaction rollback (serialization failure, deadlock).
_RETRY_SQLSTATES = ("40",)


def _client_data_error(exc: BaseException) -> bool:
    """asyncpg's client-side DataError (an InterfaceError and a ValueError): input it refuses
    before sending anything. (An argument it cannot encode, an int beyond int64, comes as the
    SQLSTATE 22000 DataError instead, whose message also quotes the value.)"""
    return isinstance(exc, asyncpg.InterfaceError) and isinstance(exc, ValueError)


def failure_kind(exc: BaseException) -> FailureKind:
    """Why applying events failed: "data" (these events can never be applied: dead letters),
    "dependency" (the database or the broker is away or past a deadline: try again) or "bug"
    (anything else: try again, an operator has to look)."""
    if isinstance(exc, UnusableEvent) or _client_data_error(exc):
        return "data"  # before dependency_away: their messages may hold any text
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate.startswith(_DATA_SQLSTATES):
            return "data"
        if sqlstate.startswith(_RETRY_SQLSTATES):
            return "dependency"
    if isinstance(exc, KafkaError | TimeoutError) or dependency_away(exc):
        return "dependency"
    if isinstance(exc, ValueError | ArithmeticError):  # pydantic's ValidationError included
        return "data"
    return "bug"


# How asyncpg begins the DataError of an argument it cannot encode (its value follows).
_ARGUMENT = re.compile(r"invalid input for query argument \$\d+")


def unusable_reason(exc: BaseException) -> str:
    """A dead letter's reason for an event that failed on its data, without input values:
    UnusableEvent's own words; for a database error its type, SQLSTATE and the schema names it
    gives (table, column, constraint), never its message or detail ("Key (id)=(...)")."""
    if isinstance(exc, UnusableEvent):
        return f"unusable event: {exc}"
    name = type(exc).__name__
    argument = _ARGUMENT.match(str(exc))
    if isinstance(exc, asyncpg.PostgresError):
        where = [f"{label} {value}" for label, value in (
            ("table", getattr(exc, "table_name", None)),
            ("column", getattr(exc, "column_name", None)),
            ("constraint", getattr(exc, "constraint_name", None))) if value]
        if argument:  # raised by asyncpg itself, before sending
            where.append(argument[0])
        return f"database refused the event: {name} (SQLSTATE {exc.sqlstate})" + (
            f": {', '.join(where)}" if where else "")
    if _client_data_error(exc):
        return f"database driver refused the event: {name}" + (
            f": {argument[0]}" if argument else "")
    if isinstance(exc, ValidationError):
        fields = "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'event'}: {error['type']}"
                           for error in exc.errors(include_url=False, include_input=False,
                                                   include_context=False)[:10])
        return f"unusable event: {name} ({fields})"
    return f"unusable event: {name} (its message is withheld: it may quote input)"


@dataclass(frozen=True, slots=True)
class Received:
    """One decoded event and where it came from: a dead letter names the place and hashes the
    event's bytes (an element of a batch message: that element alone)."""

    envelope: Envelope
    payload: Payload
    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes  # b"" for a well-formed element of a batch: see event_bytes()
    message_value: bytes | None = None
    index: int = 0  # of the event in its message

    @property
    def event(self) -> tuple[Envelope, Payload]:
        return self.envelope, self.payload

    def event_bytes(self) -> bytes:
        """The event's bytes as sent (cut out of its message again, only when needed)."""
        return self.raw or event_bytes_in(self.message_value, self.index)


Progress = Callable[[int], Awaitable[None]]
PROGRESS_EVERY = 0.5


class _Stuck(Exception):
    """The consumer stopped fetching while its partitions have events waiting."""


class EventConsumer:
    def __init__(self, *, bootstrap: str, topics: list[str], group_id: str, handle: Handler,
                 dead_letter_topic: str, max_records: int = 2000,
                 kafka_timeout: float = KAFKA_TIMEOUT, handle_timeout: float = HANDLE_TIMEOUT,
                 stuck_after: float = STUCK_AFTER, retry_first: float = RETRY_FIRST,
                 retry_max: float = RETRY_MAX, on_progress: Progress | None = None,
                 progress_every: float = PROGRESS_EVERY):
        self._bootstrap = bootstrap
        self._topics = topics
        self._group_id = group_id
        self._handle = handle
        self._dead_letter_topic = dead_letter_topic
        self._max_records = max_records
        self._kafka_timeout = kafka_timeout
        self._handle_timeout = handle_timeout
        self._stuck_after = stuck_after
        self._backoff = Backoff(retry_first, retry_max)
        self.applied = 0  # events the handler applied
        self.dead_letters = 0  # events sent to the dead-letter topic
        self.recreated = 0  # consumers replaced because they stopped moving
        # Told, at most every progress_every seconds, how many events wait behind the
        # consumer's position in its partitions (0: caught up), e.g. to say "not yet known".
        self._on_progress = on_progress
        self._progress_every = progress_every
        self._progress_at = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._consume(stop)
            except _Stuck:
                continue  # logged where found; a new consumer at once
            except Exception as exc:
                kind = failure_kind(exc)
                (log.warning if kind == "dependency" else log.error)(
                    "consumer %s: %s (%s); a new consumer in %.1fs", self._group_id,
                    "the broker or the database is away" if kind == "dependency" else
                    "unexpected error", _described(exc), self._backoff.delay)
                await self._backoff.wait(stop)

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            *self._topics, bootstrap_servers=self._bootstrap, group_id=self._group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed")

    async def _consume(self, stop: asyncio.Event) -> None:
        consumer = self._new_consumer()
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all")
        try:
            async with asyncio.timeout(self._kafka_timeout):
                await consumer.start()
            await start_producer(producer, self._kafka_timeout)
            watch = _Watch(asyncio.get_running_loop().time(), self._stuck_after)
            while not stop.is_set():
                async with asyncio.timeout(self._kafka_timeout):
                    batch = await consumer.getmany(timeout_ms=200,
                                                   max_records=self._max_records)
                if not batch:
                    await self._report_progress(consumer)
                    await self._check_moving(consumer, watch)
                    continue
                watch.moved(asyncio.get_running_loop().time())
                try:
                    received = await self._read(batch, producer)
                    await self._apply(received, producer)
                except Exception as exc:
                    # Away or a bug: the whole batch again, from its first offsets, later.
                    kind = failure_kind(exc)
                    (log.warning if kind == "dependency" else log.error)(
                        "consumer %s failed to apply a batch (%s: %s); again in %.1fs",
                        self._group_id, "dependency away" if kind == "dependency" else kind,
                        _described(exc), self._backoff.delay)
                    _rewind(consumer, batch)
                    await self._backoff.wait(stop)
                    continue
                async with asyncio.timeout(self._kafka_timeout):
                    await consumer.commit()
                self._backoff.succeeded()
                await self._report_progress(consumer)
        finally:
            await close_producer(producer, self._kafka_timeout)
            await self._close_consumer(consumer)

    async def _report_progress(self, consumer: AIOKafkaConsumer) -> None:
        """The events waiting behind the consumer's positions, against the partitions' ends
        asked of the broker now (so a report says: all written before it was made, and read,
        or not); -1 while that is not known."""
        now = asyncio.get_running_loop().time()
        if self._on_progress is None or now - self._progress_at < self._progress_every:
            return
        self._progress_at = now
        assigned = consumer.assignment()
        waiting = -1
        if assigned:
            try:
                async with asyncio.timeout(self._kafka_timeout):
                    ends = await consumer.end_offsets(list(assigned))
                    positions = {tp: await consumer.position(tp) for tp in assigned}
                waiting = sum(max(0, ends[tp] - positions[tp]) for tp in assigned)
            except (TimeoutError, KafkaError, AssertionError, KeyError) as exc:
                log.debug("consumer %s: progress unknown (%s)", self._group_id,
                          type(exc).__name__)
        try:
            await self._on_progress(waiting)
        except Exception as exc:  # a report is not worth a batch: the next one comes
            log.warning("consumer %s: progress not recorded (%s)", self._group_id,
                        _described(exc))

    async def _read(self, batch: dict[TopicPartition, list[Any]],
                    producer: AIOKafkaProducer) -> list[Received]:
        """The batch's events in order with their places; unreadable ones are dead letters."""
        received: list[Received] = []
        for messages in batch.values():
            for message in messages:
                for index, (raw, result) in enumerate(decode_message(message.value)):
                    if isinstance(result, UnknownEventType):
                        continue
                    if isinstance(result, ValueError):
                        await self._dead_letter(producer, str(result), message.topic,
                                                message.partition, message.offset,
                                                message.key, raw)
                        continue
                    received.append(Received(result[0], result[1], message.topic,
                                             message.partition, message.offset, message.key,
                                             raw, message.value, index))
        return received

    async def _apply(self, received: list[Received], producer: AIOKafkaProducer) -> None:
        """All at once; when that fails on the data, one at a time, the unusable ones to the
        dead-letter topic. Anything else propagates: the batch must come again."""
        if not received:
            return
        try:
            await self._handle_in_time([r.event for r in received])
            self.applied += len(received)
            return
        except Exception as exc:
            if failure_kind(exc) != "data":
                raise
            log.warning("consumer %s: a batch of %d events failed on its data (%s); applying "
                        "them one at a time", self._group_id, len(received), _described(exc))
        for item in received:
            try:
                await self._handle_in_time([item.event])
            except Exception as exc:
                if failure_kind(exc) != "data":
                    raise
                await self._dead_letter(producer, unusable_reason(exc), item.topic,
                                        item.partition, item.offset, item.key,
                                        item.event_bytes())
            else:
                self.applied += 1

    async def _handle_in_time(self, events: list[tuple[Envelope, Payload]]) -> None:
        deadline = asyncio.timeout(self._handle_timeout)
        try:
            async with deadline:
                await self._handle(events)
        except Exception as exc:
            # Cancelled mid-transaction, a handler may end with another error (its rollback
            # refused): past the deadline, it is a timeout whatever it says.
            if deadline.expired() and not isinstance(exc, TimeoutError):
                raise TimeoutError(f"handler past its {self._handle_timeout:.0f}s deadline") \
                    from exc
            raise

    async def _dead_letter(self, producer: AIOKafkaProducer, reason: str, topic: str,
                           partition: int, offset: int, key: bytes | None, raw: bytes) -> None:
        async with asyncio.timeout(self._kafka_timeout):
            await producer.send_and_wait(self._dead_letter_topic, key=key, value=dead_letter(
                consumer=self._group_id, reason=reason, topic=topic, partition=partition,
                offset=offset, value=raw))
        self.dead_letters += 1
        log.warning("consumer %s: event at %s[%d]@%d sent to the dead-letter topic: %s",
                    self._group_id, topic, partition, offset, reason)

    async def _check_moving(self, consumer: AIOKafkaConsumer, watch: _Watch) -> None:
        """After a fetch that brought nothing: raise _Stuck when nothing came for stuck_after
        seconds while the assigned partitions have events waiting, or while the lag cannot be
        read or no partition is assigned (a group join that never ends, aiokafka #847): a new
        consumer is cheap, a stuck one is not. This assumes a group has no more members than
        partitions, so that each member has some."""
        now = asyncio.get_running_loop().time()
        if now < watch.next_check:
            return
        watch.next_check = now + watch.check_every
        assigned = bool(consumer.assignment())
        lag = await self._lag(consumer) if assigned else None
        if lag == 0:
            watch.moved(now)
            return
        idle = now - watch.last_moved
        if idle >= self._stuck_after:
            self.recreated += 1
            log.warning("consumer %s fetched nothing for %.0fs %s; closing it and starting a "
                        "new one", self._group_id, idle,
                        "with no partition assigned" if not assigned else
                        f"while {lag} events wait" if lag is not None else
                        "and the broker does not say its lag")
            raise _Stuck

    async def _lag(self, consumer: AIOKafkaConsumer) -> int | None:
        """Events waiting in the assigned partitions (end offset - position), None when the
        broker does not say in time."""
        partitions = list(consumer.assignment())
        try:
            async with asyncio.timeout(min(self._kafka_timeout, 10.0)):
                ends = await consumer.end_offsets(partitions)
                lag = 0
                for tp in partitions:
                    lag += max(0, ends[tp] - await consumer.position(tp))
                return lag
        except Exception as exc:
            log.info("consumer %s: lag unknown (%s)", self._group_id, _described(exc))
            return None

    async def _close_consumer(self, consumer: AIOKafkaConsumer) -> None:
        """stop() within the deadline; past it the consumer is abandoned (its group membership
        expires on the broker's session timeout)."""
        task = asyncio.ensure_future(consumer.stop())
        done, _ = await asyncio.wait({task}, timeout=self._kafka_timeout)
        if not done:
            task.cancel()
            log.warning("consumer %s did not stop within %.0fs; abandoned", self._group_id,
                        self._kafka_timeout)
        elif not task.cancelled() and (error := task.exception()) is not None:
            log.info("consumer %s stopped with %s", self._group_id, _described(error))


class _Watch:
    """When the consumer last moved: fetched events, or found nothing waiting."""

    def __init__(self, now: float, stuck_after: float):
        self.last_moved = now
        self.check_every = max(stuck_after / 4, 0.5)
        self.next_check = now + self.check_every

    def moved(self, now: float) -> None:
        self.last_moved = now


def _rewind(consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[Any]]) -> None:
    """Fetch the batch again: each partition from its first message in the batch."""
    for tp, messages in batch.items():
        if messages:
            with contextlib.suppress(Exception):  # no longer ours: its new owner reads it
                consumer.seek(tp, messages[0].offset)


def _described(exc: BaseException) -> str:
    """For a log line: the type and SQLSTATE or errno; the message only when it is ours."""
    if isinstance(exc, UnusableEvent):
        return f"UnusableEvent: {exc}"
    return describe_away(exc)
