"""The coverage API's read side: counters summed over the worker's partitions, UCJ, gaps,
claims, and the event stream of their changes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest

from services.coverage.api import create_app
from services.coverage.change_hub import ChangeHub
from services.coverage.counters_view import RegionCountersView
from services.coverage.counting import ClaimFacts, CounterCell, claim_counters
from services.coverage.live_coverage import LiveCoverage
from services.coverage.region_coverage import (
    WorkforceFigure,
    claims_of,
    coverage_of,
    gap_to_target,
    ucj_ratio,
)
from services.coverage.region_selection import listed_regions, stream_selection
from services.coverage.settings import CoverageApiSettings
from shared.problems import Problem

BINJAI = {"code": "12.75", "name": "Kota Binjai", "level": "regency"}
SAKERNAS_2024 = WorkforceFigure(workforce=132826, year=2024, source="BPS Sakernas")


V1, V2, V3 = "12.75.01.1001", "12.75.01.1002", "12.75.02.1001"  # villages of Kota Binjai
MEDAN = "12.71.01.1001"


def cells(partition: int, villages: dict[str, dict[str, int]]) -> list[CounterCell]:
    """What the worker's counters hold for `partition` in these villages (absolute values)."""
    return [CounterCell(partition, village, name, value)
            for village, counters in villages.items() for name, value in counters.items()]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_regions_counters_are_the_sum_of_every_worker_partition():
    view = RegionCountersView()
    view.apply(cells(0, {
        V1: {"registered": 3, "active": 1, "inactive": 2, "BPU.registered": 3, "BPU.active": 1},
        V3: {"registered": 2, "inactive": 2, "PU.registered": 2}}))
    view.apply(cells(7, {
        V1: {"registered": 2, "active": 2, "BPU.registered": 2, "BPU.active": 2},
        V2: {"terminated": 1}}))
    counters = view.counters("12.75")
    assert counters["registered"] == 7
    assert counters["active"] == 3
    assert counters["inactive"] == 4
    assert counters["terminated"] == 1
    assert counters["BPU.registered"] == 5
    assert counters["BPU.active"] == 3
    assert counters["PU.registered"] == 2


def test_villages_add_up_to_districts_regencies_provinces_and_the_nation():
    view = RegionCountersView()
    view.apply(cells(0, {V1: {"registered": 1}, V2: {"registered": 2}, V3: {"registered": 4}}))
    view.apply(cells(5, {MEDAN: {"registered": 8}}))
    registered = {code: view.counters(code)["registered"]
                  for code in (V1, V2, "12.75.01", "12.75.02", "12.75", "12.71", "12", "ID")}
    assert registered == {V1: 1, V2: 2, "12.75.01": 3, "12.75.02": 4, "12.75": 7,
                          "12.71": 8, "12": 15, "ID": 15}


def test_the_newest_value_of_a_cell_replaces_the_older():
    view = RegionCountersView()
    view.apply(cells(3, {V1: {"registered": 10, "active": 4, "inactive": 6}}))
    view.apply(cells(3, {V1: {"registered": 11, "active": 5}}))
    assert view.counters("12")["registered"] == 11
    assert view.counters(V1)["active"] == 5
    assert view.counters(V1)["inactive"] == 6  # a cell not read again keeps its value


def test_a_counter_fallen_to_zero_counts_nothing_there_any_more():
    view = RegionCountersView()
    view.apply(cells(3, {V1: {"registered": 2}, V3: {"registered": 1}}))
    view.apply(cells(3, {V3: {"registered": 0}}))
    assert view.counters(V3)["registered"] == 0
    assert view.counters("12.75.02")["registered"] == 0
    assert view.counters("ID")["registered"] == 2
    view.apply(cells(3, {V1: {"registered": 0}}))
    assert view.regions() == set()


