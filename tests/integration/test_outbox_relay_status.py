"""`./ucj status` shows each service database's outbox backlog and fails when a row has
waited longer than the relay's stall threshold."""

from __future__ import annotations

import sys

import pytest

from deploy.local import stack
from shared.db import create_pool, migrate

pytestmark = pytest.mark.integration


async def outbox_database(infra, label: str, rows: int, age_seconds: int) -> str:
    url = infra.new_database(label)
    pool = await create_pool(url)
    try:
        await migrate(pool)
        await pool.execute(
            "INSERT INTO outbox (topic, key, event_type, payload, created_at)"
            " SELECT 't', 'k', 'e', '\\x00', now() - make_interval(secs => $1)"
            " FROM generate_series(1, $2)", age_seconds, rows)
    finally:
        await pool.close()
    return url


async def test_status_reads_each_outbox_and_skips_databases_without_one(infra):
    databases = {"ucj_registration": await outbox_database(infra, "status", 3, 90),
                 "ucj_contributions": await outbox_database(infra, "status", 0, 0),
                 "ucj_claims": infra.new_database("status"),  # no outbox table
                 "ucj_coverage": f"postgresql://postgres@127.0.0.1:{stack.free_port()}/x"}
    found = {b.database: b for b in await stack.aoutbox_backlogs(databases, seconds=3)}
    assert set(found) == {"ucj_registration", "ucj_contributions", "ucj_coverage"}
    assert found["ucj_registration"].rows == 3
    assert 89 < (found["ucj_registration"].oldest_age or 0) < 200
    assert (found["ucj_contributions"].rows, found["ucj_contributions"].oldest_age) == (0, None)
    assert found["ucj_coverage"].error is not None  # nothing listens there


async def test_status_fails_when_an_outbox_row_waited_longer_than_the_stall_threshold(
        infra, tmp_path, monkeypatch, capsys):
    rd = tmp_path / "run"
    monkeypatch.setenv("UCJ_RUN_DIR", str(rd))
    monkeypatch.setenv("UCJ_RELAY_STALL_SECONDS", "60")
    service = stack.start_service("claims", [sys.executable, "-c", "import time; time.sleep(60)"],
                                  {}, rd / "logs")
    try:
        stuck = await outbox_database(infra, "status", 2, 120)
        flowing = await outbox_database(infra, "status", 5, 1)
        stack.save_state(rd, {"processes": {"claims": service.to_dict()},
                              "databases": {"ucj_contributions": flowing}})
        assert stack.cmd_status() == 0
        stack.save_state(rd, {"processes": {"claims": service.to_dict()},
                              "databases": {"ucj_registration": stuck,
                                            "ucj_contributions": flowing}})
        assert stack.cmd_status() == 1
    finally:
        service.stop(5)
    out = capsys.readouterr().out
    assert "outbox ucj_contributions" in out and "5 rows waiting" in out
    assert "2 rows waiting, the oldest 120s old  STALLED" in out
