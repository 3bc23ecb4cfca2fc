"""aiokafka producers configured the one way the project publishes, and started and stopped
within deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

log = logging.getLogger(__name__)


def idempotent_producer(bootstrap_servers: str, *, client_id: str) -> AIOKafkaProducer:
    """acks=all with idempotence: no duplicates from retries, one partition's order kept.

    Keys are hashed with murmur2 like the Java client, so an aggregate id always maps to the
    same partition.
    """
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
    )


async def start_producer(producer: AIOKafkaProducer, seconds: float) -> None:
    """`producer.start()` within `seconds`; on failure the producer is closed (within the same
    bound) and the error raised (TimeoutError when the deadline passed)."""
    try:
        async with asyncio.timeout(seconds):
            await producer.start()
    except BaseException:
        await close_producer(producer, min(seconds, 5.0))
        raise


async def close_producer(producer: AIOKafkaProducer, seconds: float) -> None:
    """Stop a producer, waiting at most `seconds` for it to flush. Past that, abandon
    it: what it still holds fails (nobody waits for it any more) and its connections close.

    aiokafka's `stop()` waits for every pending batch without a deadline, so a producer whose
    broker never answers would never finish stopping."""
    try:
        async with asyncio.timeout(seconds):
            await producer.stop()
        return
    except Exception as exc:
        log.warning("producer did not stop within %.0fs (%s); abandoning it", seconds,
                    type(exc).__name__)
    # Reaching into aiokafka's internals is the only way to drop a producer that never flushes.
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    if sender is not None and task is not None and not task.done():
        # Its own failure handler trips over the idempotent (non-transactional) state; the
        # batches are failed below instead.
        task.remove_done_callback(sender._fail_all)
        task.add_done_callback(_retrieve)
        task.cancel()
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is not None:
        accumulator.fail_all(KafkaTimeoutError("producer abandoned"))
    with contextlib.suppress(Exception):
        async with asyncio.timeout(seconds):
            await producer.client.close()


def _retrieve(task: asyncio.Task) -> None:
    """Consume an abandoned task's outcome, so that asyncio does not report it as lost."""
    if not task.cancelled():
        task.exception()
