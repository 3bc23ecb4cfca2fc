"""python -m services.claims.worker — learns what claims are judged by, from events only:
participants (segment, programmes, registration date, birth month, who registered them),
payments (months paid, on which day, the JHT and JP shares) and ended memberships."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from services.claims import store
from services.claims.settings import ClaimsSettings
from shared.consumer_progress import PARTICIPANT_CONSUMER, record_progress
from shared.event_consumer import EventConsumer
from shared.events import Envelope, Payload
from shared.topics import DEAD_LETTER, MEMBERSHIPS, PARTICIPANTS, topic_name
from shared.worker_process import worker_main

log = logging.getLogger("ucj.claims.worker")

DB_DEADLINE = 60.0


def claims_consumer(pool: asyncpg.Pool, *, bootstrap: str, topic_prefix: str,
                    **options: Any) -> EventConsumer:
    async def learn(events: list[tuple[Envelope, Payload]]) -> None:
        async with pool.acquire(timeout=DB_DEADLINE) as conn, conn.transaction():
            await store.learn(conn, events)

    async def report(waiting: int) -> None:
        async with pool.acquire(timeout=DB_DEADLINE) as conn:
            await record_progress(conn, PARTICIPANT_CONSUMER, waiting)

    return EventConsumer(
        bootstrap=bootstrap,
        topics=[topic_name(PARTICIPANTS, topic_prefix), topic_name(MEMBERSHIPS, topic_prefix)],
        group_id=f"{topic_prefix}ucj-claims", handle=learn,
        dead_letter_topic=topic_name(DEAD_LETTER, topic_prefix), on_progress=report, **options)


def main() -> None:
    settings = ClaimsSettings()
    worker_main("claims worker", settings, settings.migrations_dir, lambda pool: [
        claims_consumer(pool, bootstrap=settings.kafka_bootstrap_servers,
                        topic_prefix=settings.topic_prefix, handle_timeout=DB_DEADLINE).run])


if __name__ == "__main__":
    main()
