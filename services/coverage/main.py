"""Run the coverage API: python -m services.coverage.main"""

from __future__ import annotations

from collections.abc import Callable
from types import FrameType

import uvicorn

from services.coverage.api import begin_shutdown, create_app
from services.coverage.settings import CoverageApiSettings
from shared.gc_tuning import tune_gc
from shared.logs import configure
from shared.serve import uvicorn_limits


class _Server(uvicorn.Server):
    """Ends the open event streams as soon as shutdown begins: uvicorn waits for every
    connection to finish before the application's own shutdown, and a stream never would."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]):
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._on_exit()


def main() -> None:
    settings = CoverageApiSettings()
    configure(settings.log_level)
    tune_gc()
    app = create_app(settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, loop="uvloop", access_log=False,
        log_config=None, log_level=settings.log_level.lower(), proxy_headers=False,
        **uvicorn_limits(),  # bounded request heads, keep-alive, graceful shutdown (10 s)
    )
    _Server(config, lambda: begin_shutdown(app)).run()


if __name__ == "__main__":
    main()
