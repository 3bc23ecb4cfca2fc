"""The coverage HTTP API: live UCJ counters per region, workforce figures, the SSE stream and
the operators' dashboard.

Counters and workforce figures are followed from the coverage database into memory
(counters_feed.CountersFollower → RegionCountersView, WorkforceCache), so reads keep being
served, marked `stale`, while the database is away. Nothing connects before the lifespan starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.coverage.counters_feed import CountersFollower, WorkforceCache
from services.coverage.counters_view import (
    SEGMENTS,
    ChangeHub,
    ChangeSubscription,
    RegionCountersView,
    WorkforceFigure,
    coverage_of,
)
from services.coverage.reconcile import by_region, drift_between, internal_drift, stored_villages
from services.coverage.settings import CoverageApiSettings
from services.coverage.workforce import record_workforce
from shared.auth import Caller, KeyStore, api_keys_router, require
from shared.db import create_pool, migrate
from shared.key_directory import key_directory
from shared.problems import (
    RETRY_AFTER_SECONDS,
    Problem,
    dependency_away,
    dependency_away_problem,
    describe_away,
    field_errors,
    install_problem_handlers,
    read_json,
    validation_problem,
)
from shared.regions import Level, Region, RegionDirectory, directory, level_of
from shared.text import refuse_controls

log = logging.getLogger("ucj.coverage.api")

MIGRATIONS = Path(__file__).parent / "migrations"
DASHBOARD = Path(__file__).parent / "dashboard" / "index.html"
WORKFORCE_SCOPE = "workforce:write"
ADMIN_SCOPE = "coverage:admin"
MAX_WORKFORCE_BODY = 1024
MAX_STREAM_REGIONS = 1000
MAX_WORKFORCE = 300_000_000
LEVEL_ABOVE: dict[str, Level] = {
    "province": "national", "regency": "province", "district": "regency", "village": "district",
}
# Listing these levels needs a parent: there are thousands of them.
PARENT_REQUIRED = ("district", "village")
# What the stream sends when the client names no regions: the levels of the dashboard's overview.
OVERVIEW_LEVELS: tuple[Level, ...] = ("national", "province", "regency")

TargetQuery = Annotated[float | None, Query(
    gt=0, le=1, description="A UCJ target as a fraction (0.5115 for 51.15%): adds "
    "`target` and `gap_to_target`, the active workers still needed to reach it.")]


# --- schemas (requests are validated; responses are documented, built by coverage_of) --------


class WorkforceIn(BaseModel):
    """A region's working population, from one survey."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"workforce": 132826, "year": 2024, "source": "BPS Sakernas"}]})

    workforce: int = Field(gt=0, le=MAX_WORKFORCE, description="working population, people")
    year: int = Field(description="survey year, 2000 to next year")
    source: str = Field(min_length=1, max_length=200, description="e.g. BPS Sakernas")

    @field_validator("year")
    @classmethod
    def _plausible_year(cls, year: int) -> int:
        latest = date.today().year + 1
        if not 2000 <= year <= latest:
            raise ValueError(f"must be between 2000 and {latest}")
        return year

    @field_validator("source", mode="before")
    @classmethod
    def _no_control_characters(cls, source: object) -> object:
        # Before the type's checks and strip() (which would drop some): shared/text.py.
        return refuse_controls(source) if isinstance(source, str) else source

    @field_validator("source")
    @classmethod
    def _named_source(cls, source: str) -> str:
        if not source.strip():
            raise ValueError("must name the source of the figure")
        return source.strip()


class RegionOut(BaseModel):
    code: str
    name: str
    level: Level


class SegmentCounts(BaseModel):
    registered: int
    active: int


class RegionCoverage(BaseModel):
    region: RegionOut
    workforce: int | None
    workforce_year: int | None
    workforce_source: str | None
    registered: int
    active: int
    inactive: int
    terminated: int
    by_segment: dict[str, SegmentCounts] = Field(description=f"keys: {', '.join(SEGMENTS)}")
    ucj: float | None = Field(description="active / workforce, 6 decimals; null without workforce")
    updated_at: str | None
    stale: bool = Field(description="true while the coverage database has not been read for a "
                        "few seconds: the counters shown are the last ones held")
    target: float | None = Field(default=None, description="only when ?target= is given")
    gap_to_target: int | None = Field(
        default=None, description="only when ?target= is given: max(0, ceil(target × workforce)"
        " − active); null without workforce")


class RegionCoverageList(BaseModel):
    items: list[RegionCoverage]


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


# --- wiring -----------------------------------------------------------------------------------


