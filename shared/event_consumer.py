"""A consumer group that applies events in batches, then commits their offsets.

Delivery is at least once: after a crash the last batch comes again, so a handler must be
idempotent (it applies an event only when its sequence is newer than what it has stored).
Malformed messages go to the dead-letter topic with the reason; unknown event types are
skipped (a newer producer may publish types this consumer does not need).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.dead_letter import dead_letter
from shared.events import Envelope, Payload, UnknownEventType, decode_message

log = logging.getLogger(__name__)

Handler = Callable[[list[tuple[Envelope, Payload]]], Awaitable[None]]


class EventConsumer:
    def __init__(self, *, bootstrap: str, topics: list[str], group_id: str, handle: Handler,
                 dead_letter_topic: str, max_records: int = 2000):
        self._bootstrap = bootstrap
        self._topics = topics
        self._group_id = group_id
        self._handle = handle
        self._dead_letter_topic = dead_letter_topic
        self._max_records = max_records
        self.applied = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._consume(stop)
            except KafkaError as exc:
                log.warning("consumer %s lost the broker (%s); retrying", self._group_id,
                            type(exc).__name__)
                await asyncio.sleep(1.0)
            except Exception as exc:  # e.g. the database is away: the batch comes again
                log.warning("consumer %s failed to apply a batch (%s); retrying",
                            self._group_id, type(exc).__name__)
                await asyncio.sleep(1.0)

    async def _consume(self, stop: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(
            *self._topics, bootstrap_servers=self._bootstrap, group_id=self._group_id,
            enable_auto_commit=False, auto_offset_reset="earliest",
            isolation_level="read_committed")
        producer = AIOKafkaProducer(bootstrap_servers=self._bootstrap, acks="all")
        await consumer.start()
        await producer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=self._max_records)
                if not batch:
                    continue
                events: list[tuple[Envelope, Payload]] = []
                for messages in batch.values():
                    for message in messages:
                        for raw, result in decode_message(message.value):
                            if isinstance(result, UnknownEventType):
                                continue
                            if isinstance(result, ValueError):
                                await producer.send_and_wait(
                                    self._dead_letter_topic, key=message.key, value=dead_letter(
                                        consumer=self._group_id, reason=str(result),
                                        topic=message.topic, partition=message.partition,
                                        offset=message.offset, value=raw))
                                log.warning("malformed event at %s[%d]@%d sent to the "
                                            "dead-letter topic", message.topic,
                                            message.partition, message.offset)
                                continue
                            events.append(result)
                if events:
                    await self._handle(events)
                    self.applied += len(events)
                await consumer.commit()
        finally:
            with contextlib.suppress(Exception):
                await producer.stop()
            with contextlib.suppress(Exception):
                await consumer.stop()
