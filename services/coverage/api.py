"""HTTP entry points of the coverage service (../shared/CONTRACT.md "Coverage service"): live
coverage per region (no key needed), workforce figures and UCJ targets (one at a time or a CSV
file of many), the Server-Sent Events stream, the service's self-check and the operators'
dashboard. Every answer comes from memory
(live_coverage.py), so reads keep being served, marked `stale`, while the database is away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from sse_starlette import EventSourceResponse

from services.coverage import reports
from services.coverage.change_stream import RETRY_AFTER_SECONDS, region_stream
from services.coverage.csv_import import MAX_IMPORT_BYTES, target_rows, workforce_rows
from services.coverage.history import Step, history_points, range_problem
from services.coverage.history_answer import history_answer
from services.coverage.live_coverage import LiveCoverage
from services.coverage.region_coverage import UcjTarget, WorkforceFigure
from services.coverage.region_order import Order, Sort, page
from services.coverage.region_selection import listed_regions, stream_selection
from services.coverage.schemas import (
    ImportResult,
    RegionCoverage,
    RegionCoverageList,
    RegionHistory,
    SelfCheck,
    TargetIn,
    TargetList,
    TargetOut,
    WorkforceIn,
)
from services.coverage.self_check import check_served_counters
from services.coverage.settings import CoverageApiSettings
from services.coverage.snapshots import region_history, state_as_of
from services.coverage.who_pays_api import router as who_pays_router
from services.coverage.yearly_figures import TARGETS, WORKFORCE
from shared.auth import Caller, require
from shared.problems import Problem, parsed, read_body, read_json
from shared.regions import Level
from shared.service_app import service_app

log = logging.getLogger("ucj.coverage.api")

DASHBOARD = Path(__file__).parent / "dashboard" / "index.html"
WHO_PAYS_PAGE = Path(__file__).parent / "dashboard" / "who-pays.html"
PAGES_CSS = Path(__file__).parent / "dashboard" / "common.css"  # what both pages share
PAGES_JS = Path(__file__).parent / "dashboard" / "common.js"
WORKFORCE_SCOPE = "workforce:write"
ADMIN_SCOPE = "coverage:admin"
TARGETS_SCOPE = ADMIN_SCOPE  # a plan's target is set by the service's administrators
MAX_WORKFORCE_BODY = 1024
HISTORY_TIMEOUT = 10.0  # seconds for a history or as_of read of the snapshots
CSV_BODY = {"requestBody": {"required": True, "content": {"text/csv": {"schema": {
    "type": "string"}}}}}
DESCRIPTION = ("Live Universal Coverage Jamsostek counters per region, the workforce figures "
               "behind the ratio, a Server-Sent Events stream and the operators' dashboard.")


def live_coverage(request: Request) -> LiveCoverage:
    return request.app.state.coverage


def coverage_settings(request: Request) -> CoverageApiSettings:
    return request.app.state.settings


Live = Annotated[LiveCoverage, Depends(live_coverage)]
ApiSettings = Annotated[CoverageApiSettings, Depends(coverage_settings)]
WorkforceWriter = Annotated[Caller, Depends(require(WORKFORCE_SCOPE))]
Admin = Annotated[Caller, Depends(require(ADMIN_SCOPE))]
TargetQuery = Annotated[float | None, Query(
    gt=0, le=1, description="A UCJ target as a fraction (0.5115 for 51.15%): adds "
    "`target` and `gap_to_target`, the active workers still needed to reach it; it "
    "overrides the region's own target for the year.")]

router = APIRouter()


@router.get("/v1/coverage/regions/{code}", tags=["coverage"],
            response_model_exclude_unset=True)
async def region_coverage(
    code: str, request: Request, live: Live, target: TargetQuery = None,
    as_of: Annotated[date | None, Query(description=(
        "YYYY-MM-DD: the region at the end of that day (WIB), from the last snapshot up to "
        "then; today gives the last snapshot so far. 422 for a future day; 404 before the "
        "first snapshot of the service; a region without a snapshot by then (the snapshots "
        "had begun) had no counters: zeros"))] = None,
) -> RegionCoverage:
    """One region's live coverage: counters, workforce, UCJ, claims, target, gap, forecast."""
    region = live.known_region(code)
    if as_of is None:
        return live.coverage([region], target)[0]
    if as_of > live.today():
        raise Problem(422, "Unprocessable", f"as_of {as_of} is in the future")
    async with asyncio.timeout(HISTORY_TIMEOUT):
        state = await state_as_of(request.app.state.pool, region.code, as_of)
    if state is None:
        raise Problem(404, "Not found", f"no snapshot was taken by the end of {as_of}: the "
                      "history of the counters starts later")
    return live.coverage_as_of(region, as_of, state, target)


