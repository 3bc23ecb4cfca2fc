"""Fixtures for tests that run one service in-process against the real broker and database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

BOOTSTRAP_KEY = "test-bootstrap-key"
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


async def asgi_client(app) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, with its lifespan (pool, migrations) running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


async def read_topic(bootstrap: str, topic: str, *, expect: int, wait_s: float = 20.0,
                     partitions: int = 12) -> list:
    """Every message of a topic from the start, waiting until at least `expect` arrived."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        messages: list = []
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for chunk in batch.values():
                messages.extend(chunk)
            if len(messages) >= expect and not batch:
                break
        return messages
    finally:
        await consumer.stop()


@pytest.fixture
def auth() -> dict[str, str]:
    return dict(AUTH)
