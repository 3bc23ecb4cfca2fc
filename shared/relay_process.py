"""The outbox relay as a process of its own: python -m <service>.relay runs `run_relay`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from shared.kafka import idempotent_producer
from shared.logs import configure
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings

log = logging.getLogger("ucj.relay")


class RunningRelay:
    def __init__(self, task: asyncio.Task, stop: asyncio.Event, producer):
        self._task, self._stop, self._producer = task, stop, producer

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(self._task, 10)
        await self._producer.stop()


async def start_relay(settings: ServiceSettings, client_id: str) -> RunningRelay:
    producer = idempotent_producer(settings.kafka_bootstrap_servers, client_id=client_id)
    while True:
        try:
            await producer.start()
            break
        except Exception as exc:  # the broker may still be starting
            log.warning("broker not reachable yet (%s); retrying", type(exc).__name__)
            await asyncio.sleep(1.0)
    stop = asyncio.Event()
    relay = OutboxRelay(settings.database_url, producer)
    return RunningRelay(asyncio.create_task(relay.run(stop)), stop, producer)


def run_relay(settings: ServiceSettings, client_id: str) -> None:
    configure(settings.log_level)

    async def main() -> None:
        running = await start_relay(settings, client_id)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        log.info("outbox relay started for %s", client_id)
        await done.wait()
        await running.stop()

    asyncio.run(main())
