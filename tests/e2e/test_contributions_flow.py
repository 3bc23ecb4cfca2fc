"""End to end: registration → contributions learns the worker → payment → the coverage
`active` counters; the calendar makes members inactive on the 16th; a city-budget batch
survives kill -9 of the contributions relay and worker."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime

import httpx
import pytest

from shared.clock import WIB
from tests.e2e.conftest import AUTH, synthetic_worker
from tests.e2e.test_live_coverage import coverage, wait_until

pytestmark = pytest.mark.e2e

# Kota Tebing Tinggi: kept apart from the Binjai tests of the same stack.
VILLAGES = ["12.76.01.1001", "12.76.01.1002", "12.76.02.1004"]


def register(running, rows: list[dict]) -> list[str]:
    response = httpx.post(f"{running.url('registration')}/v1/participants/bulk",
                          json={"participants": rows}, headers=AUTH, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == len(rows), response.json()["rejected"][:3]
    return [r["participant_id"] for r in response.json()["results"]]


def wait_known(running, pids: list[str], timeout: float = 30.0) -> None:
    """Until the contributions service has learnt every participant from the events."""
    url = running.url("contributions")
    with httpx.Client(timeout=5) as client:
        for pid in pids:
            wait_until(lambda p=pid: client.get(f"{url}/v1/memberships/{p}",
                                                headers=AUTH).status_code == 200 or None,
                       timeout, f"participant {pid} known to contributions")


def dues(running, pid: str, months: int = 1) -> dict:
    response = httpx.get(f"{running.url('contributions')}/v1/dues/{pid}?months={months}",
                         headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def line(running, pid: str, ref: str) -> dict:
    owed = dues(running, pid)
    return {"payment_ref": ref, "participant_id": pid, "first_period": owed["first_period"],
            "months": 1, "amount": owed["amount"], "payer": "government", "funding_code": "SG"}


def test_paying_makes_workers_active_in_the_coverage_counters_and_the_16th_ends_it(
        running_stack):
    running_stack.set_clock(datetime(2026, 11, 20, 9, 0, tzinfo=WIB))
    rng = random.Random(11)
    before = coverage(running_stack, "12.76")
    pids = register(running_stack, [synthetic_worker(rng.choice(VILLAGES), rng)
                                    for _ in range(20)])
    wait_known(running_stack, pids)
    # November was due on the 15th, so paying it makes them active.
    url = f"{running_stack.url('contributions')}/v1/contributions"
    for index, pid in enumerate(pids[:12]):
        owed = dues(running_stack, pid, months=1)
        response = httpx.post(url, headers=AUTH, timeout=5, json={
            "payment_ref": f"VA-E2E-{index}", "participant_id": pid,
            "first_period": owed["first_period"], "months": 1, "amount": owed["amount"],
            "payer": "self"})
        assert response.status_code == 201, response.text
        assert response.json()["membership_status"] == "active"

    def counted(active: int, inactive: int):
        def check():
            now = coverage(running_stack, "12.76")
            ok = (now["active"] == before["active"] + active and
                  now["inactive"] == before["inactive"] + inactive and
                  now["registered"] == before["registered"] + 20)
            return True if ok else {k: now[k] - before[k] for k in ("active", "inactive")}
        return check

    wait_until(counted(12, 8), 15, "12 active, 8 inactive")
    assert coverage(running_stack, "12.76")["by_segment"]["BPU"]["active"] >= 12
    # Paid through November: still active on 15 December, the day December is due, and
    # inactive on the 16th (the unpaid 8 are two months behind: inactive, not lapsed).
    running_stack.set_clock(datetime(2026, 12, 15, 12, 0, tzinfo=WIB))
    time.sleep(2)
    wait_until(counted(12, 8), 5, "unchanged on the due date")
    running_stack.set_clock(datetime(2026, 12, 16, 0, 30, tzinfo=WIB))
    wait_until(counted(0, 20), 15, "all inactive on the 16th")
    running_stack.set_clock(datetime(2026, 11, 20, 9, 0, tzinfo=WIB))


def test_a_city_budget_batch_survives_kill_9_of_the_relay_and_the_worker(running_stack):
    running_stack.set_clock(datetime(2026, 11, 20, 9, 0, tzinfo=WIB))
    rng = random.Random(12)
    registered_before = coverage(running_stack, "12.76")["registered"]
    pids: list[str] = []
    for _ in range(3):
        pids += register(running_stack, [synthetic_worker(rng.choice(VILLAGES), rng)
                                         for _ in range(500)])
    wait_known(running_stack, pids, timeout=60)
    # The baseline once coverage has counted the registrations too (as inactive).
    wait_until(lambda: coverage(running_stack, "12.76")["registered"]
               == registered_before + len(pids) or None, 60, "registrations counted")
    start = coverage(running_stack, "12.76")
    lines = [line(running_stack, pid, f"APBD-TT-{i}") for i, pid in enumerate(pids)]

    async def scenario() -> int:
        accepted = 0
        async with httpx.AsyncClient(timeout=60) as client:
            for n, begin in enumerate(range(0, len(lines), 250)):
                response = await client.post(
                    f"{running_stack.url('contributions')}/v1/contributions/bulk",
                    json={"contributions": lines[begin:begin + 250]}, headers=AUTH)
                assert response.status_code == 200, response.text
                accepted += response.json()["accepted"]
                if n == 1:
                    running_stack.processes["contributions-relay"].kill9()
                    running_stack.processes["contributions-worker"].kill9()
                    running_stack.processes["coverage-worker"].kill9()
                if n == 3:
                    await asyncio.to_thread(running_stack.restart, "contributions-relay",
                                            "contributions-worker", "coverage-worker")
        return accepted

    accepted = asyncio.run(scenario())
    assert accepted == len(lines)
    # Paying the same batch again (a retry by the city's system) changes nothing.
    again = httpx.post(f"{running_stack.url('contributions')}/v1/contributions/bulk",
                       json={"contributions": lines[:250]}, headers=AUTH, timeout=60).json()
    assert again["accepted"] == 250

    def exact():
        now = coverage(running_stack, "12.76")
        ok = (now["active"] == start["active"] + len(lines) and
              now["inactive"] == start["inactive"] - len(lines))
        return True if ok else {"active": now["active"] - start["active"],
                                "inactive": now["inactive"] - start["inactive"]}

    wait_until(exact, 90, "every paid worker active, exactly once")
    time.sleep(2)
    assert exact() is True


def test_right_after_registration_a_worker_is_known_or_not_yet_known_never_unknown(
        running_stack):
    rng = random.Random(23)
    url = running_stack.url("contributions")
    with httpx.Client(timeout=5) as client:
        for _ in range(5):
            [pid] = register(running_stack, [synthetic_worker(VILLAGES[0], rng)])
            first = client.get(f"{url}/v1/dues/{pid}", headers=AUTH)
            assert first.status_code == 200 or (
                first.status_code == 404 and first.json()["type"].endswith("/not-yet-known")
                and first.headers["retry-after"] == "1"), first.text
            wait_known(running_stack, [pid])
        # Caught up: the worker says so within a second or two, and an id nobody registered
        # is then plainly unknown.
        wait_until(lambda: client.get(f"{url}/v1/dues/00000000-0000-4000-8000-000000000000",
                                      headers=AUTH).json()["type"] == "about:blank" or None,
                   15, "an unknown id plainly unknown once the worker has caught up")
