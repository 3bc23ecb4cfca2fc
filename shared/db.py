"""PostgreSQL plumbing: a pool, and SQL migrations applied at start.

Each service owns its database; its migrations live in services/<name>/migrations/*.sql and run
after the shared ones (outbox, API keys) in file-name order, once each, under an advisory lock
so that two processes starting together do not race.

Every await on the database has a deadline: opening a connection (CONNECT_TIMEOUT), each
statement (COMMAND_TIMEOUT, unless a call passes its own `timeout=`) and waiting for a pooled
connection (ACQUIRE_TIMEOUT, on every `pool.acquire()`, also inside `pool.fetch()` and the
like). A deadline passed raises TimeoutError: shared.problems answers it with a 503.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import asyncpg

from shared.problems import dependency_away, describe_away
from shared.retry import pause

log = logging.getLogger(__name__)

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 7_320_001

CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 10.0
ACQUIRE_TIMEOUT = 10.0
# A migration may rewrite a large table, and may wait for another process's migrations.
MIGRATION_TIMEOUT = 3600.0


class BoundedPool(asyncpg.Pool):
    """An asyncpg pool whose `acquire()` waits at most `acquire_timeout` seconds unless told
    otherwise; Pool.fetch/fetchrow/fetchval/execute acquire through it too."""

    __slots__ = ("_acquire_timeout",)

    def __init__(self, *args: Any, acquire_timeout: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self._acquire_timeout if timeout is None else timeout)


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10,
                      wait_seconds: float | None = 30.0,
                      connect_timeout: float | None = None,
                      command_timeout: float | None = None,
                      acquire_timeout: float | None = None) -> asyncpg.Pool:
    """A pool with deadlines, in seconds (None: this module's CONNECT_TIMEOUT, COMMAND_TIMEOUT
    and ACQUIRE_TIMEOUT).

    With `wait_seconds`, it waits that long for the server to accept connections (it may still
    be starting), then raises. With None it returns at once without connecting, and connects
    on demand (it keeps no floor of `min_size` idle connections then). Either way a pool
    reconnects by itself: a connection found closed is replaced on the next acquire."""

    def new_pool(size: int) -> BoundedPool:
        return BoundedPool(
            url, init_size=size, min_size=size, max_size=max_size,
            acquire_timeout=ACQUIRE_TIMEOUT if acquire_timeout is None else acquire_timeout,
            timeout=CONNECT_TIMEOUT if connect_timeout is None else connect_timeout,
            command_timeout=COMMAND_TIMEOUT if command_timeout is None else command_timeout,
            reset=_end_open_transaction,
            max_queries=50_000, max_inactive_connection_lifetime=300.0,
            loop=None, connection_class=asyncpg.Connection, record_class=asyncpg.Record)

    if wait_seconds is None:
        return await new_pool(0)
    deadline = asyncio.get_running_loop().time() + wait_seconds
    said = False
    while True:
        try:
            return await new_pool(min_size)
        except Exception as exc:
            if not dependency_away(exc) or asyncio.get_running_loop().time() > deadline:
                raise
            if not said:
                log.info("waiting up to %.0fs for the database (%s)", wait_seconds,
                         describe_away(exc))
                said = True
            await pause(None, 0.5)


async def _end_open_transaction(conn: asyncpg.Connection) -> None:
    """What a pooled connection needs on release here. asyncpg's default reset (unlock all
    advisory locks, CLOSE ALL, UNLISTEN *, RESET ALL) costs a round trip per request, and none
    of it applies: pooled connections never LISTEN, lock or change session settings."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def migrate(pool: asyncpg.Pool, *service_dirs: Path) -> list[str]:
    """Apply the shared migrations, then each service's, once each; return the names applied."""
    files = sorted(SHARED_MIGRATIONS.glob("*.sql"))
    for directory in service_dirs:
        files += sorted(directory.glob("*.sql"))
    applied: list[str] = []
    long = MIGRATION_TIMEOUT
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK, timeout=long)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for path in files:
                name = f"{path.parent.parent.name}/{path.name}"
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text(), timeout=long)
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                applied.append(name)
                log.info("applied migration %s", name)
        finally:
            if not conn.is_closed():
                await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied
