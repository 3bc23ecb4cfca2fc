"""One way to run a service's worker process: settings, logging and GC once, a pool and its
migrations, the tasks until SIGTERM/SIGINT, the pool closed. Each task takes the stop event
and returns when it is set."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from shared.db import create_pool, migrate
from shared.gc_tuning import tune_gc
from shared.logs import configure
from shared.settings import ServiceSettings

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