def test_reading_the_same_cells_again_counts_nothing_twice():
    view = RegionCountersView()
    for _ in range(3):
        view.apply(cells(1, {V1: {"registered": 9, "active": 9}}))
    assert view.counters("ID")["registered"] == 9


def test_a_counter_the_worker_left_out_is_zero():
    view = RegionCountersView()
    view.apply(cells(2, {V1: {"registered": 1, "inactive": 1, "JAKON.registered": 1}}))
    counters = view.counters("12.75")
    assert counters["active"] == 0
    assert counters["terminated"] == 0
    assert counters["PMI.registered"] == 0
    assert counters["JAKON.active"] == 0


def test_a_region_nobody_counts_yet_shows_zeros():
    view = RegionCountersView()
    assert set(view.counters("12.75.01.1001").values()) == {0}
    assert view.updated_at("12.75.01.1001") is None


def test_a_region_was_updated_when_a_change_to_it_was_last_seen():
    view = RegionCountersView()
    view.apply(cells(0, {V1: {"registered": 1}}), at("2026-11-25T10:00:00+00:00"))
    view.apply(cells(1, {V3: {"registered": 1}}), at("2026-11-25T10:30:00+00:00"))
    assert view.updated_at("12.75") == datetime(2026, 11, 25, 10, 30, tzinfo=UTC)
    assert view.updated_at("12.75.01") == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    # the same counters again, later: nothing changed, so nothing was updated
    view.apply(cells(0, {V1: {"registered": 1}}), at("2026-11-25T12:00:00+00:00"))
    assert view.updated_at(V1) == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_a_cell_of_an_unknown_village_is_skipped_and_the_rest_counts():
    view = RegionCountersView()
    view.apply([CounterCell(1, "12.75.01.9999", "registered", 5),
                CounterCell(1, "12.75", "registered", 5),
                CounterCell(1, V1, "registered", 8)])
    assert view.unknown_villages == 2
    assert view.counters("ID")["registered"] == 8


def test_changed_regions_are_reported_once_and_unchanged_values_not_at_all():
    view = RegionCountersView()
    view.apply(cells(0, {V1: {"registered": 1}}))
    view.apply(cells(0, {V1: {"registered": 2}}))
    assert view.take_changes() == {V1, "12.75.01", "12.75", "12", "ID"}
    assert view.take_changes() == set()
    view.apply(cells(0, {V1: {"registered": 2}}))
    assert view.take_changes() == set()
    view.apply(cells(0, {V3: {"registered": 1}}))
    assert view.take_changes() == {V3, "12.75.02", "12.75", "12", "ID"}


def test_ucj_is_active_participants_over_the_working_population():
    # Labuhanbatu: 66,510 / 181,567 = 36.63%.
    assert ucj_ratio(66510, 181567) == 0.366311
    # Bali reported 50.88% for 935,079 / 1,873,899: the ratio is 49.90%.
    assert ucj_ratio(935079, 1873899) == pytest.approx(0.499002, abs=1e-6)


def test_ucj_is_null_without_a_workforce_figure():
    assert ucj_ratio(500, None) is None
    body = coverage_of(BINJAI, {"active": 500}, None, None)
    assert body["ucj"] is None
    assert body["workforce"] is None


def test_gap_to_target_is_the_active_workers_still_needed():
    # Binjai's 2025 target, 37.10% of 132,826 workers, from 33% covered.
    assert gap_to_target(43833, 132826, 0.3710) == 49279 - 43833


def test_gap_to_target_is_zero_once_the_target_is_reached():
    assert gap_to_target(60000, 132826, 0.3710) == 0


def test_gap_to_target_is_counted_in_whole_people_without_float_error():
    # 0.07 * 100 is 7.000000000000001 in floating point: still 7 people.
    assert gap_to_target(0, 100, 0.07) == 7
    assert gap_to_target(0, 3, 0.5) == 2


def test_gap_to_target_is_null_without_a_workforce_figure():
    assert gap_to_target(10, None, 0.5) is None


