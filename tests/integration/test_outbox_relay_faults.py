"""The relay process cannot hang: it outlives a broker killed with -9 and a PostgreSQL restart
while events keep coming, it exits (for its supervisor to restart it) when its broker never
acknowledges, and a standby relay waiting for the lock never counts as stalled.

The relay runs as its own process (`python -m services.registration.relay`), as in the stack.
The first two tests own their broker (and the first its PostgreSQL), since they kill, stop or
restart them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from deploy.local import stack
from shared.db import create_pool, migrate
from shared.events import ParticipantChanged, make_envelope
from shared.outbox import RELAY_LOCK, add_events
from shared.relay_process import EXIT_STALLED
from shared.topics import PARTICIPANTS, topic_name
from tests.integration.conftest import read_events

pytestmark = pytest.mark.integration

PREFIX = "faults."


def event(subject: str, sequence: int):
    payload = ParticipantChanged(participant_id=uuid.UUID(subject), kpj="00000000018",
                                 region_code="12.75.01.1001", segment="BPU",
                                 monthly_income=1_000_000, programs=["JKK", "JKM"],
                                 registered_on="2026-11-25", changed=["monthly_income"])
    return make_envelope(payload, source="registration", subject=subject, sequence=sequence)


class RelayProcess:
    """`python -m services.registration.relay` with its own log file."""

    def __init__(self, log: Path, database_url: str, bootstrap: str, **env: str):
        self.log = log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "services.registration.relay"],
                env={**os.environ, "PYTHONUNBUFFERED": "1", "DATABASE_URL": database_url,
                     "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "UCJ_TOPIC_PREFIX": PREFIX, **env},
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=stack.REPO, start_new_session=True)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    async def exit_code(self, within: float) -> int | None:
        """Its exit code once it exits, or None if it still runs after `within` seconds."""
        try:
            return await asyncio.to_thread(self.popen.wait, within)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait(10)


@pytest.fixture
def own_broker(tmp_path) -> Iterator[dict]:
    """A private broker: {"bootstrap", "process", "restart"}; the process is replaced on
    restart, and resumed (SIGCONT) before it is stopped at the end."""
    ports = (stack.free_port(), stack.free_port())
    while ports[1] == ports[0]:
        ports = (ports[0], stack.free_port())
    holder: dict = {"bootstrap": f"127.0.0.1:{ports[0]}",
                    "process": stack.start_kafka(tmp_path / "kafka", *ports)}
    holder["restart"] = lambda: holder.update(
        process=stack.start_kafka(tmp_path / "kafka", *ports))
    try:
        yield holder
    finally:
        if holder["process"].alive():
            os.kill(holder["process"].pid, signal.SIGCONT)
        holder["process"].stop(30)


async def outbox_rows(url: str) -> int | None:
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return None
    try:
        return await conn.fetchval("SELECT count(*) FROM outbox", timeout=5)
    finally:
        await conn.close()


async def until_outbox_empty(url: str, within: float) -> int | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    left = await outbox_rows(url)
    while left != 0 and loop.time() < deadline:
        await asyncio.sleep(0.5)
        left = await outbox_rows(url)
    return left


async def keep_writing(url: str, topic: str, subjects: list[str], stop: asyncio.Event) -> None:
    """One event per subject per transaction, as fast as PostgreSQL takes them, through every
    fault; each committed event is also recorded in `written`, in the same transaction."""
    sequence = 0
    conn: asyncpg.Connection | None = None
    while not stop.is_set():
        sequence += 1  # also after a failure: a commit whose answer was lost may have happened
        try:
            if conn is None:
                conn = await asyncpg.connect(url, timeout=5)
            async with conn.transaction():
                await add_events(conn, topic, [event(s, sequence) for s in subjects])
                await conn.execute("INSERT INTO written SELECT unnest($1::text[]), $2",
                                   subjects, sequence, timeout=5)
        except Exception:  # asyncpg raises InternalClientError too when the server stops
            if conn is not None:
                conn.terminate()
                conn = None
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.005)
    if conn is not None:
        await conn.close()


async def test_the_relay_publishes_everything_after_the_broker_is_killed_and_postgres_restarts(
        own_broker, tmp_path):
    bootstrap = own_broker["bootstrap"]
    await stack.acreate_topics(bootstrap, PREFIX)
    topic = topic_name(PARTICIPANTS, PREFIX)
    pg_port = stack.free_port()
    postgres = stack.start_postgres(tmp_path / "postgres", pg_port)
    url = (await stack.acreate_databases(
        f"postgresql://postgres@127.0.0.1:{pg_port}/postgres", ["relay"]))["relay"]
    pool = await create_pool(url)
    await migrate(pool)
    await pool.execute("CREATE TABLE written (subject text, sequence int)")
    await pool.close()
    relay = RelayProcess(tmp_path / "relay.log", url, bootstrap,
                         UCJ_RELAY_REPORT_SECONDS="5")
    subjects = [str(uuid.uuid4()) for _ in range(16)]
    stop_writing = asyncio.Event()
    writer = asyncio.create_task(keep_writing(url, topic, subjects, stop_writing))
    try:
        await asyncio.sleep(2)
        await asyncio.to_thread(own_broker["process"].kill9)
        await asyncio.sleep(1)
        await asyncio.to_thread(own_broker["restart"])
        await asyncio.sleep(3)
        await asyncio.to_thread(postgres.stop, 30)
        postgres = await asyncio.to_thread(stack.start_postgres, tmp_path / "postgres", pg_port)
        await asyncio.sleep(3)
        stop_writing.set()
        await writer
        left = await until_outbox_empty(url, within=120)
        assert left == 0, f"{left} rows still in the outbox; relay log:\n{relay.log_text()}"
        assert relay.alive(), f"the relay exited:\n{relay.log_text()}"
        conn = await asyncpg.connect(url, timeout=5)
        written = {(s, q) for s, q in await conn.fetch("SELECT subject, sequence FROM written")}
        await conn.close()
        events = await read_events(bootstrap, topic, expect=len(written), wait_s=60)
    finally:
        stop_writing.set()
        relay.stop()
        postgres.stop(30)

    first_seen: dict[str, list[int]] = defaultdict(list)
    for found in events:
        envelope = found.envelope
        if envelope.sequence not in first_seen[envelope.subject]:
            first_seen[envelope.subject].append(envelope.sequence)
    published = {(subject, q) for subject, seen in first_seen.items() for q in seen}
    assert len(written) > 1000  # events were written before, between and after the faults
    assert published == written
    for subject, sequences in first_seen.items():
        assert sequences == sorted(sequences), subject


async def test_a_relay_whose_broker_never_acknowledges_exits_after_the_stall_deadline(
        infra, own_broker, tmp_path):
    bootstrap = own_broker["bootstrap"]
    await stack.acreate_topics(bootstrap, PREFIX)
    topic = topic_name(PARTICIPANTS, PREFIX)
    url = infra.new_database("relay")
    pool = await create_pool(url)
    await migrate(pool)
    relay = RelayProcess(tmp_path / "relay.log", url, bootstrap, UCJ_RELAY_STALL_SECONDS="6",
                         UCJ_RELAY_ACK_SECONDS="2")
    subject = str(uuid.uuid4())
    try:
        async with pool.acquire() as conn:
            await add_events(conn, topic, [event(subject, 1)])
        assert await until_outbox_empty(url, within=60) == 0, relay.log_text()

        os.kill(own_broker["process"].pid, signal.SIGSTOP)  # up, but answers nothing
        async with pool.acquire() as conn:
            await add_events(conn, topic, [event(subject, q) for q in range(2, 6)])
        code = await relay.exit_code(within=60)
    finally:
        os.kill(own_broker["process"].pid, signal.SIGCONT)
        relay.stop()
        await pool.close()
    assert code == EXIT_STALLED, relay.log_text()
    assert "stalled" in relay.log_text()
    assert await outbox_rows(url) == 4  # nothing deleted that the broker did not acknowledge


async def test_a_standby_relay_waiting_for_the_lock_never_counts_as_stalled(
        infra, prefix, tmp_path):
    topic = topic_name(PARTICIPANTS, prefix)
    url = infra.new_database("relay")
    pool = await create_pool(url)
    await migrate(pool)
    leader = await asyncpg.connect(url, timeout=5)  # another relay's lock, for the test's time
    await leader.execute("SELECT pg_advisory_lock($1)", RELAY_LOCK)
    relay = RelayProcess(tmp_path / "relay.log", url, infra.bootstrap,
                         UCJ_RELAY_STALL_SECONDS="2", UCJ_TOPIC_PREFIX=prefix)
    subject = str(uuid.uuid4())
    try:
        async with pool.acquire() as conn:
            await add_events(conn, topic, [event(subject, q) for q in range(1, 4)])
        assert await relay.exit_code(within=8) is None, relay.log_text()
        assert await outbox_rows(url) == 3

        await leader.close()  # the other relay is gone: this one takes over
        assert await until_outbox_empty(url, within=30) == 0, relay.log_text()
        events = await read_events(infra.bootstrap, topic, expect=3)
    finally:
        if not leader.is_closed():
            await leader.close()
        code = relay.stop()
        await pool.close()
    assert [e.envelope.sequence for e in events] == [1, 2, 3]
    assert code == 0, relay.log_text()
