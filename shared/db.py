"""PostgreSQL plumbing: a pool, and SQL migrations applied at start.

Each service owns its database; its migrations live in services/<name>/migrations/*.sql and run
after the shared ones (outbox, API keys) in file-name order, once each, under an advisory lock
so that two processes starting together do not race.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

SHARED_MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 7_320_001


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 10,
                      wait_seconds: float = 30.0) -> asyncpg.Pool:
    """A pool, waiting for the server to accept connections (it may still be starting)."""
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        try:
            return await asyncpg.create_pool(url, min_size=min_size, max_size=max_size,
                                             reset=_end_open_transaction)
        except (OSError, asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError):
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)


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
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
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
                    await conn.execute(path.read_text())
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                applied.append(name)
                log.info("applied migration %s", name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied
