"""python -m services.contributions.worker — learns participants from registration events and
keeps the calendar: publishes the status changes that time alone causes (a month falling
overdue on the 16th, a BPU membership lapsing), through the outbox."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from services.contributions import handlers, store
from services.contributions.settings import ContributionsSettings
from shared.clock import Clock, clock_from
from shared.consumer_progress import PARTICIPANT_CONSUMER
from shared.event_consumer import EventConsumer
from shared.events import Envelope, Payload
from shared.retry import pause
from shared.topics import MEMBERSHIPS, PARTICIPANTS, topic_name
from shared.worker_process import Task, database_consumer, worker_main

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
        await pause(stop, interval)


def participant_consumer(pool: asyncpg.Pool, clock: Clock, *, bootstrap: str,
                         topic_prefix: str, **options: Any) -> EventConsumer:
    """The consumer that learns participants from registration events, and the memberships an
    approved claim ended from the claims service's membership events (options: the
    EventConsumer's deadlines)."""

    async def learn(conn: asyncpg.Connection, events: list[tuple[Envelope, Payload]]) -> None:
        await handlers.learn(store.PgContributionsUnit(conn, None), events, clock.today())

    return database_consumer(pool, group="ucj-contributions", topics=(PARTICIPANTS, MEMBERSHIPS),
                             bootstrap=bootstrap, topic_prefix=topic_prefix, apply=learn,
                             progress=PARTICIPANT_CONSUMER, **options)


def main() -> None:
    settings = ContributionsSettings()
    clock = clock_from(settings.clock_file)
    memberships = topic_name(MEMBERSHIPS, settings.topic_prefix)

    def tasks(pool: asyncpg.Pool) -> list[Task]:
        consumer = participant_consumer(pool, clock, bootstrap=settings.kafka_bootstrap_servers,
                                        topic_prefix=settings.topic_prefix)
        return [consumer.run, lambda stop: keep_calendar(pool, clock, memberships,
                                                         settings.scheduler_interval, stop)]

    worker_main("contributions worker", settings, settings.migrations_dir, tasks)


if __name__ == "__main__":
    main()
