"""A service that has no endpoints of its own yet: health, OpenAPI and problem errors only.

Contributions and claims start as this, so the stack already runs all four services; their
issues replace it with the real thing.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from shared.problems import install_problem_handlers


def placeholder_app(title: str) -> FastAPI:
    app = FastAPI(title=title, version="0")
    install_problem_handlers(app)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "dependencies": {}})

    return app
