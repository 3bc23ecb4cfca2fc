"""The FastAPI app every HTTP service with a database starts from: a pool and its migrations,
API keys, the clock, problem errors, the service's routers, and /healthz (200 once started
and the database answers). `setup` adds what one service needs beyond that."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from shared.auth import KeyStore, api_keys_router
from shared.clock import Clock, clock_from
from shared.db import create_pool, migrate
from shared.problems import Problem, install_problem_handlers
from shared.settings import ServiceSettings

Setup = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def service_app(title: str, *, settings: ServiceSettings, migrations: Path,
                routers: list[APIRouter], scopes: list[str], clock: Clock | None = None,
                setup: Setup | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await create_pool(settings.database_url, min_size=settings.db_pool_min,
                                           max_size=settings.db_pool_max)
        try:
            await migrate(app.state.pool, migrations)
            app.state.keys = KeyStore(app.state.pool, settings.bootstrap_api_key)
            app.state.clock = clock or clock_from(settings.clock_file)
            async with setup(app) if setup else contextlib.nullcontext():
                app.state.ready = True
                try:
                    yield
                finally:
                    app.state.ready = False
        finally:
            await app.state.pool.close()

    app = FastAPI(title=title, version="1", lifespan=lifespan)
    install_problem_handlers(app)
    for router in routers:
        app.include_router(router)
    app.include_router(api_keys_router(scopes))

    @app.get("/healthz", tags=["health"])
    async def healthz(request: Request) -> JSONResponse:
        if not getattr(request.app.state, "ready", False):
            raise Problem(503, "Starting", "the service is not ready yet")
        await request.app.state.pool.fetchval("SELECT 1")
        return JSONResponse({"status": "ok"})

    return app