def test_region_coverage_has_the_contracts_shape():
    view = RegionCountersView()
    view.apply(cells(0, {V1: {"registered": 3, "active": 2, "inactive": 1,
                              "BPU.registered": 3, "BPU.active": 2}}),
               at("2026-11-25T10:00:00+00:00"))
    body = coverage_of(BINJAI, view.counters("12.75"), view.updated_at("12.75"), SAKERNAS_2024,
                       target=0.3710)
    assert body["region"] == BINJAI
    assert body["workforce"] == 132826
    assert body["workforce_year"] == 2024
    assert body["workforce_source"] == "BPS Sakernas"
    assert (body["registered"], body["active"], body["inactive"], body["terminated"]) == (
        3, 2, 1, 0)
    assert body["by_segment"] == {"PU": {"registered": 0, "active": 0},
                                  "BPU": {"registered": 3, "active": 2},
                                  "JAKON": {"registered": 0, "active": 0},
                                  "PMI": {"registered": 0, "active": 0}}
    assert body["ucj"] == round(2 / 132826, 6)
    assert body["gap_to_target"] == 49279 - 2
    assert body["updated_at"] == "2026-11-25T10:00:00+00:00"
    assert "gap_to_target" not in coverage_of(BINJAI, {}, None, SAKERNAS_2024)


NO_CLAIMS = {"submitted": 0, "approved": 0, "rejected": 0, "benefit_paid": 0}


def test_claims_are_counted_per_programme_by_status_with_the_benefits_paid():
    view = RegionCountersView()
    view.apply(cells(0, {V1: {"claims.JKM.submitted": 1, "claims.JKM.approved": 2,
                              "claims.JKM.benefit_paid": 84_000_000, "claims.JHT.rejected": 1}}))
    claims = coverage_of(BINJAI, view.counters("12.75"), None, None)["claims"]
    assert claims["JKM"] == {"submitted": 1, "approved": 2, "rejected": 0,
                             "benefit_paid": 84_000_000}
    assert claims["JHT"] == {**NO_CLAIMS, "rejected": 1}


def test_every_programme_has_its_claims_and_zeros_where_there_are_none():
    assert claims_of({}) == {program: NO_CLAIMS for program in ("JKK", "JKM", "JHT", "JP", "JKP")}
    assert list(coverage_of(BINJAI, {}, None, None)["claims"]) == ["JKK", "JKM", "JHT", "JP",
                                                                    "JKP"]


def test_claims_add_up_over_partitions_and_up_to_the_nation():
    view = RegionCountersView()
    view.apply(cells(0, {V1: {"claims.JKK.approved": 1, "claims.JKK.benefit_paid": 5_000_000}}))
    view.apply(cells(4, {V3: {"claims.JKK.approved": 2, "claims.JKK.benefit_paid": 7_500_000},
                         MEDAN: {"claims.JKK.submitted": 3}}))
    jkk = {code: claims_of(view.counters(code))["JKK"]
           for code in ("12.75.01", "12.75", "12.71", "12", "ID")}
    assert jkk["12.75.01"] == {**NO_CLAIMS, "approved": 1, "benefit_paid": 5_000_000}
    assert jkk["12.75"] == {**NO_CLAIMS, "approved": 3, "benefit_paid": 12_500_000}
    assert jkk["12.71"] == {**NO_CLAIMS, "submitted": 3}
    assert jkk["12"] == jkk["ID"] == {"submitted": 3, "approved": 3, "rejected": 0,
                                      "benefit_paid": 12_500_000}


def test_a_claim_decided_moves_from_submitted_to_its_decision():
    view = RegionCountersView()
    view.apply(cells(2, {V1: {"claims.JP.submitted": 1}}))
    view.apply(cells(2, {V1: {"claims.JP.submitted": 0, "claims.JP.approved": 1,
                              "claims.JP.benefit_paid": 1_200_000}}))
    assert claims_of(view.counters("ID"))["JP"] == {
        "submitted": 0, "approved": 1, "rejected": 0, "benefit_paid": 1_200_000}


