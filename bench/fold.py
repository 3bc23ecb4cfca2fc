"""How fast one coverage worker folds events cold, against a bare consumer of the same topics.

    python -m bench.fold --n 100000 [--members 0.5] [--kafka HOST:PORT --server-url URL]

1. Writes N synthetic `participant.registered` events (plus `membership.status_changed` for a
   share of them, --members) into fresh topics under a new prefix, the way the relay sends
   them: up to 200 events of one partition per Kafka message, in the partition their participant
   id hashes to. Not measured.
2. (a0) Measured: a bare aiokafka consumer reads every message of both topics and parses them
   with orjson only; (a) the same, decoding every event as the worker does (envelope and
   payload validated, shared/events.py decode_message), no database.
3. (b) Measured: one coverage worker process (python -m services.coverage.worker) on an empty
   coverage database folds the same events from the start; the time runs from its start until
   its source offsets (the tracking records in the database) reach the topics' ends, minus the
   time it took to join its group (printed apart).
4. Prints both rates, their ratio and the checks (participants counted = N), then a JSON line.

Kafka and PostgreSQL: --kafka/--server-url, else those of the running local stack
(.run/stack.json), else a private stack started for the run. A measuring tool, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from bench.calibration import calibration_s
from deploy.local import stack
from shared.events import (
    MembershipStatusChanged,
    ParticipantRegistered,
    decode_message,
    envelope_bytes,
)
from shared.outbox import batches
from shared.regions import directory
from shared.topics import MEMBERSHIPS, PARTICIPANT_PARTITIONS, PARTICIPANTS, topic_name

PARTITIONS = list(range(PARTICIPANT_PARTITIONS))


def synthetic_events(n: int, members: float, seed: int = 7
                     ) -> dict[str, dict[int, list[tuple[bytes, bytes]]]]:
    """topic → partition → [(key, event bytes)], in order."""
    rng = random.Random(seed)
    villages = [r.code for r in directory().children("12.75.01")] + \
        [r.code for r in directory().children("12.71.01")]
    partitioner = DefaultPartitioner()
    out: dict[str, dict[int, list[tuple[bytes, bytes]]]] = {"participants": {}, "memberships": {}}
    for _ in range(n):
        pid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        key = pid.encode()
        partition = partitioner(key, PARTITIONS, PARTITIONS)
        data = {"participant_id": pid, "kpj": "00000000018", "region_code": rng.choice(villages),
                "segment": "BPU", "employer_id": None, "monthly_income": 1_000_000,
                "programs": ["JKK", "JKM"], "registered_on": "2026-11-25"}
        out["participants"].setdefault(partition, []).append(
            (key, envelope_bytes(ParticipantRegistered, data, source="registration",
                                 subject=pid, sequence=1)))
        if rng.random() < members:
            out["memberships"].setdefault(partition, []).append(
                (key, envelope_bytes(MembershipStatusChanged,
                                     {"participant_id": pid, "status": "active"},
                                     source="contributions", subject=pid, sequence=1)))
    return out


async def write_topics(bootstrap: str, prefix: str, events: dict) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                max_batch_size=256 * 1024, max_request_size=4 * 1024 * 1024)
    await producer.start()
    messages = 0
    try:
        futures = []
        for name, spec in (("participants", PARTICIPANTS), ("memberships", MEMBERSHIPS)):
            topic = topic_name(spec, prefix)
            for partition, rows in events[name].items():
                for part in batches(rows):
                    value = part[0][1] if len(part) == 1 else \
                        b"[" + b",".join(p for _, p in part) + b"]"
                    futures.append(await producer.send(topic, value, partition=partition))
                    messages += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return messages


async def end_offsets(bootstrap: str, prefix: str) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic_name(s, prefix), p) for s in (PARTICIPANTS, MEMBERSHIPS)
               for p in PARTITIONS]
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): o for tp, o in ends.items()}
    finally:
        await consumer.stop()


def orjson_only(value: bytes) -> int:
    parsed = orjson.loads(value)
    return len(parsed) if isinstance(parsed, list) else 1


def full_decode(value: bytes) -> int:
    return len(decode_message(value))


async def bare_consume(bootstrap: str, prefix: str, ends: dict,
                       decode: Any = full_decode) -> tuple[float, int]:
    """Seconds to read and decode every event; events decoded."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for (t, p) in ends]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        pending = {tp for tp in tps if ends[(tp.topic, tp.partition)] > 0}
        decoded = 0
        started = time.perf_counter()
        while pending:
            batch = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, messages in batch.items():
                for message in messages:
                    decoded += decode(message.value)
                    if message.offset + 1 >= ends[(tp.topic, tp.partition)]:
                        pending.discard(tp)
        return time.perf_counter() - started, decoded
    finally:
        await consumer.stop()