@dataclass
class CoverageContext:
    settings: CoverageApiSettings
    view: RegionCountersView
    hub: ChangeHub
    feed: CountersFollower
    workforce: WorkforceCache
    pool: asyncpg.Pool | None = None
    _level_lists: dict[Level, list[Region]] = field(default_factory=dict)

    @property
    def regions(self) -> RegionDirectory:
        return directory()

    def at_level(self, level: Level) -> list[Region]:
        if level not in self._level_lists:
            self._level_lists[level] = self.regions.at_level(level)
        return self._level_lists[level]

    def known_region(self, code: str) -> Region:
        region = self.regions.get(code)
        if region is not None:
            return region
        shown = code if len(code) <= 40 else code[:40] + "…"
        if level_of(code) is None:
            raise Problem(404, "Not found", f"{shown!r} is not a region code: use ID, a province "
                          "(12), regency (12.75), district (12.75.01) or village (12.75.01.1001)")
        raise Problem(404, "Not found", f"no region has the code {shown!r}")

    @contextlib.asynccontextmanager
    async def database(self) -> AsyncIterator[asyncpg.Pool]:
        """The pool; the database being away is a 503 that says so, not a 500."""
        if self.pool is None:
            raise Problem(503, "Service unavailable", "the coverage database is not connected yet")
        try:
            yield self.pool
        except Exception as exc:
            if not dependency_away(exc):
                raise
            log.warning("coverage database unavailable: %s", describe_away(exc))
            raise dependency_away_problem("the coverage database") from None

    async def coverage(self, regions: Sequence[Region], target: float | None = None
                       ) -> list[dict[str, Any]]:
        """From memory only: served while the database is away, marked stale."""
        figures, view, stale = self.workforce.figures, self.view, self.feed.stale
        return [{**coverage_of(r.public(), view.counters(r.code), view.updated_at(r.code),
                               figures.get(r.code), target=target), "stale": stale}
                for r in regions]


def create_app(settings: CoverageApiSettings) -> FastAPI:
    view = RegionCountersView()
    hub = ChangeHub()
    workforce = WorkforceCache()
    feed = CountersFollower(view, hub, workforce, lambda: ctx.pool)
    ctx = CoverageContext(settings, view, hub, feed, workforce)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        directory()  # load the region list before serving, not on the first request
        pool = await create_pool(settings.database_url, min_size=settings.db_pool_min,
                                 max_size=settings.db_pool_max)
        try:
            await migrate(pool, MIGRATIONS)
            app.state.keys = KeyStore(pool, settings.bootstrap_api_key)
            app.state.pool = ctx.pool = pool
            feed_task = asyncio.create_task(ctx.feed.run(), name="counters-follower")
            try:
                async with key_directory(app, pool, settings, client_id="ucj-keys-coverage"):
                    yield
            finally:
                hub.close()
                feed_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feed_task
        finally:
            ctx.pool = None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except TimeoutError:
                pool.terminate()

    app = FastAPI(
        title="UCJ Live — coverage",
        version="1",
        description="Live Universal Coverage Jamsostek counters per region, the workforce "
        "figures behind the ratio, a Server-Sent Events stream and the operators' dashboard.",
        lifespan=lifespan,
    )
    app.state.coverage = ctx
    install_problem_handlers(app, dependency="the coverage database")
    app.include_router(coverage_router(ctx))
    app.include_router(api_keys_router())
    return app


def begin_shutdown(app: FastAPI) -> None:
    """End the open event streams now (callable from a signal handler): a server waits for its
    connections to finish before it shuts the application down, and streams never finish."""
    app.state.coverage.hub.close_threadsafe()


# --- routes -----------------------------------------------------------------------------------