def test_the_api_reads_the_claim_counters_the_workers_write():
    view = RegionCountersView()
    for claim in (ClaimFacts(2, V1, "JKM", "approved", 42_000_000),
                  ClaimFacts(1, V3, "JKP", "submitted")):
        view.apply([CounterCell(0, claim.village, name, value)
                    for name, value in claim_counters(claim).items()])
    claims = claims_of(view.counters("ID"))
    assert claims["JKM"] == {**NO_CLAIMS, "approved": 1, "benefit_paid": 42_000_000}
    assert claims["JKP"] == {**NO_CLAIMS, "submitted": 1}


async def test_a_slow_stream_client_gets_each_changed_region_once():
    hub = ChangeHub()
    subscription = hub.subscribe(lambda code: code.count(".") <= 1)
    hub.publish({"12.75"})
    hub.publish({"12.75", "12"})
    hub.publish({"12.75.01"})  # a district: not followed
    assert await subscription.next_changes(0.1) == {"12", "12.75"}
    assert await subscription.next_changes(0.01) == set()


async def test_shutting_down_ends_every_stream():
    hub = ChangeHub()
    subscription = hub.subscribe(lambda code: True)
    waiting = asyncio.create_task(subscription.next_changes(30))
    await asyncio.sleep(0)
    hub.close()
    assert await asyncio.wait_for(waiting, 1) == set()
    assert subscription.closed


@pytest.fixture(scope="module")
def context() -> LiveCoverage:
    return LiveCoverage()


def test_regencies_of_a_province_are_listed_in_code_order(context):
    regencies = listed_regions(context, "regency", "12")
    codes = [r.code for r in regencies]
    assert "12.75" in codes
    assert codes == sorted(codes)
    assert {r.level for r in regencies} == {"regency"}


@pytest.mark.parametrize(("level", "parent"), [
    ("district", None),  # too many to list without a regency
    ("village", None),
    ("regency", "12.75"),  # a regency is not the level above a regency
    ("district", "99.99"),  # no such regency
    ("national", "ID"),
])
def test_listing_needs_a_parent_of_the_level_above(context, level, parent):
    with pytest.raises(Problem) as refused:
        listed_regions(context, level, parent)
    assert refused.value.status == 422
    assert refused.value.errors[0]["field"] == "parent"


def test_a_stream_follows_a_regions_lineage_and_children(context):
    snapshot, wants = stream_selection(context, None, "12.75")
    codes = [r.code for r in snapshot]
    assert codes[:3] == ["ID", "12", "12.75"]
    assert wants("12.75.01") and wants("12")
    assert not wants("11") and not wants("12.75.01.1001")


def test_a_stream_refuses_unknown_regions(context):
    with pytest.raises(Problem) as refused:
        stream_selection(context, "ID,99.99", None)
    assert refused.value.status == 422


# --- the event stream, through the app (in memory: no server, no database) --------------------


