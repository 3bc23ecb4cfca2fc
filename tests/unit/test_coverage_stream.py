"""The live stream GET /v1/coverage/stream: a region and its descendants to a depth, each
region coalesced, event ids and Last-Event-ID resume, a cap of open streams per client address.
Through the app in memory, as a server would call it: no server, no database."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from services.coverage.api import create_app
from services.coverage.change_hub import ChangeHub
from services.coverage.change_stream import resume_point
from services.coverage.live_coverage import LiveCoverage
from services.coverage.region_selection import MAX_STREAM_REGIONS, stream_selection
from services.coverage.settings import CoverageApiSettings
from shared.problems import Problem
from tests.unit.test_coverage_view import MEDAN, V1, V2, StreamClient, cells

STREAM = "/v1/coverage/stream"
NOWHERE = "postgresql://nobody@127.0.0.1:1/none"


def app_with(**settings: object):
    """The coverage app as if its lifespan had run: ready, following nothing."""
    app = create_app(CoverageApiSettings(DATABASE_URL=NOWHERE, **settings))
    app.state.ready = True
    return app, app.state.coverage


@pytest.fixture
def streaming():
    return app_with(UCJ_STREAM_COALESCE_SECONDS=0, UCJ_STREAM_HEARTBEAT_SECONDS=0.2)


@pytest.fixture(scope="module")
def context() -> LiveCoverage:
    return LiveCoverage()


def counted(live: LiveCoverage, villages: dict[str, dict[str, int]]) -> None:
    """What the follower does with cells read from the database."""
    live.view.apply(cells(0, villages))
    live.hub.publish(live.view.take_changes())


async def next_message(client: StreamClient, seconds: float = 2.0) -> tuple[str, str, dict]:
    """The next event's name, id and data (comments skipped)."""
    while True:
        block = await client.next_block(seconds)
        assert block is not None, "the stream ended"
        lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
        if "event" in lines:
            return lines["event"], lines["id"], orjson.loads(lines["data"])


async def nothing_but_heartbeats(client: StreamClient, seconds: float = 0.5) -> bool:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            block = await client.next_block(left)
        except TimeoutError:
            return True
        if block != ": heartbeat":
            return False
    return True


def codes_of(snapshot: dict) -> list[str]:
    return [item["region"]["code"] for item in snapshot["items"]]


async def refused(client: StreamClient) -> tuple[int, dict[str, str], dict]:
    """The status, headers and problem of a request the route refused."""
    assert await client.next_block() is None
    assert client.start is not None
    headers = {k.decode(): v.decode() for k, v in client.start["headers"]}
    return client.start["status"], headers, orjson.loads(client._text)


# --- which regions: region and depth --------------------------------------------------------


def test_a_region_to_depth_one_is_the_region_and_its_children_only(context):
    snapshot, wants = stream_selection(context, None, None, "12.75", 1)
    codes = [r.code for r in snapshot]
    assert codes[0] == "12.75"
    assert codes[1:] == [r.code for r in context.regions.children("12.75")]
    assert wants("12.75") and wants("12.75.01")
    assert not wants("ID") and not wants("12") and not wants(V1) and not wants("12.71")


def test_depth_is_one_when_not_given(context):
    assert stream_selection(context, None, None, "12.75")[0] == \
        stream_selection(context, None, None, "12.75", 1)[0]


def test_depth_zero_is_the_region_alone_and_two_reaches_the_grandchildren(context):
    assert [r.code for r in stream_selection(context, None, None, "12.75", 0)[0]] == ["12.75"]
    snapshot, wants = stream_selection(context, None, None, "12.75", 2)
    assert {r.level for r in snapshot} == {"regency", "district", "village"}
    assert wants(V1) and not wants("12")


def test_the_nation_to_depth_two_is_the_dashboards_overview(context):
    snapshot, _ = stream_selection(context, None, None, "ID", 2)
    assert len(snapshot) == 1 + len(context.at_level("province")) + len(
        context.at_level("regency"))


@pytest.mark.parametrize(("region", "depth", "field"), [
    ("99.99", 1, "region"),  # no such region
    (None, 1, "depth"),  # a depth without a region
    ("12.75", 5, "depth"),  # below the villages
    ("12.75", -1, "depth"),
    ("ID", 3, "depth"),  # every district of the nation: thousands
])
def test_a_stream_refuses_a_region_or_depth_it_cannot_follow(context, region, depth, field):
    with pytest.raises(Problem) as refusal:
        stream_selection(context, None, None, region, depth)
    assert refusal.value.status == 422
    assert refusal.value.errors[0]["field"] == field


