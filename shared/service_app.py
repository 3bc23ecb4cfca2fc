"""The FastAPI app every HTTP service with a database starts from: problem errors, its routers,
API keys, and /healthz (200 once the lifespan has set `app.state.ready` and the database
answers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from shared.auth import api_keys_router
from shared.problems import Problem, install_problem_handlers


def service_app(title: str, *, lifespan: Callable[[FastAPI], Any], routers: list[APIRouter],
                scopes: list[str]) -> FastAPI:
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
