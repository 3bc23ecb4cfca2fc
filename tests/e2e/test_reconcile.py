"""End to end: `ucj reconcile` compares the live coverage counters with the source databases,
finds a corrupted counter at every level above it, and --repair rebuilds the counting state
from the sources while the workers keep running; later events still count on top.

The first tests run reconcile and repair on real PostgreSQL databases filled directly (no
processes); the last one on the whole running stack."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.coverage.counting import contribution, counted_state
from services.coverage.reconcile import (
    InternalDrift,
    ParticipantRow,
    facts_from_sources,
    partition_of,
    reconcile,
    reconcile_until,
    render,
    repair,
)
from shared.clock import WIB
from shared.db import create_pool, migrate
from shared.regions import directory
from tests.e2e.conftest import AUTH, COVERAGE_WORKERS, synthetic_worker
from tests.e2e.test_contributions_flow import dues, register, wait_known
from tests.e2e.test_live_coverage import coverage, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = {name: REPO / "services" / name / "migrations"
              for name in ("registration", "contributions", "coverage")}
BINJAI_VILLAGES = ["12.75.01.1001", "12.75.01.1002", "12.75.02.1001", "12.75.05.1003"]
MEDAN_VILLAGE = "12.71.01.1001"


# --- on the databases alone ------------------------------------------------------------------


@pytest.fixture
async def databases(infra) -> AsyncIterator[dict[str, str]]:
    """Fresh, migrated registration, contributions and coverage databases."""
    urls = {name: infra.new_database(f"reconcile_{name}") for name in MIGRATIONS}
    for name, url in urls.items():
        pool = await create_pool(url, min_size=1, max_size=1)
        try:
            await migrate(pool, MIGRATIONS[name])
        finally:
            await pool.close()
    yield urls


async def add_participants(urls: dict[str, str], rows: list[tuple[str, str, str, int]],
                           memberships: list[tuple[str, int]]) -> list[uuid.UUID]:
    """rows: (village, segment, registered|terminated, version); memberships, by row: (status
    as last published, status_seq) for the contributions database."""
    ids = [uuid.uuid4() for _ in rows]
    registration = await asyncpg.connect(urls["registration"])
    contributions = await asyncpg.connect(urls["contributions"])
    try:
        await registration.executemany("""
            INSERT INTO participants (id, kpj, nik, full_name, birth_date, sex, region_code,
                segment, monthly_income, programs, status, version, registered_by)
            VALUES ($1, $2, $3, 'Pekerja Sintetis', '1990-01-01', 'M', $4, $5, 1000000,
                    '{JKK,JKM}', $6, $7, 'test')""",
            [(pid, f"K{pid.hex[:10]}", f"{pid.int % 10**16:016d}", village, segment, status,
              version) for pid, (village, segment, status, version) in zip(ids, rows,
                                                                           strict=True)])
        await contributions.executemany("""
            INSERT INTO members (participant_id, segment, monthly_income, programs, region_code,
                registered_on, registration_seq, status, status_seq)
            VALUES ($1, $2, 1000000, '{JKK,JKM}', $3, $4, $5, $6, $7)""",
            [(pid, segment, village, date(2026, 11, 1), version, status, seq)
             for pid, (village, segment, _, version), (status, seq)
             in zip(ids, rows, memberships, strict=True)])
    finally:
        await registration.close()
        await contributions.close()
    return ids


def args(urls: dict[str, str]) -> tuple[str, str, str]:
    return urls["registration"], urls["contributions"], urls["coverage"]


async def test_repair_rebuilds_facts_and_counters_and_clears_what_no_one_counts(databases):
    ids = await add_participants(databases, [
        (BINJAI_VILLAGES[0], "BPU", "registered", 1),
        (BINJAI_VILLAGES[0], "BPU", "registered", 2),
        (BINJAI_VILLAGES[1], "PU", "registered", 1),
        (MEDAN_VILLAGE, "PMI", "terminated", 3),
        (MEDAN_VILLAGE, "JAKON", "registered", 1),
    ], [("active", 1), ("inactive", 0), ("active", 4), ("terminated", 2), ("inactive", 1)])

    # An empty coverage database: everything is missing, and nothing contradicts its facts.
    before = await reconcile(*args(databases))
    assert not before.ok
    assert before.participants == 5
    assert before.internal_total == 0
    national = {d.counter: (d.live, d.truth) for d in before.drift if d.region == "ID"}
    month = f"{datetime.now(WIB):%Y-%m}"  # registered today (the database's default)
    assert national == {"registered": (0, 4), "active": (0, 2), "inactive": (0, 2),
                        "terminated": (0, 1), "BPU.registered": (0, 2), "BPU.active": (0, 1),
                        "PU.registered": (0, 1), "PU.active": (0, 1),
                        "JAKON.registered": (0, 1),
                        # each registration of the month, by channel (issue 11), and of them
                        # those active now
                        f"channel/partner_api/{month}/registered": (0, 5),
                        f"channel/partner_api/{month}/active": (0, 2)}

    first = await repair(*args(databases))
    assert (first.participants, first.reread, first.facts_written, first.facts_deleted) == (
        5, 0, 5, 0)
    assert first.versions == dict.fromkeys(range(12), 1)
    after = await reconcile(*args(databases))
    assert after.ok, render(after, 50)
    assert after.facts == 5

    coverage_db = await asyncpg.connect(databases["coverage"])
    try:
        facts = json.loads(await coverage_db.fetchval(
            "SELECT facts FROM participant_facts WHERE participant_id = $1", ids[1]))
        # The sources' sequences: an event in flight with a higher one still applies on top.
        assert facts == {"seq": {"registration": 2}, "village": BINJAI_VILLAGES[0],
                         "segment": "BPU", "dereg": False, "status": {}, "ch": "partner_api",
                         "reg": month}

        # Again: nothing to write, but every partition moves on.
        second = await repair(*args(databases))
        assert (second.facts_written, second.counters_written, second.counters_zeroed) == (0, 0, 0)
        assert second.versions == dict.fromkeys(range(12), 2)

        # A counter nobody's facts give, a wrong fact and a participant nobody registered.
        await coverage_db.execute(
            "INSERT INTO village_counters VALUES (7, '12.71.01.1002', 'active', 4, 2)")
        await coverage_db.execute("""
            UPDATE participant_facts SET facts = jsonb_set(facts, '{status}',
                                                           '{"contributions": "inactive"}')
            WHERE participant_id = $1""", ids[0])
        await coverage_db.execute("""
            INSERT INTO participant_facts VALUES ($1, 0, '{"seq": {"registration": 1},
                "village": "12.71.01.1001", "segment": "BPU", "dereg": false, "status": {}}')
        """, uuid.uuid4())
        broken = await reconcile(*args(databases))
        assert not broken.ok
        assert {(d.region, d.counter, d.drift) for d in broken.drift
                if d.level == "village"} == {("12.71.01.1002", "active", 4)}
        assert InternalDrift(7, "12.71.01.1002", "active", 4, 0) in broken.internal

        third = await repair(*args(databases))
        assert (third.facts_written, third.facts_deleted, third.counters_zeroed) == (1, 1, 1)
        assert third.reread == 1  # the participant nobody registered: still unknown
        assert await coverage_db.fetchrow(
            "SELECT value, version FROM village_counters WHERE partition = 7"
            " AND village = '12.71.01.1002'") == (0, 3)
        assert (await reconcile(*args(databases))).ok
    finally:
        await coverage_db.close()


async def test_repair_waits_for_the_workers_and_rereads_what_they_counted_meanwhile(databases):
    """The sources are read before the lock; a participant a worker counts between that read
    and the lock is read again under it, so the repair never undoes a newer event."""
    (moving,) = await add_participants(databases, [(BINJAI_VILLAGES[2], "BPU", "registered", 1)],
                                       [("inactive", 0)])
    await repair(*args(databases))
    partition = partition_of(str(moving))
    registration = await asyncpg.connect(databases["registration"])
    worker = await asyncpg.connect(databases["coverage"])
    try:
        counting = worker.transaction()
        await counting.start()
        await worker.execute("SELECT FROM counting_partitions WHERE partition = $1 FOR UPDATE",
                             partition)
        repairing = asyncio.create_task(repair(*args(databases)))
        await asyncio.sleep(1.5)  # it has read the sources; now it waits for the lock
        assert not repairing.done()
        # Meanwhile the participant moves to Medan and a new one registers, and the worker
        # counts both events (facts and counters, as a counting transaction does).
        await registration.execute("UPDATE participants SET region_code = $2, version = 2"
                                   " WHERE id = $1", moving, MEDAN_VILLAGE)
        (newcomer,) = await add_participants(databases, [(MEDAN_VILLAGE, "PU", "registered", 1)],
                                             [("inactive", 0)])
        await worker.execute(
            "UPDATE village_counters SET value = 0 WHERE village = $1", BINJAI_VILLAGES[2])
        for pid, version in ((moving, 2), (newcomer, 1)):
            registered_on = await registration.fetchval(
                "SELECT registered_on FROM participants WHERE id = $1", pid)
            facts = facts_from_sources(ParticipantRow(
                str(pid), MEDAN_VILLAGE, "PU" if pid == newcomer else "BPU", "registered",
                version, channel="partner_api", registered_on=str(registered_on)))
            await worker.execute(
                "INSERT INTO participant_facts VALUES ($1, $2, $3) ON CONFLICT (participant_id)"
                " DO UPDATE SET facts = EXCLUDED.facts", pid, partition_of(str(pid)),
                json.dumps(facts.to_json()))
            state = counted_state(facts)
            assert state is not None
            await worker.execute("""
                INSERT INTO village_counters
                SELECT $1, $2, name, 1, 0 FROM unnest($3::text[]) AS name
                ON CONFLICT (partition, village, name)
                DO UPDATE SET value = village_counters.value + 1
            """, partition_of(str(pid)), MEDAN_VILLAGE, list(contribution(state)))
        await counting.commit()
        done = await asyncio.wait_for(repairing, 30)
        assert (done.participants, done.reread, done.facts_written, done.facts_deleted) == (
            2, 2, 0, 0)
        assert (done.counters_written, done.counters_zeroed) == (0, 0)
        assert done.versions[partition] == 2
        result = await reconcile(*args(databases))
        assert result.ok, render(result, 50)
    finally:
        await registration.close()
        await worker.close()


def test_the_command_exits_1_on_drift_and_0_after_repair_with_json(databases, tmp_path):
    asyncio.run(add_participants(databases, [(BINJAI_VILLAGES[3], "BPU", "registered", 1)],
                                 [("active", 1)]))
    (tmp_path / "stack.json").write_text(json.dumps({"databases": {
        f"ucj_{name}": url for name, url in databases.items()}}))

    def ucj_reconcile(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "services.coverage.reconcile", *argv],
                              cwd=REPO, env={**os.environ, "UCJ_RUN_DIR": str(tmp_path)},
                              capture_output=True, text=True, timeout=120)

    drifting = ucj_reconcile()
    assert drifting.returncode == 1, drifting.stderr
    assert "12.75.05.1003   village   active" in drifting.stdout
    assert "DRIFT: 1 participants" in drifting.stdout
    repaired = ucj_reconcile("--repair", "--json")
    assert repaired.returncode == 0, repaired.stderr
    body = json.loads(repaired.stdout)
    assert body["ok"] and body["drift"] == [] and body["repair"]["participants"] == 1


# --- on the running stack --------------------------------------------------------------------


def pay(running, pid: str, ref: str) -> None:
    owed = dues(running, pid)
    response = httpx.post(f"{running.url('contributions')}/v1/contributions", headers=AUTH,
                          timeout=5, json={"payment_ref": ref, "participant_id": pid,
                                           "first_period": owed["first_period"], "months": 1,
                                           "amount": owed["amount"], "payer": "self"})
    assert response.status_code == 201, response.text
    assert response.json()["membership_status"] == "active"


def wait_for_split(running, timeout: float = 60.0) -> None:
    """Until both coverage workers own their share of the 12 partitions. The stack is ready
    once one worker owns them all; the second joining then moves half of them, and events
    published during that rebalance have been seen to stay uncounted (see the report)."""
    def split():
        owned = [httpx.get(f"http://127.0.0.1:{running.ports[name]}/healthz", timeout=2)
                 .json().get("partitions", []) for name in COVERAGE_WORKERS]
        done = all(owned) and sorted(sum(owned, [])) == list(range(12))
        return True if done else owned
    wait_until(split, timeout, "the partitions split between both coverage workers")


def shows(running, codes: list[str], counter: str, expected: dict[str, int]):
    def check():
        now = {code: coverage(running, code)[counter] for code in codes}
        return True if now == expected else now
    return check


def admin_reconcile(running) -> dict:
    response = httpx.get(f"{running.url('coverage')}/v1/admin/reconcile", headers=AUTH,
                         timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


async def until(check, sources: tuple[str, str, str], what: str, seconds: float = 30.0) -> None:
    """wait_until; when it fails, the message says what reconcile finds (which side is off)."""
    try:
        await asyncio.to_thread(wait_until, check, seconds, what)
    except AssertionError as exc:
        found = await reconcile(*sources)
        raise AssertionError(f"{exc}\nreconcile:\n{render(found, 50)}") from None


async def test_reconcile_finds_a_corrupted_counter_and_repair_restores_the_truth(running_stack):
    wait_for_split(running_stack)
    running_stack.set_clock(datetime(2026, 11, 20, 9, 0, tzinfo=WIB))
    urls = running_stack.infra.database_urls
    sources = (urls["ucj_registration"], urls["ucj_contributions"], urls["ucj_coverage"])
    rng = random.Random(41)
    village = BINJAI_VILLAGES[0]
    levels = directory().lineage(village)
    rows = [synthetic_worker(v, rng) for v in BINJAI_VILLAGES for _ in range(2)]
    pids = register(running_stack, rows)
    wait_known(running_stack, pids)
    for n in (0, 1, 2):  # the first two live in `village`
        pay(running_stack, pids[n], f"VA-RECONCILE-{n}")
    await until(shows(running_stack, ["12.75"], "registered", {"12.75": 8}), sources,
                "8 registered")
    await until(shows(running_stack, ["12.75"], "active", {"12.75": 3}), sources, "3 active")

    clean = await reconcile_until(*sources, wait_seconds=15)
    assert clean.ok, render(clean, 50)
    assert (clean.participants, clean.facts, clean.drift) == (8, 8, [])
    itself = admin_reconcile(running_stack)
    assert itself["ok"] and itself["served_drift_rows"] == itself["internal_drift_rows"] == 0

    # A counting bug: one village counter 5 too high, committed as a worker commits.
    conn = await asyncpg.connect(urls["ucj_coverage"])
    try:
        async with conn.transaction():
            partition, value = await conn.fetchrow(
                "SELECT partition, value FROM village_counters WHERE village = $1"
                " AND name = 'active' AND value > 0 ORDER BY partition LIMIT 1", village)
            version = await conn.fetchval(
                "UPDATE counting_partitions SET version = version + 1, updated_at = now()"
                " WHERE partition = $1 RETURNING version", partition)
            await conn.execute(
                "UPDATE village_counters SET value = value + 5, version = $2 WHERE partition = $1"
                " AND village = $3 AND name = 'active'", partition, version, village)
    finally:
        await conn.close()
    active = {code: 2 if code == village else 3 for code in levels}
    wait_until(shows(running_stack, levels, "active", {c: n + 5 for c, n in active.items()}),
               15, "the corruption visible in the coverage API")

    # The service's own check: it serves what its database holds, which its facts contradict.
    itself = admin_reconcile(running_stack)
    assert not itself["ok"] and itself["served_drift_rows"] == 0
    assert [(d["village"], d["counter"]) for d in itself["internal_drift"]] == [(village, "active")]

    broken = await reconcile(*sources)
    assert not broken.ok
    assert [(d.region, d.counter, d.live, d.truth, d.drift) for d in broken.drift] == [
        (code, "active", active[code] + 5, active[code], 5) for code in reversed(levels)]
    assert (broken.regions_with_drift, broken.national_drift) == (5, 5)
    assert broken.internal == [InternalDrift(partition, village, "active", value + 5, value)]

    repaired = await repair(*sources)
    assert (repaired.participants, repaired.facts_written, repaired.facts_deleted) == (8, 0, 0)
    assert repaired.reread == 0  # no event came between its read and its lock
    assert (repaired.counters_written, repaired.counters_zeroed) == (1, 0)
    fixed = await reconcile(*sources)
    assert fixed.ok, render(fixed, 50)
    wait_until(shows(running_stack, levels, "active", active), 15, "the truth in the API again")

    # The workers count on top of the rebuilt state.
    pay(running_stack, pids[3], "VA-RECONCILE-3")
    await until(shows(running_stack, ["12.75"], "active", {"12.75": 4}), sources, "4 active")
    assert (await reconcile_until(*sources, wait_seconds=15)).ok
