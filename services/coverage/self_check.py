"""GET /v1/admin/reconcile: the coverage service checks itself. The counters it serves against
its database, region by region, at the same partition versions; and the database's village
counters against the participant facts they come from (reconcile.internal_drift). Against the
source databases of the other services: `./ucj reconcile`, an operator's tool."""

from __future__ import annotations

import asyncpg

from services.coverage.live_coverage import LiveCoverage
from services.coverage.reconcile import by_region, drift_between, internal_drift, stored_villages
from services.coverage.region_coverage import CLAIM_COUNTERS
from services.coverage.schemas import InternalDrift, SelfCheck, ServedDrift
from shared.problems import Problem

SHOWN = 100  # drift rows listed; all are counted
ATTEMPTS = 10


async def check_served_counters(live: LiveCoverage, pool: asyncpg.Pool) -> SelfCheck:
    for _attempt in range(ATTEMPTS):
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                            readonly=True):
            versions = {r["partition"]: r["version"] for r in await conn.fetch(
                "SELECT partition, version FROM counting_partitions")}
            stored = await stored_villages(conn)
            internal, internal_total = await internal_drift(conn, SHOWN)
        if await live.feed.reached(versions):
            break
    else:
        raise Problem(503, "Service unavailable", "the counters keep moving faster than "
                      "this check can follow; try again", retry_after=1)
    villages = {code for code in live.view.regions() if live.regions.is_village(code)}
    # stored_villages leaves the claim counters aside (reconcile.py): so does this comparison.
    served = {v: {n: c for n, c in (live.view.counters(v) | live.view.dimensions(v)).items()
                  if c and not n.startswith(CLAIM_COUNTERS)}
              for v in villages | stored.keys()}
    drift = drift_between(by_region(served), by_region(stored))
    return SelfCheck(
        ok=not drift and not internal_total,
        versions={str(p): v for p, v in sorted(versions.items())},
        served_drift=[ServedDrift(**d.to_json()) for d in drift[:SHOWN]],
        served_drift_rows=len(drift),
        internal_drift=[InternalDrift(**d.to_json()) for d in internal],
        internal_drift_rows=internal_total)
