"""One way to run a service's worker process: settings, logging and GC once, a pool and its
migrations, the tasks until SIGTERM/SIGINT, the pool closed. Each task takes the stop event
and returns when it is set."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg

from shared.consumer_progress import record_progress
from shared.db import create_pool, migrate
from shared.event_consumer import EventConsumer
from shared.events import Envelope, Payload
from shared.gc_tuning import tune_gc
from shared.logs import configure
from shared.settings import ServiceSettings
from shared.topics import DEAD_LETTER, TopicSpec, topic_name

log = logging.getLogger(__name__)

Task = Callable[[asyncio.Event], Awaitable[None]]


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (call it inside the running loop)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_worker(name: str, settings: ServiceSettings, migrations: Path,
                     tasks: Callable[[asyncpg.Pool], list[Task]]) -> None:
    pool = await create_pool(settings.database_url)
    try:
        await migrate(pool, migrations)
        stop = stop_on_signals()
        log.info("%s started", name)
        await asyncio.gather(*(task(stop) for task in tasks(pool)))
    finally:
        await pool.close()


def worker_main(name: str, settings: ServiceSettings, migrations: Path,
                tasks: Callable[[asyncpg.Pool], list[Task]]) -> None:
    """The `__main__` of a worker process."""
    configure(settings.log_level)
    tune_gc()
    asyncio.run(run_worker(name, settings, migrations, tasks))


DB_DEADLINE = 60.0  # the most one batch of events (its transaction) may take


def database_consumer(pool: asyncpg.Pool, *, group: str, topics: Sequence[TopicSpec],
                      bootstrap: str, topic_prefix: str,
                      apply: Callable[[asyncpg.Connection, list[tuple[Envelope, Payload]]],
                                      Awaitable[object]],
                      progress: str | None = None, **options: Any) -> EventConsumer:
    """An event consumer that applies each batch in one transaction of the service's database
    (`apply(conn, events)`), dead-letters what cannot be applied, and, with `progress`, records
    under that name how many events wait (shared/consumer_progress.py: not-yet-known).
    `options`: the EventConsumer's deadlines."""

    async def handle(events: list[tuple[Envelope, Payload]]) -> None:
        async with pool.acquire(timeout=DB_DEADLINE) as conn, conn.transaction():
            await apply(conn, events)

    async def report(waiting: int) -> None:
        async with pool.acquire(timeout=DB_DEADLINE) as conn:
            await record_progress(conn, progress or "", waiting)

    options.setdefault("handle_timeout", DB_DEADLINE)
    return EventConsumer(
        bootstrap=bootstrap, topics=[topic_name(t, topic_prefix) for t in topics],
        group_id=f"{topic_prefix}{group}", handle=handle,
        dead_letter_topic=topic_name(DEAD_LETTER, topic_prefix),
        on_progress=report if progress else None, **options)
