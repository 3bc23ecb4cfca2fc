"""End to end, through HTTP only (issue 11's "done when"): the demo's who-pays-and-who-is-missing
data (deploy/local/demo_who_pays.py) on the whole running stack reproduces through the coverage
API: Kota Tanjungbalai's programme shows quota 690, enrolled 690, paid 345; Kabupaten Serdang
Bedagai shows 23 OPDs with none covered (12 with 904 covered staff); each channel's new
registrations show in their month, the agents with what they collected and their fee; and the
new counters agree with the source databases (reconcile, drift 0)."""

from __future__ import annotations

import asyncio
from datetime import date

import httpx
import pytest

from deploy.local import demo_who_pays
from services.coverage.reconcile import reconcile_until, render
from tests.e2e.conftest import AUTH
from tests.e2e.who_pays.conftest import Demo
from tests.polling import first_answer

pytestmark = pytest.mark.e2e


def test_tanjungbalais_programme_shows_quota_enrolled_and_paid(demo: Demo):
    coverage, seeded = demo.stack.url("coverage"), demo.seeded
    assert seeded.enrolled == 690 and seeded.programme_paid == 345

    def figures():
        body = httpx.get(f"{coverage}/v1/coverage/programmes/{seeded.programme_id}").json()
        return body if body.get("paid_this_month") == 345 and body["enrolled"] == 690 else None

    body = first_answer(figures, 60, "the programme shows 690 enrolled and 345 paid")
    assert body["quota"] == 690 and body["not_paid_this_month"] == 345
    assert body["budget_spent"] == 345 * 16_800
    assert body["budget_left"] == 690 * 16_800 * 12 - 345 * 16_800
    listed = httpx.get(f"{coverage}/v1/coverage/programmes?region=12.74").json()
    assert seeded.programme_id in [p["programme_id"] for p in listed["programmes"]]
    # the funder's own service agrees (its own database)
    own = httpx.get(f"{demo.stack.url('contributions')}/v1/programmes/{seeded.programme_id}",
                    headers=AUTH).json()
    assert (own["quota"], own["enrolled"]) == (690, 690)


def test_serdang_bedagai_shows_23_opds_with_none_covered(demo: Demo):
    coverage = demo.stack.url("coverage")

    def summary():
        body = httpx.get(f"{coverage}/v1/coverage/employers?region=12.18&kind=opd").json()
        return body if body["summary"]["active"] == 904 else None

    body = first_answer(summary, 60, "904 covered staff of Serdang Bedagai's OPDs")
    assert body["summary"]["employers"] == 35
    assert body["summary"]["with_covered"] == 12 and body["summary"]["without_covered"] == 23
    none = httpx.get(f"{coverage}/v1/coverage/employers?region=12.18&kind=opd&covered=none"
                     ).json()
    assert len(none["employers"]) == 23 and all(e["active"] == 0 for e in none["employers"])
    worst = body["employers"][0]
    assert worst["compliance"] == 0.0  # lowest compliance first


def test_each_channel_shows_its_new_registrations_this_month(demo: Demo):
    coverage, by_channel = demo.stack.url("coverage"), demo.seeded.by_channel
    month = f"{date.today():%Y-%m}"

    def channels():
        body = httpx.get(f"{coverage}/v1/coverage/channels?region=12").json()
        totals = body["totals"]
        if all(totals.get(c, {}).get("registered", 0) >= n for c, n in by_channel.items()):
            return body
        return None

    body = first_answer(channels, 60, f"channels {by_channel}")
    for channel in ("pemda", "employer", "agent", "village_office", "partner_api"):
        months = {m["month"]: m for m in body["channels"][channel]}
        assert months[month]["registered"] >= by_channel[channel], channel
    agents = httpx.get(f"{coverage}/v1/coverage/agents?region=12").json()
    ranked = {a["agent_id"]: a for a in agents["agents"]}
    assert set(demo_who_pays.AGENTS) <= set(ranked)
    for agent in demo_who_pays.AGENTS:
        assert ranked[agent]["collected"] > 0
        assert ranked[agent]["fee"] == sum(m["fee"] for m in ranked[agent]["months"])
        assert not ranked[agent]["to_be_dropped"]


def test_the_new_counters_agree_with_the_sources(demo: Demo):
    urls = demo.stack.infra.database_urls
    result = asyncio.run(reconcile_until(urls["ucj_registration"], urls["ucj_contributions"],
                                         urls["ucj_coverage"], wait_seconds=30))
    assert result.ok, render(result, 30)
    dimensions = {d.counter.split("/")[0] for d in result.drift}
    assert not dimensions
