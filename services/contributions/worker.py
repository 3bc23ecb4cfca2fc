"""python -m services.contributions.worker — learns participants from registration events and
keeps the calendar: publishes the status changes that time alone causes (a month falling
overdue on the 16th, a BPU membership lapsing), through the outbox."""

from __future__ import annotations

import asyncio
import logging
import signal

from services.contributions import store
from services.contributions.settings import ContributionsSettings
from shared.clock import Clock, clock_from
from shared.db import create_pool, migrate
from shared.event_consumer import EventConsumer
from shared.logs import configure
from shared.topics import DEAD_LETTER, MEMBERSHIPS, PARTICIPANTS, topic_name

log = logging.getLogger("ucj.contributions.worker")


async def keep_calendar(pool, clock: Clock, topic: str, interval: float,
                        stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            checked = changed = 0
            while True:
                async with pool.acquire() as conn, conn.transaction():
                    n, c = await store.settle_due_members(conn, clock.today(), topic)
                checked, changed = checked + n, changed + c
                if n == 0:
                    break
            if checked:
                log.info("calendar: %d memberships checked, %d status changes", checked,
                         changed)
        except Exception as exc:  # the database may be away for a moment
            log.warning("calendar pass failed (%s); retrying", type(exc).__name__)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass


async def run(settings: ContributionsSettings) -> None:
    pool = await create_pool(settings.database_url)
    await migrate(pool, settings.migrations_dir)
    clock = clock_from(settings.clock_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def learn(events) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await store.apply_participant_events(conn, events, clock.today())

    consumer = EventConsumer(
        bootstrap=settings.kafka_bootstrap_servers,
        topics=[topic_name(PARTICIPANTS, settings.topic_prefix)],
        group_id=f"{settings.topic_prefix}ucj-contributions", handle=learn,
        dead_letter_topic=topic_name(DEAD_LETTER, settings.topic_prefix))
    log.info("contributions worker started")
    await asyncio.gather(
        consumer.run(stop),
        keep_calendar(pool, clock, topic_name(MEMBERSHIPS, settings.topic_prefix),
                      settings.scheduler_interval, stop))
    await pool.close()


def main() -> None:
    settings = ContributionsSettings()
    configure(settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
