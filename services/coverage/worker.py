"""The coverage worker: a faust-streaming app that folds participant and membership events
into live counters for every region level.

Stage 1, keyed by participant (each event's subject; a source message holds one event or a
batch of one partition's events): the `participant-facts` table keeps each participant's
newest facts per source; an event turns the state *transition* into
counter deltas (services/coverage/counting.py), so duplicates and replays count nothing.
The village counters of each source partition are derived state: kept in memory, rebuilt from
the facts table after every recovery, and published as absolute values, one message per
(regency, partition), to a compacted topic. Readers (the coverage API) sum the partitions and
add villages up to districts, regencies, provinces and the nation; a message published twice
or replayed is harmless because it is an absolute value, not a delta.

Run: python -m services.coverage.worker
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import mode.loop
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import AliasChoices, Field

from services.coverage.counting import (
    CountedState,
    Facts,
    PartitionLedger,
    apply_event,
    counted_state,
    transition_deltas,
)
from services.coverage.faust_transport import App
from shared.dead_letter import dead_letter
from shared.events import Envelope, Payload, UnknownEventType, decode_message
from shared.settings import CommonSettings
from shared.topics import (
    COVERAGE_APP_ID,
    DEAD_LETTER,
    FACTS_TABLE,
    MEMBERSHIPS,
    PARTICIPANT_PARTITIONS,
    PARTICIPANTS,
    VILLAGE_COUNTERS,
    topic_name,
)

log = logging.getLogger("ucj.coverage.worker")


class WorkerSettings(CommonSettings):
    state_dir: Path = Field(default=Path(".run/coverage-state"),
                            validation_alias=AliasChoices("UCJ_COVERAGE_STATE_DIR"))
    # rocksdb:// keeps the table on disk with its changelog offsets, so a restart reads only
    # what it missed; memory:// rebuilds from the changelog every start.
    store: str = Field(default="rocksdb://", validation_alias=AliasChoices("UCJ_COVERAGE_STORE"))
    publish_interval: float = Field(default=0.2,
                                    validation_alias=AliasChoices("UCJ_COVERAGE_PUBLISH_INTERVAL"))
    web_port: int = Field(default=8014, validation_alias=AliasChoices("UCJ_COVERAGE_WORKER_PORT"))


def create_app(settings: WorkerSettings) -> faust.App:
    prefix = settings.topic_prefix
    app = App(
        f"{prefix}{COVERAGE_APP_ID}",
        broker=[f"kafka://{h}" for h in settings.kafka_bootstrap_servers.split(",")],
        store=settings.store,
        datadir=str(settings.state_dir),
        topic_partitions=PARTICIPANT_PARTITIONS,
        topic_replication_factor=1,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Batch changelog and counter messages: one produce request per message costs more
        # CPU than the counting itself.
        producer_linger_ms=10,
        web_port=settings.web_port,
        web_host="127.0.0.1",
        web_bind="127.0.0.1",
        table_standby_replicas=0,
        # Notice a dead worker in seconds, not the default minute: its partitions go to the
        # others (or to its restarted self) sooner.
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
    )
    source_names = (topic_name(PARTICIPANTS, prefix), topic_name(MEMBERSHIPS, prefix))
    source = app.topic(*source_names, key_serializer="raw", value_serializer="raw")
    counters_topic = app.topic(topic_name(VILLAGE_COUNTERS, prefix),
                               key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(topic_name(DEAD_LETTER, prefix),
                            key_serializer="raw", value_serializer="raw")
    ledger = PartitionLedger()
    health = {"recovered": False}

    def active_partitions() -> set[int]:
        return {tp.partition for tp in app.assignor.assigned_actives()
                if tp.topic in source_names}

    async def rebuild_counters() -> None:
        """After recovery: the counters of every active partition, from the facts table."""
        actives = active_partitions()
        states: dict[int, list[CountedState]] = {p: [] for p in actives}
        for _, stored in facts.items():
            partition = stored.get("p")
            state = counted_state(Facts.from_json(stored))
            if partition in states and state is not None:
                states[partition].append(state)
        published = await published_regencies(settings.kafka_bootstrap_servers,
                                              topic_name(VILLAGE_COUNTERS, prefix), actives)
        for partition in list(ledger_partitions):
            if partition not in actives:
                ledger.forget(partition)
                ledger_partitions.discard(partition)
        for partition in actives:
            ledger.rebuild(partition, states[partition], published.get(partition, ()))
            ledger_partitions.add(partition)
        health["recovered"] = True
        log.info("counters rebuilt for partitions %s from %d participants", sorted(actives),
                 sum(len(s) for s in states.values()))

    ledger_partitions: set[int] = set()
    facts = app.Table(FACTS_TABLE, default=None, partitions=PARTICIPANT_PARTITIONS,
                      key_type=str, on_recover=rebuild_counters)

    @app.agent(source, concurrency=1)
    async def fold(stream: Any) -> None:
        async for event in stream.events():
            # One Kafka message holds one event or a batch of them (shared/events.py).
            for raw, result in decode_message(event.value):
                if isinstance(result, UnknownEventType):
                    continue  # a type this worker does not count (yet): not an error
                if isinstance(result, ValueError):
                    await send_dead_letter(event, raw, result)
                    continue
                count(event.message.partition, *result)

    def count(partition: int, envelope: Envelope, payload: Payload) -> None:
        """Fold one event into the facts table and the partition's counters."""
        key = envelope.subject
        before = Facts.from_json(facts.get(key))
        after = apply_event(before, envelope, payload)
        if after is None:
            return  # seen before: counted already
        facts[key] = {"p": partition, **after.to_json()}
        deltas = transition_deltas(counted_state(before), counted_state(after))
        if deltas:
            ledger.add(partition, deltas)

    async def send_dead_letter(event: Any, raw: bytes, problem: ValueError) -> None:
        message = event.message
        await dead_letters.send(key=event.key, value=dead_letter(
            consumer=app.conf.id, reason=str(problem), topic=message.topic,
            partition=message.partition, offset=message.offset, value=raw))
        log.warning("malformed event at %s[%d]@%d sent to the dead-letter topic",
                    message.topic, message.partition, message.offset)

    @app.timer(settings.publish_interval)
    async def publish_counters() -> None:
        now = datetime.now(UTC).isoformat()
        for partition, regency, villages in ledger.drain_changed():
            await counters_topic.send(
                key=f"{regency}@{partition}".encode(),
                value=orjson.dumps({"regency": regency, "partition": partition,
                                    "villages": villages, "updated_at": now}))

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Stop publishing what may now belong to another worker. The recovery that follows
        # every rebalance rebuilds (and republishes) the partitions this worker keeps.
        revoked = args[0] if args else kwargs.get("revoked", set())
        for tp in revoked:
            if tp.topic in source_names and tp.partition in ledger_partitions:
                ledger.forget(tp.partition)
                ledger_partitions.discard(tp.partition)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        if health["recovered"]:
            return web.json({"status": "ok", "partitions": sorted(ledger_partitions)})
        return web.json({"status": "recovering"}, status=503)

    return app


