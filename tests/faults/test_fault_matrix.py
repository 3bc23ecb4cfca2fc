"""The fault matrix, short (bench/faults.py): every named fault under load, on a stack of its own
(its broker and PostgreSQL are killed and restarted), each followed by a reconciliation of the
counters with the source databases that must find no drift, and the coverage API showing every
worker registered in the fault's regency exactly once; then issue 7's two scenarios, smaller.
The long matrix: python -m bench.faults --long; the scenarios full size: --seen 3."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from bench import faults
from tests.integration.conftest import read_topic

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    running = faults.start_fault_stack(tmp_path_factory.mktemp("faults"))
    try:
        rows = asyncio.run(faults.run_matrix(running, faults.SHORT))
        rows += asyncio.run(faults.run_seen(running, faults.SEEN_SHORT, 1))
        print("\n" + faults.table(rows))
        letters = asyncio.run(read_topic(running.infra.bootstrap,
                                         faults.dead_letter_topic(running), expect=1,
                                         wait_s=5, partitions=6))
        yield {row.fault: row for row in rows}, [orjson.loads(m.value) for m in letters]
    finally:
        running.stop()


@pytest.mark.parametrize("fault", [name for name, _ in faults.MATRIX])
def test_after_the_fault_the_counters_equal_the_sources(matrix, fault):
    rows, _ = matrix
    row = rows[fault]
    assert row.ok, row.detail
    assert row.drift == 0 and row.counted > 0


@pytest.mark.parametrize("scenario", ["seen 1, run 1", "seen 2, run 1"])
def test_issue_7s_scenarios_end_with_no_drift_and_no_stalled_outbox(matrix, scenario):
    rows, _ = matrix
    [row] = [r for name, r in rows.items() if name.startswith(scenario)]
    assert row.ok, row.detail
    assert row.drift == 0 and row.counted == row.sent > 0


def test_poison_events_are_dead_letters_of_every_consumer_without_their_bytes(matrix):
    _, letters = matrix
    coverage = [x for x in letters if x["consumer"].endswith("ucj-coverage")]
    contributions = [x for x in letters if x["consumer"].endswith("ucj-contributions")]
    # 4 poison participant events, 3 poison membership events and 1 poison organisation event
    # reach the coverage worker; contributions reads the participants topic and refuses the two
    # it cannot apply.
    assert len({(x["topic"], x["offset"], x["sha256"]) for x in coverage}) >= 8
    assert len({(x["topic"], x["offset"], x["sha256"]) for x in contributions}) >= 2
    for letter in letters:
        assert "value" not in letter and letter["reason"] and len(letter["sha256"]) == 64
