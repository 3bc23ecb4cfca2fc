"""faust discards what a fetch returned while its flow is stopped (a rebalance) and seeks back
"to the committed offsets"; a partition nobody has committed yet must go back to its beginning,
not stay past the discarded records (services/coverage/faust_transport.py)."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.coverage.faust_transport import seek_to_committed_or_beginning
from shared.topics import MEMBERSHIPS, topic_name

pytestmark = pytest.mark.integration


async def _consumed_without_commit(infra, topic: str, group: str) -> AIOKafkaConsumer:
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap)
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(topic, f"payment {n}".encode(), partition=3)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=infra.bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    tp = TopicPartition(topic, 3)
    read = 0
    while read < 5:
        batch = await consumer.getmany(tp, timeout_ms=2000)
        read += len(batch.get(tp, []))
    assert await consumer.position(tp) == 5
    return consumer


async def test_a_partition_never_committed_goes_back_to_its_beginning(infra, prefix):
    topic = topic_name(MEMBERSHIPS, prefix)
    consumer = await _consumed_without_commit(infra, topic, f"{prefix}seek-fixed")
    try:
        await seek_to_committed_or_beginning(consumer)
        assert await consumer.position(TopicPartition(topic, 3)) == 0
    finally:
        await consumer.stop()


async def test_aiokafka_alone_stays_past_what_it_returned(infra, prefix):
    """Why the fix exists: with no committed offset aiokafka's seek does not move."""
    topic = topic_name(MEMBERSHIPS, prefix)
    consumer = await _consumed_without_commit(infra, topic, f"{prefix}seek-plain")
    try:
        await consumer.seek_to_committed()
        assert await consumer.position(TopicPartition(topic, 3)) == 5
    finally:
        await consumer.stop()