async def published_regencies(
    bootstrap: str, topic: str, partitions: set[int]
) -> dict[int, set[str]]:
    """Regencies whose village counters were published for these source partitions (non-empty
    ones), so a rebuild can publish an empty group for a regency that has none left."""
    found: dict[int, set[str]] = {}
    if not partitions:
        return found
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(VILLAGE_COUNTERS.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        latest: dict[str, bool] = {}
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=1000)
            for tp, messages in batch.items():
                for message in messages:
                    if message.key is not None:
                        latest[message.key.decode()] = bool(
                            message.value and orjson.loads(message.value).get("villages"))
                    if message.offset + 1 >= ends[tp]:
                        pending.discard(tp)
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    for key, nonzero in latest.items():
        regency, _, partition = key.rpartition("@")
        if nonzero and partition.isdigit() and int(partition) in partitions:
            found.setdefault(int(partition), set()).add(regency)
    return found


def use_uvloop() -> None:
    """uvloop for every loop the worker makes (its own and its consumer thread's).

    Called before anything creates a loop: faust's `--loop` option, given to app.main(), is
    only read by the `faust` command, so it left the worker on the pure-Python asyncio loop,
    where a fifth of the worker's time went (py-spy, 10,000-event burst)."""
    mode.loop.use("uvloop")


def main() -> None:
    settings = WorkerSettings()
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    use_uvloop()
    app = create_app(settings)
    sys.argv = [sys.argv[0], "worker", "--loglevel", settings.log_level.lower()]
    app.main()


if __name__ == "__main__":
    main()
