"""The coverage worker: faust-streaming reads the participant and membership topics; every batch
is folded into the coverage database in one PostgreSQL transaction (the tracking-record
pattern): the batch's partitions locked, the participants' facts read and rewritten, the
village counters moved and the source offsets recorded, together or not at all.

Why (services/coverage/README.md has the evidence): the facts that decide "seen before" and
the facts a new owner of a partition starts from must be the same durable state, and a source
offset may be committed only after the state it produced is durable. Here both hold by
construction: the facts live in PostgreSQL, shared by every worker, and faust commits an offset
only for events acked after their transaction committed (`take_events` acks a batch when the
loop asks for the next one). A batch replayed after a crash or a move finds its events' sequences
already stored and counts nothing; two workers briefly holding one partition during a rebalance
take turns on its lock row. Nothing is rebuilt on a rebalance: a new owner just reads on.

Counters are kept per (source partition, village) so that two workers never write the same row;
the coverage API adds partitions and villages up to every level, following the partitions'
versions (counting_store.counter_changes).

Run: python -m services.coverage.worker
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import faust
import mode.loop

from services.coverage.counting import SourceEvent
from services.coverage.counting_store import (
    SourcePosition,
    ensure_partitions,
    fold_in_transaction,
)
from services.coverage.faust_transport import App
from services.coverage.settings import WorkerSettings
from shared.db import create_pool, migrate
from shared.dead_letter import dead_letter
from shared.events import UnknownEventType, decode_message, event_bytes_in
from shared.gc_tuning import tune_gc
from shared.logs import configure
from shared.problems import dependency_away, describe_away
from shared.retry import Backoff
from shared.topics import (
    COVERAGE_APP_ID,
    DEAD_LETTER,
    PARTICIPANT_PARTITIONS,
    SOURCE_TOPICS,
    topic_name,
)

log = logging.getLogger("ucj.coverage.worker")

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class _Chunk:
    events: list[SourceEvent] = field(default_factory=list)
    origins: list[tuple[Any, bytes, int]] = field(default_factory=list)  # message, bytes, index
    positions: dict[tuple[str, int], int] = field(default_factory=dict)  # next offsets


class Folder:
    """Turns batches of source messages into counting transactions, with retries; never lets
    a batch go (be acked) before its transaction committed."""

    def __init__(self, settings: WorkerSettings, send_dead_letter: Any):
        self._settings = settings
        self._send_dead_letter = send_dead_letter
        self._pool: asyncpg.Pool | None = None
        self.events_folded = 0
        self.batches = 0
        self.last_batch: float | None = None  # monotonic time the last batch was folded

    async def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            pool = await create_pool(self._settings.database_url, min_size=1, max_size=2,
                                     command_timeout=self._settings.transaction_timeout)
            await migrate(pool, MIGRATIONS)
            async with pool.acquire() as conn:
                await ensure_partitions(conn, PARTICIPANT_PARTITIONS)
            self._pool = pool
        return self._pool

    async def fold_messages(self, messages: list[Any]) -> None:
        """Decode and fold, in transactions of about `max_events_per_transaction` events, one
        after the other; then the dead letters of what could not be read or counted."""
        letters: list[tuple[Any, bytes, str]] = []
        for chunk in self._chunks(messages, letters):
            letters += await self._commit_chunk(chunk)
            self.events_folded += len(chunk.events)
        for message, raw, reason in letters:
            await self._send_dead_letter(message, raw, reason)
        self.batches += 1
        self.last_batch = time.monotonic()

    def _chunks(self, messages: list[Any], letters: list[tuple[Any, bytes, str]]
                ) -> Iterator[_Chunk]:
        """The messages' events in chunks, each with the source positions it completes; what
        cannot be decoded goes to `letters`."""
        chunk = _Chunk()
        for message in messages:
            for index, (raw, result) in enumerate(decode_message(message.value)):
                if isinstance(result, UnknownEventType):
                    continue  # a type this worker does not count (yet): not an error
                if isinstance(result, ValueError):
                    letters.append((message, raw, str(result)))
                    continue
                chunk.events.append(SourceEvent(message.partition, *result))
                chunk.origins.append((message, raw, index))
            key = (message.topic, message.partition)
            chunk.positions[key] = max(chunk.positions.get(key, 0), message.offset + 1)
            if len(chunk.events) >= self._settings.max_events_per_transaction:
                yield chunk
                chunk = _Chunk()
        if chunk.events or chunk.positions:
            yield chunk

    async def _commit_chunk(self, chunk: _Chunk) -> list[tuple[Any, bytes, str]]:
        """Fold one chunk; the dead letters of the events refused."""
        where = [SourcePosition(t, p, o) for (t, p), o in chunk.positions.items()]
        letters = []
        for i, reason in await self._commit(chunk.events, where):
            message, raw, index = chunk.origins[i]
            letters.append((message, raw or event_bytes_in(message.value, index), reason))
        return letters

    async def _commit(self, events: list[SourceEvent], positions: list[SourcePosition]
                      ) -> list[tuple[int, str]]:
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                pool = await self.pool()
                async with asyncio.timeout(self._settings.transaction_timeout):
                    async with pool.acquire() as conn, conn.transaction():
                        folded = await fold_in_transaction(conn, events, positions)
                return folded.refused
            except Exception as exc:
                # The database being down, restarting or too slow, or two writers of a
                # partition deadlocked: tried again, never acked. Anything else is a bug.
                if not (dependency_away(exc) or _retryable(exc)):
                    raise
                log.warning("counting transaction failed (%s); the batch is tried again in "
                            "%.1fs", describe_away(exc), backoff.delay)
            await backoff.wait()


def _retryable(exc: BaseException) -> bool:
    """Serialization failures and deadlocks (SQLSTATE class 40): the transaction may succeed
    when tried again."""
    return str(getattr(exc, "sqlstate", "") or "").startswith("40")


def create_app(settings: WorkerSettings) -> faust.App:
    prefix = settings.topic_prefix
    app = App(
        f"{prefix}{COVERAGE_APP_ID}",
        broker=[f"kafka://{h}" for h in settings.kafka_bootstrap_servers.split(",")],
        store="memory://",  # no faust tables: the state is in PostgreSQL
        datadir=str(settings.state_dir),
        topic_partitions=PARTICIPANT_PARTITIONS,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger_ms=10,
        web_port=settings.web_port,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        # Notice a dead worker in seconds, not the default minute: its partitions go to the
        # others (or to its restarted self) sooner.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
    )
    # Co-partitioned, keyed by participant: a worker owns the same partition of each.
    source_names = tuple(topic_name(spec, prefix) for spec in SOURCE_TOPICS)
    source = app.topic(*source_names, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(topic_name(DEAD_LETTER, prefix),
                             key_serializer="raw", value_serializer="raw")

    async def send_dead_letter(message: Any, raw: bytes, reason: str) -> None:
        sent = await dead_letters.send(key=message.key, value=dead_letter(
            consumer=app.conf.id, reason=reason, topic=message.topic,
            partition=message.partition, offset=message.offset, value=raw))
        await asyncio.wait_for(sent, settings.transaction_timeout)  # acked before our ack
        log.warning("event at %s[%d]@%d sent to the dead-letter topic: %s", message.topic,
                    message.partition, message.offset, reason[:200])

    folder = Folder(settings, send_dead_letter)
    app.folder = folder  # type: ignore[attr-defined]

    @app.agent(source, concurrency=1)
    async def fold(stream: Any) -> None:
        await folder.pool()
        # A batch is acked (and its offsets become committable) only when the loop asks for
        # the next one, after fold_messages returned: after its transaction committed.
        async for events in stream.take_events(settings.batch_messages, settings.batch_wait):
            try:
                await folder.fold_messages([e.message for e in events])
            except asyncio.CancelledError:
                raise
            except BaseException:
                # Not the database being away (that is retried inside): a bug. Leaving the
                # loop would ack the batch, so leave the process instead: nothing is acked,
                # and the batch comes again to whoever owns the partition next.
                log.exception("counting failed on a batch; exiting without acking it")
                logging.shutdown()
                os._exit(70)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        try:
            assigned = app.consumer.assignment()
        except Exception:  # the consumer is not started yet
            assigned = set()
        partitions = sorted({tp.partition for tp in assigned if tp.topic in source_names})
        if folder._pool is None:
            return web.json({"status": "starting", "partitions": partitions}, status=503)
        since = None if folder.last_batch is None else round(
            time.monotonic() - folder.last_batch, 1)
        return web.json({"status": "ok", "partitions": partitions,
                         "events_folded": folder.events_folded, "batches": folder.batches,
                         "seconds_since_last_batch": since})

    return app


def use_uvloop() -> None:
    """uvloop for every loop the worker makes (its own and its consumer thread's).

    Called before anything creates a loop: faust's `--loop` option, given to app.main(), is
    only read by the `faust` command, so it left the worker on the pure-Python asyncio loop,
    where a fifth of the worker's time went (py-spy, 10,000-event burst)."""
    mode.loop.use("uvloop")


def main() -> None:
    settings = WorkerSettings()
    configure(settings.log_level)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    use_uvloop()
    tune_gc()
    app = create_app(settings)
    level = {"warning": "warn", "critical": "crit"}.get(settings.log_level.lower(),
                                                        settings.log_level.lower())
    sys.argv = [sys.argv[0], "worker", "--loglevel", level]
    app.main()


if __name__ == "__main__":
    main()
