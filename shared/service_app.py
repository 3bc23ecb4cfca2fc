"""The FastAPI app every HTTP service with a database starts from: a pool and its migrations,
API keys, the clock, problem errors, the service's routers, and /healthz. `setup` adds what
one service needs beyond that.

The service starts whether or not its database answers: a task waits for the database (with a
log line while it is away), applies the migrations, enters `setup`, and then the service is
ready. Until then every request but /healthz and the API docs is a 503 with Retry-After. The
lifespan waits up to START_WAIT_SECONDS for that, so that an ordinary start is ready when the
server starts listening. Later outages are 503s too (shared.problems), and the pool reconnects
by itself once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.auth import KeyStore, api_keys_router
from shared.clock import Clock, clock_from
from shared.db import create_pool, migrate
from shared.key_directory import key_directory
from shared.problems import (
    RETRY_AFTER_SECONDS,
    Problem,
    dependency_away,
    dependency_away_problem,
    describe_away,
    install_problem_handlers,
    problem_response,
)
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

Setup = Callable[[FastAPI], AbstractAsyncContextManager[None]]

START_WAIT_SECONDS = 5.0
HEALTH_TIMEOUT_SECONDS = 2.0
# While the database is away at start: one log line now, then one every so often.
_WAITING_LOG_EVERY = 30.0
# Answered also before the service is ready.
_ALWAYS_OPEN = frozenset({"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})


def service_app(title: str, *, settings: ServiceSettings, migrations: Path,
                routers: list[APIRouter], clock: Clock | None = None,
                setup: Setup | None = None, name: str | None = None) -> FastAPI:
    """`name` (default: the title after its dash) names the service in messages: "the
    registration database does not answer"."""
    label = name or title.rpartition('—')[2].strip()
    database = f"the {label} database"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.ready = app.state.start_failed = False
        # No connection yet: the database may be away; the pool connects on first use.
        pool = app.state.pool = await create_pool(
            settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max,
            wait_seconds=None)
        app.state.keys = KeyStore(pool, settings.bootstrap_api_key)
        app.state.clock = clock or clock_from(settings.clock_file)
        ready, stop, serving = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def start_and_run() -> None:
            try:
                await _migrate_when_database_answers(pool, migrations, database)
                async with key_directory(app, pool, settings, client_id=f"ucj-keys-{label}"), \
                        setup(app) if setup else contextlib.nullcontext():
                    app.state.ready = True
                    ready.set()
                    try:
                        await stop.wait()
                    finally:
                        app.state.ready = False
            except Exception:
                if serving.is_set():  # the lifespan no longer waits on us: say it here
                    app.state.start_failed = not ready.is_set()
                    log.exception("%s service failed", database.removesuffix(" database"))
                raise

        task = asyncio.create_task(start_and_run(), name=f"start {database}")
        try:
            await _wait_until_ready(task, ready, database)
            serving.set()
            yield
        finally:
            serving.set()
            app.state.ready = False
            stop.set()
            if not ready.is_set():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):  # logged above
                await task
            try:
                await asyncio.wait_for(pool.close(), 10)
            except TimeoutError:
                pool.terminate()

    app = FastAPI(title=title, version="1", lifespan=lifespan)
    app.add_middleware(_UntilReady, database=database)
    install_problem_handlers(app, dependency=database)  # its RequestGuard goes in front
    for router in routers:
        app.include_router(router)
    app.include_router(api_keys_router())

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> JSONResponse:
        """200 when the service is ready and its database answers; otherwise 503 saying which
        dependency is away."""
        state = request.app.state
        answers = await _database_answers(getattr(state, "pool", None))
        dependencies = {"database": "ok" if answers else "away"}
        if not answers:
            return problem_response(dependency_away_problem(
                database, extra={"dependencies": dependencies}))
        if not getattr(state, "ready", False):
            detail = ("the service could not start; see its log" if state.start_failed
                      else "the service is starting (applying its migrations)")
            return problem_response(Problem(503, "Service unavailable", detail,
                                            retry_after=RETRY_AFTER_SECONDS,
                                            extra={"dependencies": dependencies}))
        return JSONResponse({"status": "ok", "dependencies": dependencies})

    return app


async def _database_answers(pool: asyncpg.Pool | None) -> bool:
    if pool is None:
        return False
    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
            await pool.fetchval("SELECT 1")
        return True
    except Exception as exc:
        if not dependency_away(exc):  # e.g. a rejected password: away all the same, but say it
            log.warning("health check: the database refuses (%s)", describe_away(exc))
        return False


async def _migrate_when_database_answers(pool: asyncpg.Pool, migrations: Path,
                                         database: str) -> None:
    said_at: float | None = None
    while True:
        try:
            await migrate(pool, migrations)
        except Exception as exc:
            if not dependency_away(exc):
                raise  # a bug (a migration failing): the service does not start
            now = time.monotonic()
            if said_at is None or now - said_at >= _WAITING_LOG_EVERY:
                log.warning("%s does not answer (%s); waiting for it (/healthz answers 503 "
                            "until it does)", database, describe_away(exc))
                said_at = now
            await asyncio.sleep(1.0)
            continue
        if said_at is not None:
            log.info("%s answers; migrations applied", database)
        return


async def _wait_until_ready(task: asyncio.Task, ready: asyncio.Event, database: str) -> None:
    """Until the service is ready, for START_WAIT_SECONDS at most; a failure to start (not
    an outage) is raised here, so the process stops with it."""
    waiter = asyncio.ensure_future(ready.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=START_WAIT_SECONDS,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        task.result()
    if not ready.is_set():
        log.warning("not ready after %gs: serving anyway, 503 until %s answers and the "
                    "migrations are applied", START_WAIT_SECONDS, database)


class _UntilReady:
    """Until the service is ready, a 503 for every request but /healthz and the API docs:
    the routes need the migrations applied."""

    def __init__(self, app: ASGIApp, *, database: str):
        self.app = app
        self.problem = Problem(503, "Service unavailable",
                               f"the service is not ready (waiting for {database} or its "
                               "migrations); try again shortly", retry_after=RETRY_AFTER_SECONDS)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and not getattr(scope["app"].state, "ready", False)
                and scope["path"] not in _ALWAYS_OPEN):
            await problem_response(self.problem)(scope, receive, send)
            return
        await self.app(scope, receive, send)