class StreamClient:
    """One GET on the app as a server would make it, reading the body as it arrives."""

    def __init__(self, app, path: str, query: str = "", *,
                 headers: dict[str, str] | None = None, client: str = "127.0.0.1"):
        self.chunks: asyncio.Queue[dict] = asyncio.Queue()
        self.gone = asyncio.Event()
        sent = [(b"host", b"test")] + [(k.lower().encode(), v.encode())
                                       for k, v in (headers or {}).items()]
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
                 "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
                 "headers": sent, "client": (client, 50000), "server": ("test", 80)}
        self.task = asyncio.create_task(app(scope, self._receive, self.chunks.put))
        self.start: dict | None = None
        self._text = ""

    async def _receive(self) -> dict:
        if not hasattr(self, "_asked"):
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def next_block(self, seconds: float = 2.0) -> str | None:
        """The next event or comment (its lines, without the blank line); None at the end."""
        while "\n\n" not in self._text:
            message = await asyncio.wait_for(self.chunks.get(), seconds)
            if message["type"] == "http.response.start":
                self.start = message
                continue
            self._text += message.get("body", b"").decode()
            if not message.get("more_body", False):
                return None
        block, self._text = self._text.split("\n\n", 1)
        return block

    async def next_event(self, seconds: float = 2.0) -> tuple[str, dict]:
        while True:
            block = await self.next_block(seconds)
            assert block is not None, "the stream ended"
            lines = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
            if "event" in lines:
                return lines["event"], orjson.loads(lines["data"])

    async def leave(self) -> None:
        self.gone.set()
        await asyncio.wait_for(self.task, 2)


@pytest.fixture
def streaming():
    """The coverage app as if its lifespan had run: ready, following nothing."""
    settings = CoverageApiSettings(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
                                   UCJ_STREAM_COALESCE_SECONDS=0,
                                   UCJ_STREAM_HEARTBEAT_SECONDS=0.2)
    app = create_app(settings)
    app.state.ready = True
    return app, app.state.coverage


def counted(live: LiveCoverage, villages: dict[str, dict[str, int]]) -> None:
    """What the follower does with cells read from the database."""
    live.view.apply(cells(0, villages))
    live.hub.publish(live.view.take_changes())


async def test_a_stream_starts_with_a_snapshot_of_the_regions_it_follows(streaming):
    app, live = streaming
    client = StreamClient(app, "/v1/coverage/stream", "parent=12.75")
    assert await client.next_block() == "retry: 3000"
    assert client.start is not None and client.start["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in client.start["headers"]
    name, snapshot = await client.next_event()
    assert name == "snapshot"
    codes = [item["region"]["code"] for item in snapshot["items"]]
    assert codes[:3] == ["ID", "12", "12.75"] and "12.75.01" in codes
    assert snapshot["items"][0]["claims"]["JKK"] == NO_CLAIMS
    assert "target" not in snapshot["items"][0]
    assert len(live.hub) == 1
    await client.leave()
    assert len(live.hub) == 0  # the client gone, its subscription too


async def test_a_stream_sends_the_regions_it_follows_each_once_per_change(streaming):
    app, live = streaming
    client = StreamClient(app, "/v1/coverage/stream", "parent=12.75")
    await client.next_event()  # the snapshot
    counted(live, {V1: {"registered": 2, "claims.JKM.approved": 1}})
    sent = {}
    for _ in range(4):  # the lineage of V1 this stream follows: ID, 12, 12.75, 12.75.01
        name, item = await client.next_event()
        assert name == "counters"
        sent[item["region"]["code"]] = item
    assert set(sent) == {"ID", "12", "12.75", "12.75.01"}
    assert all(item["registered"] == 2 for item in sent.values())
    assert sent["12.75"]["claims"]["JKM"]["approved"] == 1
    counted(live, {MEDAN: {"registered": 1}})  # Medan: only the nation and the province
    assert {(await client.next_event())[1]["region"]["code"] for _ in range(2)} == {"ID", "12"}
    await client.leave()


async def test_an_idle_stream_sends_a_heartbeat_comment(streaming):
    app, _ = streaming
    client = StreamClient(app, "/v1/coverage/stream", "regions=ID")
    await client.next_event()
    assert await client.next_block() == ": heartbeat"
    await client.leave()


async def test_a_stream_ends_when_the_service_stops(streaming):
    app, live = streaming
    client = StreamClient(app, "/v1/coverage/stream", "regions=ID,12")
    await client.next_event()
    live.hub.close()
    assert await client.next_block() is None  # the response ended, cleanly
    await asyncio.wait_for(client.task, 2)
    assert len(live.hub) == 0
