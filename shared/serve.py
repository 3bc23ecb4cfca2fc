"""Run a FastAPI app with uvicorn the one way every service does."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from shared.gc_tuning import tune_gc
from shared.logs import configure
from shared.settings import ServiceSettings


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    configure(settings.log_level)
    tune_gc()
    uvicorn.run(app, host=settings.host, port=settings.port, loop="uvloop", http="httptools",
                access_log=False, log_level=settings.log_level.lower())