@router.get("/v1/coverage/regions/{code}/history", tags=["coverage"])
async def region_history_route(
    code: str, request: Request, live: Live,
    from_: Annotated[date | None, Query(alias="from", description=(
        "YYYY-MM-DD, the first day (WIB); default a year before `to`"))] = None,
    to: Annotated[date | None, Query(description=(
        "YYYY-MM-DD, the last day; default and at most today"))] = None,
    step: Annotated[Step, Query(description="one point per day, week or month")] = "day",
) -> RegionHistory:
    """A region's counters over time: per period the last snapshot up to its end, with UCJ and
    the net growth of active workers (new active − lost active) since the point before. At
    most five years at once."""
    region = live.known_region(code)
    today = live.today()
    end = to or today
    start = from_ or end - timedelta(days=365)
    problem = range_problem(start, end, today)
    if problem:
        raise Problem(422, "Unprocessable", problem)
    end = min(end, today)  # no points for days to come
    async with asyncio.timeout(HISTORY_TIMEOUT):
        before, snapshots = await region_history(request.app.state.pool, region.code, start,
                                                 end)
    return history_answer(region, step, start, end,
                          history_points(snapshots, before, start, end, step))


@router.get("/v1/coverage/regions", tags=["coverage"], response_model=RegionCoverageList,
            response_model_exclude_unset=True)
