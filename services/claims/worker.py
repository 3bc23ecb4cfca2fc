"""python -m services.claims.worker — learns what claims are judged by, from events only:
participants (segment, programmes, registration date, birth month, who registered them),
payments (months paid, on which day, the JHT and JP shares) and ended memberships."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

import asyncpg

from services.claims import store
from services.claims.settings import ClaimsSettings
from shared.consumer_progress import PARTICIPANT_CONSUMER, record_progress
from shared.db import create_pool, migrate
from shared.event_consumer import EventConsumer
from shared.events import Envelope, Payload
from shared.gc_tuning import tune_gc
from shared.logs import configure
from shared.topics import DEAD_LETTER, MEMBERSHIPS, PARTICIPANTS, topic_name

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


async def run(settings: ClaimsSettings) -> None:
    pool = await create_pool(settings.database_url)
    await migrate(pool, settings.migrations_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = claims_consumer(pool, bootstrap=settings.kafka_bootstrap_servers,
                               topic_prefix=settings.topic_prefix, handle_timeout=DB_DEADLINE)
    log.info("claims worker started")
    await consumer.run(stop)
    await pool.close()


def main() -> None:
    settings = ClaimsSettings()
    configure(settings.log_level)
    tune_gc()
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
