"""The outbox relay as a process of its own: python -m <service>.relay runs `run_relay`.

A relay process that stalls (the leader publishes nothing of a waiting backlog for
UCJ_RELAY_STALL_SECONDS) logs why and exits with EXIT_STALLED, so that its supervisor (the
local stack's, or docker compose's `restart: unless-stopped`) starts it afresh. A relay
embedded in an HTTP process starts itself afresh instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import threading
import time

from pydantic import AliasChoices, Field

from shared.kafka import idempotent_producer
from shared.logs import configure
from shared.outbox import OutboxRelay, RelayStalled, RelayTimings
from shared.settings import ServiceSettings

log = logging.getLogger("ucj.relay")

EXIT_STALLED = 3
# The watchdog thread ends the process this long after a stall that the event loop has not
# acted on (a blocked loop cannot).
_WATCHDOG_GRACE_SECONDS = 15.0


class RelaySettings(ServiceSettings):
    """A relay process's settings: its service's database, the broker, and the deadlines."""

    relay_stall_seconds: float = Field(
        default=60.0, gt=0, validation_alias=AliasChoices("UCJ_RELAY_STALL_SECONDS"))
    relay_ack_seconds: float = Field(
        default=15.0, gt=0, validation_alias=AliasChoices("UCJ_RELAY_ACK_SECONDS"))
    relay_database_seconds: float = Field(
        default=10.0, gt=0, validation_alias=AliasChoices("UCJ_RELAY_DATABASE_SECONDS"))
    relay_report_seconds: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("UCJ_RELAY_REPORT_SECONDS"))

    def timings(self) -> RelayTimings:
        return RelayTimings(ack=self.relay_ack_seconds, database=self.relay_database_seconds,
                            report=self.relay_report_seconds, stall=self.relay_stall_seconds)


class RunningRelay:
    def __init__(self, relay: OutboxRelay, task: asyncio.Task, stop: asyncio.Event):
        self.relay, self.task, self._stop = relay, task, stop

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self.task, 15)


async def start_relay(settings: ServiceSettings, client_id: str, *,
                      restart_on_stall: bool = True) -> RunningRelay:
    """Run an outbox relay as a task of this process. Deadlines come from `settings` when it
    is a RelaySettings, else the defaults. A stalled relay starts afresh (new connection, new
    producer) when `restart_on_stall`; otherwise the task ends with RelayStalled."""
    timings = settings.timings() if isinstance(settings, RelaySettings) else RelayTimings()
    factory = functools.partial(idempotent_producer, settings.kafka_bootstrap_servers,
                                client_id=client_id)
    stop = asyncio.Event()
    relay = OutboxRelay(settings.database_url, producer_factory=factory, timings=timings)

    async def keep_running() -> None:
        nonlocal relay
        while True:
            try:
                return await relay.run(stop)
            except RelayStalled as stalled:
                if not restart_on_stall:
                    raise
                log.error("outbox relay stalled: %s; starting it afresh", stalled)
                relay = OutboxRelay(settings.database_url, producer_factory=factory,
                                    timings=timings)
                running.relay = relay

    running = RunningRelay(relay, asyncio.create_task(keep_running()), stop)
    return running


def run_relay(settings: ServiceSettings, client_id: str) -> None:
    """The relay process: until SIGTERM/SIGINT; exits EXIT_STALLED when the relay stalls."""
    configure(settings.log_level)

    async def main() -> None:
        running = await start_relay(settings, client_id, restart_on_stall=False)
        _start_watchdog(running)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        log.info("outbox relay started for %s", client_id)
        stopping = asyncio.create_task(done.wait())
        await asyncio.wait({stopping, running.task}, return_when=asyncio.FIRST_COMPLETED)
        if running.task.done():
            exc = None if running.task.cancelled() else running.task.exception()
            if isinstance(exc, RelayStalled):
                _exit(EXIT_STALLED, f"outbox relay stalled: {exc}; exiting so that it is "
                                    "started afresh")
            log.error("outbox relay failed", exc_info=exc)
            _exit(1, "outbox relay failed; exiting")
        stopping.cancel()
        await running.stop()

    asyncio.run(main())


def _start_watchdog(running: RunningRelay) -> None:
    """A thread that ends the process when a stall is not acted on, even if the event loop
    is blocked."""
    if running.relay.timings.stall is None:
        return

    def watch() -> None:
        since: float | None = None
        while True:
            time.sleep(1.0)
            reason = running.relay.stalled()
            if reason is None:
                since = None
            elif since is None:
                since = time.monotonic()
            elif time.monotonic() - since > _WATCHDOG_GRACE_SECONDS:
                _exit(EXIT_STALLED, f"outbox relay stalled and did not stop: {reason}")

    threading.Thread(target=watch, name="relay-watchdog", daemon=True).start()


def _exit(code: int, message: str) -> None:
    """Log and end the process at once: nothing is lost (the rows wait in the outbox), and a
    stuck task must not keep it from exiting."""
    log.error(message)
    logging.shutdown()
    os._exit(code)
