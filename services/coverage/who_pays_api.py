"""Who pays and who is missing (issue 11) over HTTP, read from memory like every coverage
answer: employers and OPDs with their compliance, funded programmes with quota and budget,
channels and PERISAI agents per region and month. The figures are the dimension counters the
coverage workers fold (dimensions.py); employers and programmes are as their sources last
published them (counters_feed.OrganisationDirectory)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from services.coverage.dimensions import (
    agent_counts,
    agent_figures,
    channel_months,
    compliance,
    declared_for,
    employer_counts,
    month_of,
    months_back,
    programme_counts,
    programme_figures,
)
from services.coverage.live_coverage import LiveCoverage
from shared.problems import Problem
from shared.regions import NATIONAL_CODE
from shared.vocabulary import EmployerKind

router = APIRouter(tags=["who pays"])
MONTH = re.compile(r"(20[0-9]{2}|2100)-(0[1-9]|1[0-2])")
MAX_LIMIT = 1000


def live_coverage(request: Request) -> LiveCoverage:
    return request.app.state.coverage


Live = Annotated[LiveCoverage, Depends(live_coverage)]
RegionQuery = Annotated[str, Query(description="a region code (ID for the nation): the "
                                   "employers, programmes or workers in it")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]
Order = Literal["asc", "desc"]


def _under(code: str | None, region: str) -> bool:
    return region == NATIONAL_CODE or (code is not None and (
        code == region or code.startswith(region + ".")))


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit() or len(cursor) > 9:
        raise Problem(422, "Unprocessable", "cursor is not one this service gave")
    return int(cursor)


def _page(items: list[dict[str, Any]], cursor: str | None, limit: int
          ) -> tuple[list[dict[str, Any]], str | None]:
    start = _offset(cursor)
    end = start + limit
    return items[start:end], (str(end) if end < len(items) else None)


def _months(live: LiveCoverage, first: str | None, last: str | None) -> tuple[str, str]:
    """first..last (YYYY-MM), by default the last 12 months up to this one."""
    for name, value in (("from", first), ("to", last)):
        if value is not None and not MONTH.fullmatch(value):
            raise Problem(422, "Unprocessable", f"{name} must be a month YYYY-MM of 2000-2100")
    this_month = month_of(live.today())
    last = last or this_month
    first = first or months_back(last, 11)
    if first > last:
        raise Problem(422, "Unprocessable", f"from {first} is after to {last}")
    return first, last


# --- employers and OPDs -----------------------------------------------------------------------


def _employer_answer(live: LiveCoverage, data: dict[str, Any], counts: dict[str, int] | None
                     ) -> dict[str, Any]:
    counts = counts or {}
    declared = declared_for(data.get("declared_workers") or [], live.today().year)
    active = counts.get("active", 0)
    return {
        "employer_id": data["employer_id"], "name": data.get("name"), "kind": data.get("kind"),
        "region_code": data.get("region_code"), "npp": data.get("npp"),
        "declared_workers": declared.get("count") if declared else None,
        "declared_year": declared.get("year") if declared else None,
        "declared_source": declared.get("source") if declared else None,
        **{s: counts.get(s, 0) for s in ("registered", "active", "inactive", "terminated")},
        "compliance": compliance(active, declared.get("count") if declared else None),
    }


EmployerSort = Literal["compliance", "active", "registered", "declared", "name"]


@router.get("/v1/coverage/employers")
async def employers(
    live: Live, region: RegionQuery = NATIONAL_CODE, kind: EmployerKind | None = None,
    covered: Annotated[Literal["none", "some"] | None, Query(
        description="none: only employers without one active worker (the OPDs with none "
        "covered); some: only those with at least one")] = None,
    sort: EmployerSort = "compliance", order: Order = "asc", limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """The employers (OPDs included) registered in a region, with their workers by status and
    compliance = active / declared workers; `summary` counts those with and without one
    covered (active) worker. Lowest compliance first by default."""
    live.known_region(region)
    counts = employer_counts(live.view.dimensions(NATIONAL_CODE))
    rows = [_employer_answer(live, o.data, counts.get(o.id))
            for o in live.feed.organisations.of_kind("employer")
            if _under(o.data.get("region_code"), region)
            and (kind is None or o.data.get("kind") == kind)]
    summary = {
        "employers": len(rows),
        "with_covered": sum(1 for r in rows if r["active"] > 0),
        "without_covered": sum(1 for r in rows if r["active"] == 0),
        "declared_workers": sum(r["declared_workers"] or 0 for r in rows),
        "registered": sum(r["registered"] for r in rows),
        "active": sum(r["active"] for r in rows),
    }
    if covered == "none":
        rows = [r for r in rows if r["active"] == 0]
    elif covered == "some":
        rows = [r for r in rows if r["active"] > 0]
    value = {"compliance": lambda r: r["compliance"], "active": lambda r: r["active"],
             "registered": lambda r: r["registered"], "declared": lambda r: r["declared_workers"],
             "name": lambda r: (r["name"] or "").casefold()}[sort]
    rows.sort(key=lambda r: r["employer_id"])  # a stable order among equals
    known = sorted((r for r in rows if value(r) is not None), key=value,
                   reverse=order == "desc")
    rows = known + [r for r in rows if value(r) is None]  # no declared figure: last
    shown, next_cursor = _page(rows, cursor, limit)
    return {"region": region, "kind": kind, "covered": covered, "sort": sort, "order": order,
            "summary": summary, "employers": shown, "next_cursor": next_cursor,
            "stale": live.feed.stale}


@router.get("/v1/coverage/employers/{employer_id}")
async def employer(employer_id: str, live: Live) -> dict[str, Any]:
    found = live.feed.organisations.by_id.get(employer_id.lower())
    if found is None or found.kind != "employer":
        raise Problem(404, "Not found", "no employer with this id has reached coverage")
    counts = employer_counts(live.view.dimensions(NATIONAL_CODE)).get(found.id)
    return {**_employer_answer(live, found.data, counts), "stale": live.feed.stale}


# --- funded programmes ------------------------------------------------------------------------


@router.get("/v1/coverage/programmes")
async def programmes(live: Live, region: RegionQuery = NATIONAL_CODE,
                     year: Annotated[int | None, Query(ge=2000, le=2100)] = None
                     ) -> dict[str, Any]:
    """The funded programmes whose funder is in a region: quota, enrolled, paid this month,
    active, budget spent and left."""
    live.known_region(region)
    counts = programme_counts(live.view.dimensions(NATIONAL_CODE))
    today = live.today()
    rows = [programme_figures(o.data, counts.get(o.id), today)
            for o in live.feed.organisations.of_kind("programme")
            if _under(o.data.get("funder_region"), region)
            and (year is None or o.data.get("year") == year)]
    rows.sort(key=lambda r: (-(r["year"] or 0), r["name"] or "", r["programme_id"]))
    return {"region": region, "year": year, "programmes": rows, "stale": live.feed.stale}


@router.get("/v1/coverage/programmes/{programme_id}")
async def programme(programme_id: str, live: Live) -> dict[str, Any]:
    found = live.feed.organisations.by_id.get(programme_id.lower())
    if found is None or found.kind != "programme":
        raise Problem(404, "Not found", "no programme with this id has reached coverage")
    counts = programme_counts(live.view.dimensions(NATIONAL_CODE)).get(found.id)
    return {**programme_figures(found.data, counts, live.today()), "stale": live.feed.stale}


# --- channels and agents ----------------------------------------------------------------------


@router.get("/v1/coverage/channels")
async def channels(live: Live, region: RegionQuery = NATIONAL_CODE,
                   first: Annotated[str | None, Query(alias="from")] = None,
                   last: Annotated[str | None, Query(alias="to")] = None) -> dict[str, Any]:
    """New registrations per channel and month of registration in a region, and how many of
    them are active now; the last 12 months by default."""
    code = live.known_region(region).code
    first, last = _months(live, first, last)
    months = channel_months(live.view.dimensions(code), first, last)
    return {
        "region": code, "from": first, "to": last,
        "channels": {c: [{"month": m, **n} for m, n in by_month.items()]
                     for c, by_month in months.items()},
        "totals": {c: {"registered": sum(n["registered"] for n in by_month.values()),
                       "active": sum(n["active"] for n in by_month.values())}
                   for c, by_month in months.items()},
        "stale": live.feed.stale,
    }


AgentSort = Literal["registered", "active", "collected"]


@router.get("/v1/coverage/agents")
async def agents(live: Live, region: RegionQuery = NATIONAL_CODE,
                 first: Annotated[str | None, Query(alias="from")] = None,
                 last: Annotated[str | None, Query(alias="to")] = None,
                 sort: AgentSort = "registered", limit: Limit = 100, cursor: Cursor = None
                 ) -> dict[str, Any]:
    """PERISAI agents ranked in a region by what they brought in first..last (new
    participants, of them active now, rupiah collected and the agent's 7.5% fee); an agent
    with no new participant anywhere for 3 months is `to_be_dropped`."""
    code = live.known_region(region).code
    first, last = _months(live, first, last)
    here = agent_counts(live.view.dimensions(code))
    everywhere = agent_counts(live.view.dimensions(NATIONAL_CODE))
    today = live.today()
    rows = []
    for agent_id, counts in here.items():
        row = agent_figures(agent_id, counts, first, last, today)
        overall = everywhere.get(agent_id, counts)
        row["last_registration_month"] = overall.last_registration()
        row["to_be_dropped"] = agent_figures(agent_id, overall, first, last, today)[
            "to_be_dropped"]
        rows.append(row)
    rows.sort(key=lambda r: (-r[sort], r["agent_id"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    shown, next_cursor = _page(rows, cursor, limit)
    return {"region": code, "from": first, "to": last, "sort": sort, "agents": shown,
            "to_be_dropped": sorted(r["agent_id"] for r in rows if r["to_be_dropped"]),
            "next_cursor": next_cursor, "stale": live.feed.stale}