def test_no_selection_is_larger_than_the_cap(context):
    for code in ("ID", "35", "11.08"):  # the largest at depth 2: ~550, ~700, ~880 regions
        assert len(stream_selection(context, None, None, code, 2)[0]) <= MAX_STREAM_REGIONS


async def test_a_region_stream_sends_changes_of_the_region_and_its_children_only(streaming):
    app, live = streaming
    client = StreamClient(app, STREAM, "region=12.75&depth=1")
    name, _, snapshot = await next_message(client)
    assert name == "snapshot" and codes_of(snapshot)[0] == "12.75"
    assert "ID" not in codes_of(snapshot) and V1 not in codes_of(snapshot)
    counted(live, {V1: {"registered": 3}})
    sent = {(await next_message(client))[2]["region"]["code"] for _ in range(2)}
    assert sent == {"12.75", "12.75.01"}  # not the nation, the province or the village
    counted(live, {MEDAN: {"registered": 1}})  # another regency: nothing for this stream
    assert await nothing_but_heartbeats(client)
    await client.leave()


async def test_a_parent_stream_still_follows_the_lineage_and_children(streaming):
    app, live = streaming
    client = StreamClient(app, STREAM, "parent=12.75")
    assert codes_of((await next_message(client))[2])[:3] == ["ID", "12", "12.75"]
    await client.leave()


async def test_a_bad_depth_is_a_422_problem(streaming):
    app, _ = streaming
    status, _, problem = await refused(StreamClient(app, STREAM, "region=ID&depth=3"))
    assert status == 422 and problem["errors"][0]["field"] == "depth"


# --- coalescing ------------------------------------------------------------------------------


def test_each_region_is_sent_at_most_twice_a_second_by_default():
    assert CoverageApiSettings(DATABASE_URL=NOWHERE).stream_coalesce_seconds == 0.5


async def test_changes_within_the_coalescing_interval_are_sent_once_with_the_latest_value():
    app, live = app_with(UCJ_STREAM_COALESCE_SECONDS=0.4)
    client = StreamClient(app, STREAM, "region=12.75.01&depth=0")
    await next_message(client)
    counted(live, {V1: {"registered": 1}})
    _, _, first = await next_message(client)
    sent_at = time.monotonic()
    for n in (2, 3, 4):
        counted(live, {V1: {"registered": n}})
        await asyncio.sleep(0.02)
    _, _, second = await next_message(client)
    assert time.monotonic() - sent_at >= 0.3
    assert (first["registered"], second["registered"]) == (1, 4)
    assert await nothing_but_heartbeats(client, 0.5)  # nothing more: 2, 3 were never sent
    await client.leave()


# --- ids and Last-Event-ID -------------------------------------------------------------------


async def test_every_event_has_an_id_that_says_how_far_the_client_got(streaming):
    app, live = streaming
    client = StreamClient(app, STREAM, "region=12.75&depth=1")
    _, snapshot_id, _ = await next_message(client)
    assert snapshot_id == f"{live.hub.epoch}-{live.hub.sequence}"
    counted(live, {V1: {"registered": 1}})
    ids = [(await next_message(client))[1] for _ in range(2)]
    # Until the round's last event the client holds the previous round's id: cut off in the
    # middle, it resumes from before the round.
    assert ids == [snapshot_id, f"{live.hub.epoch}-{live.hub.sequence}"]
    await client.leave()


async def test_a_client_that_reconnects_gets_only_the_regions_changed_since(streaming):
    app, live = streaming
    client = StreamClient(app, STREAM, "region=12.75&depth=1")
    _, last_id, _ = await next_message(client)
    await client.leave()
    counted(live, {V2: {"registered": 1}, MEDAN: {"registered": 1}})  # while it was away
    again = StreamClient(app, STREAM, "region=12.75&depth=1", headers={"Last-Event-ID": last_id})
    name, resumed_id, snapshot = await next_message(again)
    assert name == "snapshot"
    assert sorted(codes_of(snapshot)) == ["12.75", "12.75.01"]
    assert snapshot["items"][0]["registered"] == 1
    assert resumed_id == f"{live.hub.epoch}-{live.hub.sequence}"
    await again.leave()
    nothing = StreamClient(app, STREAM, "region=12.75&depth=1",
                           headers={"Last-Event-ID": resumed_id})
    assert codes_of((await next_message(nothing))[2]) == []  # nothing changed since
    await nothing.leave()