def coverage_router(ctx: CoverageContext) -> APIRouter:
    router = APIRouter()
    one: dict[int | str, dict[str, Any]] = {200: {"model": RegionCoverage}}

    @router.get("/healthz", tags=["health"])
    async def healthz() -> Response:
        if ctx.pool is None:
            raise Problem(503, "Service unavailable", "the database pool is not up yet",
                          retry_after=RETRY_AFTER_SECONDS)
        try:
            await asyncio.wait_for(ctx.pool.fetchval("SELECT 1"), 2)
        except Exception as exc:
            if not dependency_away(exc) and not isinstance(exc, asyncpg.PostgresError):
                raise
            raise Problem(503, "Service unavailable", "the coverage database does not answer; "
                          "reads are served from memory, marked stale",
                          retry_after=RETRY_AFTER_SECONDS,
                          extra={"dependencies": {"database": "away"}}) from None
        if not ctx.feed.ready.is_set():
            raise Problem(503, "Service unavailable", "still reading the counters",
                          retry_after=1, extra={"dependencies": {"database": "ok"}})
        return json_response({"status": "ok", "dependencies": {"database": "ok"}})

    @router.get("/v1/coverage/regions/{code}", tags=["coverage"], responses=one,
                response_model=None)
    async def region_coverage(code: str, target: TargetQuery = None) -> Response:
        """One region's live coverage: counters, workforce and UCJ."""
        region = ctx.known_region(code)
        return json_response((await ctx.coverage([region], target))[0])

    @router.get("/v1/coverage/regions", tags=["coverage"],
                responses={200: {"model": RegionCoverageList}}, response_model=None)
    async def regions_coverage(
        level: Annotated[Level, Query(description="the level of the regions listed")],
        parent: Annotated[str | None, Query(
            description="code of a region of the level above; required for district and "
            "village")] = None,
        target: TargetQuery = None,
    ) -> Response:
        """The coverage of every region of a level (under a parent), in code order."""
        return json_response({"items": await ctx.coverage(listed_regions(ctx, level, parent),
                                                          target)})

    @router.put(
        "/v1/workforce/{code}", tags=["workforce"], responses=one, response_model=None,
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": WorkforceIn.model_json_schema()}}}},
    )
    async def put_workforce(
        code: str, request: Request,
        _: Annotated[Caller, Depends(require(WORKFORCE_SCOPE))],
    ) -> Response:
        """Set a region's working population (the UCJ denominator); needs `workforce:write`."""
        region = ctx.known_region(code)
        raw = await read_json(request, max_bytes=MAX_WORKFORCE_BODY)
        try:
            body = WorkforceIn.model_validate(raw)
        except ValidationError as exc:
            errors = field_errors(exc.errors())
            for error in errors:  # our own validators' messages need no pydantic prefix
                error["message"] = error["message"].removeprefix("Value error, ")
            raise validation_problem(errors) from None
        async with ctx.database() as pool:
            figure = await record_workforce(
                pool, region.code, WorkforceFigure(body.workforce, body.year, body.source))
        ctx.workforce.put(region.code, figure)
        log.info("workforce of %s set to %d (%d)", region.code, figure.workforce, figure.year)
        return json_response((await ctx.coverage([region]))[0])

    @router.get(
        "/v1/coverage/stream", tags=["coverage"], response_class=StreamingResponse,
        responses={200: {"description": "text/event-stream: one `snapshot` event "
                         "(`{\"items\": [<region coverage>]}`), then a `counters` event "
                         "(`<region coverage>`) per changed region, at most every ~250 ms per "
                         "region; a comment line every 15 s",
                         "content": {"text/event-stream": {}}}},
    )
    async def stream(
        regions: Annotated[str | None, Query(
            description="comma-separated region codes, e.g. ID,12,12.75")] = None,
        parent: Annotated[str | None, Query(
            description="a region whose children (and its own lineage) to follow")] = None,
    ) -> StreamingResponse:
        """Server-Sent Events of counter changes. Without `regions` or `parent`: the nation,
        the provinces and the regencies."""
        snapshot, wants = stream_selection(ctx, regions, parent)
        if ctx.hub.closed:
            raise Problem(503, "Service unavailable", "the service is shutting down")
        if len(ctx.hub) >= ctx.settings.stream_max_clients:
            raise Problem(503, "Service unavailable", "too many open streams; try again later")
        return StreamingResponse(
            region_events(ctx, snapshot, wants), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @router.get("/v1/admin/reconcile", tags=["admin"])
    async def reconcile_served(
        _: Annotated[Caller, Depends(require(ADMIN_SCOPE))],
    ) -> Response:
        """The coverage service checks itself (needs `coverage:admin`): the counters it serves
        against its database, region by region, and the database's village counters against
        the participant facts they come from. Against the source databases of the other
        services: `./ucj reconcile`, an operator's tool (a service reads no other's database)."""
        for _attempt in range(10):
            async with ctx.database() as pool, pool.acquire() as conn, conn.transaction(
                    isolation="repeatable_read", readonly=True):
                versions = {r["partition"]: r["version"] for r in await conn.fetch(
                    "SELECT partition, version FROM counting_partitions")}
                stored = await stored_villages(conn)
                internal, internal_total = await internal_drift(conn, 100)
            if await ctx.feed.reached(versions):
                break
        else:
            raise Problem(503, "Service unavailable", "the counters keep moving faster than "
                          "this check can follow; try again", retry_after=1)
        regions = ctx.regions
        villages = {code for code in ctx.view.regions() if regions.is_village(code)}
        served = {v: {n: c for n, c in ctx.view.counters(v).items() if c}
                  for v in villages | stored.keys()}
        drift = drift_between(by_region(served), by_region(stored))
        return json_response({
            "ok": not drift and not internal_total,
            "versions": {str(p): v for p, v in sorted(versions.items())},
            "served_drift": [d.to_json() for d in drift[:100]], "served_drift_rows": len(drift),
            "internal_drift": [d.to_json() for d in internal],
            "internal_drift_rows": internal_total})

    @router.get("/", include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(DASHBOARD.read_bytes(), headers={"Cache-Control": "no-cache"})

    return router


def listed_regions(ctx: CoverageContext, level: Level, parent: str | None) -> list[Region]:
    above = LEVEL_ABOVE.get(level)
    if parent is None:
        if level in PARENT_REQUIRED:
            raise validation_problem([{"field": "parent", "message": (
                f"required for level {level}: give the code of a {above} (there are too many "
                f"{level} regions to list at once)")}])
        return ctx.at_level(level)
    if above is None:
        raise validation_problem([{"field": "parent", "message": "the national level has no "
                                   "parent: leave parent out"}])
    region = ctx.regions.get(parent)
    if region is None or region.level != above:
        shown = parent if len(parent) <= 40 else parent[:40] + "…"
        raise validation_problem([{"field": "parent", "message": (
            f"{shown!r} is not the code of an existing {above} (the level above {level})")}])
    return ctx.regions.children(parent)


def stream_selection(ctx: CoverageContext, regions: str | None, parent: str | None
                     ) -> tuple[list[Region], Callable[[str], bool]]:
    """The regions a stream starts with, and which changes it wants."""
    chosen: list[Region] = []
    errors: list[dict[str, str]] = []
    if regions is not None:
        codes = [c.strip() for c in regions.split(",") if c.strip()]
        if not codes or len(codes) > MAX_STREAM_REGIONS:
            errors.append({"field": "regions",
                           "message": f"give 1 to {MAX_STREAM_REGIONS} comma-separated codes"})
        unknown = [c for c in codes if c not in ctx.regions]
        if unknown:
            errors.append({"field": "regions", "message": "unknown region codes: "
                           + ", ".join(repr(c[:40]) for c in unknown[:10])})
        chosen += [r for c in dict.fromkeys(codes) if (r := ctx.regions.get(c))]
    if parent is not None:
        region = ctx.regions.get(parent)
        if region is None:
            errors.append({"field": "parent", "message": f"no region has the code {parent[:40]!r}"})
        else:
            lineage = [ctx.known_region(c) for c in reversed(ctx.regions.lineage(parent))]
            chosen += lineage + ctx.regions.children(parent)
    if errors:
        raise validation_problem(errors)
    if regions is None and parent is None:
        chosen = [r for level in OVERVIEW_LEVELS for r in ctx.at_level(level)]
        return chosen, lambda code: level_of(code) in OVERVIEW_LEVELS
    unique = {r.code: r for r in chosen}  # in the order given, without repeats
    return list(unique.values()), frozenset(unique).__contains__


def sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def region_events(ctx: CoverageContext, snapshot: list[Region],
                        wants: Callable[[str], bool]) -> AsyncIterator[bytes]:
    """The event stream of one client; ends when the client goes or the service stops."""
    settings = ctx.settings
    subscription = ctx.hub.subscribe(wants)  # before the snapshot, so no change falls between
    try:
        yield b"retry: 3000\n\n"
        yield sse("snapshot", {"items": await ctx.coverage(snapshot)})
        while not subscription.closed:
            changed = await subscription.next_changes(settings.stream_heartbeat_seconds)
            if subscription.closed:
                break
            if not changed:
                yield b": heartbeat\n\n"
                continue
            items = await _changed_coverage(ctx, subscription, changed)
            for item in items:
                yield sse("counters", item)
            # Coalescing: whatever changes meanwhile is sent once, in the next round.
            await asyncio.sleep(settings.stream_coalesce_seconds)
    finally:
        ctx.hub.unsubscribe(subscription)


async def _changed_coverage(ctx: CoverageContext, subscription: ChangeSubscription,
                            changed: set[str]) -> list[dict[str, Any]]:
    regions = [r for code in sorted(changed) if (r := ctx.regions.get(code))]
    try:
        return await ctx.coverage(regions)
    except Problem:
        # Database away: keep the changes for the next round instead of dropping them.
        subscription.notify(changed)
        await asyncio.sleep(1.0)
        return []