async def regions_coverage(
    live: Live,
    level: Annotated[Level, Query(description="the level of the regions listed")],
    parent: Annotated[str | None, Query(
        description="code of a region of the level above; required for district and "
        "village")] = None,
    target: TargetQuery = None,
    sort: Annotated[Sort, Query(description="order by this figure (regions without it last)")
                    ] = "code",
    order: Annotated[Order, Query()] = "asc",
    limit: Annotated[int | None, Query(ge=1, le=10_000, description=(
        "at most this many regions, with `next_cursor` for the rest; all when absent"))] = None,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    """The coverage of every region of a level (under a parent), sorted (`sort=ucj&order=asc`:
    lowest UCJ first; `sort=gap_people&order=desc`: largest gap first), paged with `limit`."""
    regions = listed_regions(live, level, parent)  # bad parameters refused first

    def build() -> bytes:
        items, next_cursor = page(live.coverage(regions, target), sort, order, limit, cursor)
        answer = (RegionCoverageList(items=items) if limit is None else
                  RegionCoverageList(items=items, next_cursor=next_cursor))
        return answer.model_dump_json(exclude_unset=True).encode()

    return Response(live.remembered((level, parent, target, sort, order, limit, cursor), build),
                    media_type="application/json")


@router.put(
    "/v1/workforce/{code}", tags=["workforce"], response_model_exclude_unset=True,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": WorkforceIn.model_json_schema()}}}},
)
async def put_workforce(code: str, request: Request, _: WorkforceWriter,
                        live: Live) -> RegionCoverage:
    """Set a region's working population (the UCJ denominator); needs `workforce:write`."""
    region = live.known_region(code)
    body = parsed(WorkforceIn, await read_json(request, max_bytes=MAX_WORKFORCE_BODY))
    figure = await WORKFORCE.record(request.app.state.pool, region.code,
                                    WorkforceFigure(body.workforce, body.year, body.source))
    if live.workforce.put(region.code, figure):
        live.hub.publish(live.feed.figures_moved({region.code}))
    log.info("workforce of %s set to %d (%d)", region.code, figure.workforce, figure.year)
    return live.coverage([region])[0]


async def read_csv(request: Request) -> bytes:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "text/csv":
        raise Problem(415, "Unsupported media type",
                      f"send text/csv (got {content_type or 'no content type'})")
    return await read_body(request, max_bytes=MAX_IMPORT_BYTES)


@router.post("/v1/workforce/import", tags=["workforce"], openapi_extra=CSV_BODY)
async def import_workforce(request: Request, _: WorkforceWriter, live: Live) -> ImportResult:
    """Many workforce figures from a UTF-8 CSV file with the header
    `code,year,workforce,source` (needs `workforce:write`): every row is checked first, then
    all are written in one transaction, or none and a 422 lists each bad row (row 1 is the
    header)."""
    rows = workforce_rows(await read_csv(request), live.regions)
    await WORKFORCE.record_rows(request.app.state.pool, rows)
    live.hub.publish(live.feed.figures_moved(
        {code for code, figure in rows if live.workforce.put(code, figure)}))
    log.info("workforce imported: %d figures", len(rows))
    return ImportResult(imported=len(rows))


def _target_out(live: LiveCoverage, code: str, target: UcjTarget) -> TargetOut:
    return TargetOut.model_validate({"region": live.known_region(code).public(),
                                     "year": target.year, "ucj_target": float(target.ucj_target),
                                     "source": target.source})


@router.put(
    "/v1/targets/{code}", tags=["targets"],
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": TargetIn.model_json_schema()}}}},
)
async def put_target(code: str, request: Request, _: Admin, live: Live) -> TargetOut:
    """Set a region's UCJ target for a year, in percent (needs `coverage:admin`). Every year
    is kept; coverage answers show the current year's, else the latest earlier one."""
    region = live.known_region(code)
    body = parsed(TargetIn, await read_json(request, max_bytes=MAX_WORKFORCE_BODY))
    target = await TARGETS.record(request.app.state.pool, region.code,
                                 UcjTarget(body.percent(), body.year, body.source))
    if live.targets.put(region.code, target):
        live.hub.publish(live.feed.figures_moved({region.code}))
    log.info("UCJ target of %s for %d set to %s%%", region.code, target.year, target.ucj_target)
    return _target_out(live, region.code, target)


@router.get("/v1/targets/{code}", tags=["targets"])
async def get_targets(code: str, live: Live) -> TargetList:
    """Every year's UCJ target of a region, by year."""
    region = live.known_region(code)
    held = live.targets.of(region.code) or {}
    return TargetList(items=[_target_out(live, region.code, held[y]) for y in sorted(held)])


@router.post("/v1/targets/import", tags=["targets"], openapi_extra=CSV_BODY)
async def import_targets(request: Request, _: Admin, live: Live) -> ImportResult:
    """Many UCJ targets from a UTF-8 CSV file with the header `code,year,ucj_target,source`
    (percent; needs `coverage:admin`): all rows checked, then all written in one transaction,
    or none and a 422 lists each bad row (row 1 is the header)."""
    rows = target_rows(await read_csv(request), live.regions)
    await TARGETS.record_rows(request.app.state.pool, rows)
    live.hub.publish(live.feed.figures_moved(
        {code for code, target in rows if live.targets.put(code, target)}))
    log.info("UCJ targets imported: %d", len(rows))
    return ImportResult(imported=len(rows))



@router.get(
    "/v1/coverage/stream", tags=["coverage"], response_class=EventSourceResponse,
    responses={200: {"description": "text/event-stream: one `snapshot` event "
                     "(`{\"items\": [<region coverage>]}`), then a `counters` event "
                     "(`<region coverage>`) per changed region, at most every 500 ms per "
                     "region (UCJ_STREAM_COALESCE_SECONDS); a comment line every 15 s. Every "
                     "event has an `id`; reconnecting with `Last-Event-ID` makes the snapshot "
                     "hold only the regions changed since (all of them for an id this process "
                     "did not give)",
                     "content": {"text/event-stream": {}}},
               429: {"description": "too many open streams from this client address; "
                     "Retry-After says when to ask again"}},
)
async def stream(
    request: Request, live: Live, settings: ApiSettings,
    regions: Annotated[str | None, Query(
        description="comma-separated region codes, e.g. ID,12,12.75")] = None,
    parent: Annotated[str | None, Query(
        description="a region whose children (and its own lineage) to follow")] = None,
    region: Annotated[str | None, Query(
        description="a region to follow with its descendants `depth` levels down")] = None,
    depth: Annotated[int | None, Query(
        description="with `region`: 0 the region alone, 1 (default) and its children, 2 "
        "and its grandchildren too, … up to 4")] = None,
) -> EventSourceResponse:
    """Server-Sent Events of counter changes. Without `regions`, `parent` or `region`: the
    nation, the provinces and the regencies. The `Last-Event-ID` header (a browser sends it
    when it reconnects) resumes: the snapshot then holds only the regions changed since."""
    snapshot, wants = stream_selection(live, regions, parent, region, depth)
    if live.hub.closed:
        raise Problem(503, "Service unavailable", "the service is shutting down")
    if len(live.hub) >= settings.stream_max_clients:
        raise Problem(503, "Service unavailable", "too many open streams; try again later")
    client = request.client.host if request.client else "unknown"
    if live.hub.open_for(client) >= settings.stream_max_per_client:
        raise Problem(429, "Too many requests", (
            f"this address has {settings.stream_max_per_client} streams open, the most it may: "
            "close one, or try again after Retry-After seconds"),
            retry_after=RETRY_AFTER_SECONDS)
    return region_stream(live, snapshot, wants,
                         heartbeat_seconds=settings.stream_heartbeat_seconds,
                         coalesce_seconds=settings.stream_coalesce_seconds,
                         client=client, last_event_id=request.headers.get("last-event-id"))


@router.get("/v1/admin/reconcile", tags=["admin"])
async def reconcile_served(request: Request, _: Admin, live: Live) -> SelfCheck:
    """The coverage service checks itself (needs `coverage:admin`): the counters it serves
    against its database, region by region, and the database's village counters against
    the participant facts they come from. Against the source databases of the other
    services: `./ucj reconcile`, an operator's tool (a service reads no other's database)."""
    return await check_served_counters(live, request.app.state.pool)


def _page_file(path: Path, media_type: str) -> Response:
    """A file of the operators' pages, read anew each time (no-cache: a new build shows)."""
    return Response(path.read_bytes(), media_type=media_type,
                    headers={"Cache-Control": "no-cache"})


@router.get("/", include_in_schema=False)
async def dashboard() -> Response:
    return _page_file(DASHBOARD, "text/html; charset=utf-8")


@router.get("/who-pays", include_in_schema=False)
async def who_pays_page() -> Response:
    """Programmes, OPDs and channels of a region (?region=CODE), in Bahasa Indonesia."""
    return _page_file(WHO_PAYS_PAGE, "text/html; charset=utf-8")


@router.get("/dashboard/common.css", include_in_schema=False)
async def pages_stylesheet() -> Response:
    """The stylesheet both pages load (/ and /who-pays)."""
    return _page_file(PAGES_CSS, "text/css; charset=utf-8")


@router.get("/dashboard/common.js", include_in_schema=False)
async def pages_script() -> Response:
    """The script both pages load before their own (/ and /who-pays)."""
    return _page_file(PAGES_JS, "text/javascript; charset=utf-8")


def create_app(settings: CoverageApiSettings, *,
               snapshot_every: float | None = None) -> FastAPI:
    """`snapshot_every`: seconds between snapshots of the counters (default: the setting
    UCJ_SNAPSHOT_EVERY_SECONDS; tests use fractions)."""
    every = snapshot_every or settings.snapshot_every_seconds
    live = LiveCoverage()  # loads the region list now, not on the first request

    @asynccontextmanager
    async def setup(app: FastAPI) -> AsyncIterator[None]:
        live.today = app.state.clock.today  # the year of the figures and targets shown
        async with live.following(app.state.pool), \
                live.snapshotting(app.state.pool, app.state.clock.now, every):
            yield

    app = service_app("UCJ Live — coverage", settings=settings,
                      migrations=settings.migrations_dir,
                      routers=[router, reports.router, who_pays_router], setup=setup)
    app.description = DESCRIPTION
    app.state.coverage = live
    app.state.settings = settings
    return app
