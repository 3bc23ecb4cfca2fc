"""The contributions calendar on a real PostgreSQL: a member whose dates the rules cannot
compute is put off to tomorrow, and the members due with it are settled."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

import services.contributions
from services.contributions.worker import keep_calendar
from shared.clock import WIB, FixedClock
from shared.db import create_pool, migrate
from tests.integration.conftest import contributions_calendar

pytestmark = pytest.mark.integration

MIGRATIONS = Path(services.contributions.__file__).parent / "migrations"
TODAY = date(2026, 12, 16)


async def add_member(conn, registered_on: date) -> uuid.UUID:
    pid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO members (participant_id, segment, monthly_income, programs, region_code,"
        " registered_on, registration_seq, next_check_on)"
        " VALUES ($1, 'BPU', 1000000, '{JKK,JKM}', '12.75.01.1001', $2, 1, $3)",
        pid, registered_on, TODAY)
    return pid


@pytest.fixture
async def pool(infra):
    pool = await create_pool(infra.new_database("calendar"))
    await migrate(pool, MIGRATIONS)
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_member_the_rules_cannot_settle_waits_for_tomorrow_and_holds_up_no_one(pool):
    async with pool.acquire() as conn:
        # Registered in December 9999: its lapse would fall in the year 10000.
        odd = await add_member(conn, date(9999, 12, 1))
        usual = await add_member(conn, date(2026, 11, 3))
        async with conn.transaction():
            checked, changed = await contributions_calendar(conn, TODAY)
        rows = {r["participant_id"]: r for r in await conn.fetch("SELECT * FROM members")}
    assert (checked, changed) == (2, 0)
    assert rows[odd]["next_check_on"] == TODAY + timedelta(days=1)
    assert rows[usual]["next_check_on"] > TODAY  # settled: its next change is ahead


async def test_the_calendar_loop_settles_what_is_due_and_stops_when_told(pool):
    async with pool.acquire() as conn:
        pid = await add_member(conn, date(2026, 1, 5))  # never paid: lapsed by now
    stop = asyncio.Event()
    clock = FixedClock(datetime(2026, 12, 16, 9, 0, tzinfo=WIB))
    loop = asyncio.create_task(keep_calendar(pool, clock, "t.memberships", 0.1, stop))
    try:
        for _ in range(100):
            status = await pool.fetchval("SELECT status FROM members WHERE participant_id = $1",
                                         pid)
            if status == "terminated":
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(loop, 5)
    assert status == "terminated"