async def worker_fold(infra_bootstrap: str, server_url: str, prefix: str, ends: dict,
                      workdir: Path) -> tuple[float, float, int]:
    """(seconds from joining to caught up, seconds to join, participants counted)."""
    db = stack.create_databases(server_url, [f"bench_fold_{uuid.uuid4().hex[:8]}"])
    url = next(iter(db.values()))
    port = stack.free_port()
    env = {"DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": infra_bootstrap,
           "UCJ_TOPIC_PREFIX": prefix, "UCJ_COVERAGE_WORKER_PORT": str(port),
           "UCJ_COVERAGE_STATE_DIR": str(workdir / "state"), "UCJ_LOG_LEVEL": "WARNING"}
    started = time.perf_counter()
    proc = stack.start_service("bench-fold-worker",
                               [stack.python_exe(), "-m", "services.coverage.worker"], env,
                               workdir / "logs", port=port)
    target = {k: v for k, v in ends.items() if v > 0}
    conn = None
    joined = None
    try:
        while True:
            if not proc.alive():
                raise RuntimeError(f"the worker exited:\n{proc.log_tail()}")
            if conn is None:
                try:
                    conn = await asyncpg.connect(url)
                except (OSError, asyncpg.PostgresError):
                    await asyncio.sleep(0.05)
                    continue
            try:
                rows = await conn.fetch("SELECT topic, partition, next_offset FROM source_offsets")
            except asyncpg.UndefinedTableError:
                rows = []
            done = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
            if joined is None and rows:
                joined = time.perf_counter()
            if all(done.get(k, 0) >= v for k, v in target.items()):
                finished = time.perf_counter()
                counted = await conn.fetchval(
                    "SELECT coalesce(sum(value), 0) FROM village_counters"
                    " WHERE name = 'registered'")
                first = joined or finished
                try:
                    health = (await asyncio.to_thread(
                        httpx.get, f"http://127.0.0.1:{port}/healthz", timeout=5)).json()
                    print(f"worker says: {health.get('events_folded')} events folded in "
                          f"{health.get('batches')} batches")
                except (httpx.HTTPError, ValueError):
                    pass
                return finished - first, first - started, int(counted)
            await asyncio.sleep(0.02)
    finally:
        if conn is not None:
            await conn.close()
        proc.stop(10)


def infra_from_args(args: argparse.Namespace, workdir: Path):
    if args.kafka and args.server_url:
        return args.kafka, args.server_url, None
    state = stack.load_state(stack.run_dir())
    if state.get("kafka_bootstrap") and state.get("processes", {}).get("kafka"):
        return state["kafka_bootstrap"], state["database_url"], None
    ports = [stack.free_port() for _ in range(3)]
    infra = stack.start_infra(workdir, kafka_port=ports[0], controller_port=ports[1],
                              pg_port=ports[2], use_env=False)
    return infra.bootstrap, infra.server_url, infra


async def main_async(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    bootstrap, server_url, own = infra_from_args(args, workdir)
    try:
        calibration = calibration_s()
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        await stack.acreate_topics(bootstrap, prefix)
        events = synthetic_events(args.n, args.members)
        total = sum(len(r) for t in events.values() for r in t.values())
        messages = await write_topics(bootstrap, prefix, events)
        ends = await end_offsets(bootstrap, prefix)
        print(f"{total} events in {messages} Kafka messages under {prefix}")
        json_s, parsed = await bare_consume(bootstrap, prefix, ends, orjson_only)
        print(f"(a0) bare consume + orjson parse only: {parsed} events in {json_s:.2f}s "
              f"= {parsed / json_s:,.0f} events/s")
        bare_s, decoded = await bare_consume(bootstrap, prefix, ends)
        print(f"(a) bare consume + decode: {decoded} events in {bare_s:.2f}s "
              f"= {decoded / bare_s:,.0f} events/s")
        fold_s, join_s, counted = await worker_fold(bootstrap, server_url, prefix, ends, workdir)
        print(f"(b) one coverage worker, cold: {total} events in {fold_s:.2f}s "
              f"= {total / fold_s:,.0f} events/s (group join and start {join_s:.1f}s apart)")
        print(f"ratio bare/worker: {bare_s and (fold_s / bare_s):.1f}x slower; "
              f"participants counted {counted} of {args.n}; calibration {calibration}s")
        print(orjson.dumps({"events": total, "messages": messages,
                            "orjson_events_per_s": round(parsed / json_s),
                            "bare_s": round(bare_s, 3),
                            "bare_events_per_s": round(decoded / bare_s),
                            "fold_s": round(fold_s, 3),
                            "fold_events_per_s": round(total / fold_s),
                            "join_s": round(join_s, 2), "counted": counted,
                            "expected": args.n, "calibration_s": calibration}).decode())
    finally:
        if own is not None:
            own.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.fold", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="participants (events: n × 1.5)")
    ap.add_argument("--members", type=float, default=0.5,
                    help="share of participants that also get a membership event")
    ap.add_argument("--kafka")
    ap.add_argument("--server-url", help="a PostgreSQL server URL (a database is created)")
    ap.add_argument("--workdir")
    args = ap.parse_args(argv)
    args.workdir = args.workdir or f"/tmp/ucj-bench-fold-{os.getpid()}"
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
