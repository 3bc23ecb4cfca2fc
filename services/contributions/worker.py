"""python -m services.contributions.worker — learns participants from registration events and
keeps the calendar: publishes the status changes that time alone causes (a month falling
overdue on the 16th, a BPU membership lapsing), through the outbox."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from services.contributions import handlers, store
from services.contributions.settings import ContributionsSettings
from shared.clock import Clock, clock_from
from shared.consumer_progress import PARTICIPANT_CONSUMER, record_progress
from shared.db import create_pool, migrate
from shared.event_consumer import EventConsumer
from shared.events import Envelope, Payload
from shared.gc_tuning import tune_gc
from shared.logs import configure
from shared.topics import DEAD_LETTER, MEMBERSHIPS, PARTICIPANTS, topic_name

log = logging.getLogger("ucj.contributions.worker")

# The most one calendar batch (its transaction) or one batch of participant events may take.
DB_DEADLINE = 60.0
CALENDAR_BATCH = handlers.CALENDAR_BATCH


async def keep_calendar(pool, clock: Clock, topic: str, interval: float,
                        stop: asyncio.Event, *, deadline: float = DB_DEADLINE) -> None:
    while not stop.is_set():
        try:
            checked = changed = 0
            while not stop.is_set():
                async with asyncio.timeout(deadline):
                    async with pool.acquire(timeout=deadline) as conn, conn.transaction():
                        n, c = await handlers.settle_due_members(
                            store.PgContributionsUnit(conn, topic), clock.today(),
                            limit=CALENDAR_BATCH)
                checked, changed = checked + n, changed + c
                if n < CALENDAR_BATCH:  # all due members seen (a full batch: maybe more)
                    break
            if checked:
                log.info("calendar: %d memberships checked, %d status changes", checked,
                         changed)
        except Exception as exc:  # the database may be away for a moment
            log.warning("calendar pass failed (%s); again in %.0fs", type(exc).__name__,
                        interval)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass


def participant_consumer(pool, clock: Clock, *, bootstrap: str, topic_prefix: str,
                         **options: Any) -> EventConsumer:
    """The consumer that learns participants from registration events, and the memberships an
    approved claim ended from the claims service's membership events (options: the
    EventConsumer's deadlines)."""

    async def learn(events: list[tuple[Envelope, Payload]]) -> None:
        async with pool.acquire(timeout=DB_DEADLINE) as conn, conn.transaction():
            await handlers.learn(store.PgContributionsUnit(conn, None), events, clock.today())

    async def report(waiting: int) -> None:
        async with pool.acquire(timeout=DB_DEADLINE) as conn:
            await record_progress(conn, PARTICIPANT_CONSUMER, waiting)

    return EventConsumer(
        bootstrap=bootstrap,
        topics=[topic_name(PARTICIPANTS, topic_prefix), topic_name(MEMBERSHIPS, topic_prefix)],
        group_id=f"{topic_prefix}ucj-contributions", handle=learn,
        dead_letter_topic=topic_name(DEAD_LETTER, topic_prefix), on_progress=report,
        **options)


async def run(settings: ContributionsSettings) -> None:
    pool = await create_pool(settings.database_url)
    await migrate(pool, settings.migrations_dir)
    clock = clock_from(settings.clock_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = participant_consumer(pool, clock, bootstrap=settings.kafka_bootstrap_servers,
                                    topic_prefix=settings.topic_prefix,
                                    handle_timeout=DB_DEADLINE)
    log.info("contributions worker started")
    await asyncio.gather(
        consumer.run(stop),
        keep_calendar(pool, clock, topic_name(MEMBERSHIPS, settings.topic_prefix),
                      settings.scheduler_interval, stop))
    await pool.close()


def main() -> None:
    settings = ContributionsSettings()
    configure(settings.log_level)
    tune_gc()
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