@pytest.mark.parametrize("last_id", [
    "0123abcd-0",  # another process's (a restart, another replica)
    "garbled", "-1", "", "x" * 500,
    "{epoch}-999999",  # a sequence this process has not reached
])
async def test_an_unknown_last_event_id_gets_the_whole_snapshot(streaming, last_id):
    app, live = streaming
    counted(live, {V1: {"registered": 1}})
    client = StreamClient(app, STREAM, "region=12.75&depth=1",
                          headers={"Last-Event-ID": last_id.format(epoch=live.hub.epoch)})
    snapshot = (await next_message(client))[2]
    assert len(codes_of(snapshot)) == 1 + len(live.regions.children("12.75"))
    await client.leave()


def test_a_resume_point_is_a_sequence_this_hub_gave():
    hub = ChangeHub()
    hub.publish({"12"})
    assert resume_point(hub, f"{hub.epoch}-1") == 1
    assert resume_point(hub, f"{hub.epoch}-0") == 0
    assert resume_point(hub, f"{hub.epoch}-2") is None
    assert resume_point(hub, f"{hub.epoch}-+1") is None
    assert resume_point(hub, None) is None


def test_the_hub_numbers_each_publish_and_knows_what_changed_after_it():
    hub = ChangeHub()
    hub.publish({"12", "12.75"})
    hub.publish(set())  # nothing changed: no number spent
    hub.publish({"12"})
    assert hub.sequence == 2
    assert hub.changed_since(0, ["ID", "12", "12.75"]) == ["12", "12.75"]
    assert hub.changed_since(1, ["ID", "12", "12.75"]) == ["12"]
    assert hub.changed_since(2, ["12"]) == []


# --- the cap per client address --------------------------------------------------------------


async def test_past_its_cap_of_open_streams_an_address_gets_a_429_with_retry_after():
    app, live = app_with(UCJ_STREAM_MAX_PER_CLIENT=2, UCJ_STREAM_HEARTBEAT_SECONDS=0.2)
    held = [StreamClient(app, STREAM, "regions=ID", client="10.0.0.1") for _ in range(2)]
    for client in held:
        await next_message(client)
    status, headers, problem = await refused(
        StreamClient(app, STREAM, "regions=ID", client="10.0.0.1"))
    assert status == 429
    assert int(headers["retry-after"]) > 0
    assert headers["content-type"] == "application/problem+json"
    assert problem["status"] == 429 and "2 streams" in problem["detail"]
    other = StreamClient(app, STREAM, "regions=ID", client="10.0.0.2")  # another address
    await next_message(other)
    await held[0].leave()
    assert live.hub.open_for("10.0.0.1") == 1
    again = StreamClient(app, STREAM, "regions=ID", client="10.0.0.1")  # room again
    await next_message(again)
    for client in (held[1], other, again):
        await client.leave()
    assert len(live.hub) == 0 and live.hub.open_for("10.0.0.1") == 0


async def test_a_stream_counts_against_its_cap_from_the_request_on():
    """Streams opened at once cannot all slip under the cap before any has begun."""
    app, live = app_with(UCJ_STREAM_MAX_PER_CLIENT=3)
    clients = [StreamClient(app, STREAM, "regions=ID", client="10.0.0.3") for _ in range(5)]
    statuses = []
    for client in clients:
        await client.next_block()
        assert client.start is not None
        statuses.append(client.start["status"])
    assert sorted(statuses) == [200, 200, 200, 429, 429]
    for client in clients:
        await client.leave()
    assert live.hub.open_for("10.0.0.3") == 0


def test_a_new_workforce_figure_or_target_announces_the_region_and_its_ancestors():
    from decimal import Decimal

    from services.coverage.region_coverage import UcjTarget, WorkforceFigure

    live = LiveCoverage()
    seen: list[set[str]] = []
    subscription = live.hub.subscribe(lambda code: True)
    figure = WorkforceFigure(132_826, 2024, "BPS Sakernas")
    assert live.workforce.put("12.75", figure)
    assert not live.workforce.put("12.75", figure)  # the same figure again: nothing moved
    assert live.feed.figures_moved({"12.75"}) == {"12.75", "12", "ID"}
    assert live.targets.put("12.75", UcjTarget(Decimal("37.10"), 2025, "RPJMD"))
    live.hub.publish(live.feed.figures_moved({"12.75"}))
    seen.append(subscription._pending)
    assert seen == [{"12.75", "12", "ID"}]
