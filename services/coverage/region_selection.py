"""Which regions a request names: a listing's level and parent, a stream's regions or parent.
Bad choices are 422s that say what to give instead."""

from __future__ import annotations

from collections.abc import Callable

from services.coverage.live_coverage import LiveCoverage
from shared.problems import validation_problem
from shared.regions import Level, Region, level_of

MAX_STREAM_REGIONS = 1000
LEVEL_ABOVE: dict[str, Level] = {
    "province": "national", "regency": "province", "district": "regency", "village": "district",
}
# Listing these levels needs a parent: there are thousands of them.
PARENT_REQUIRED = ("district", "village")
# What the stream sends when the client names no regions: the levels of the dashboard's overview.
OVERVIEW_LEVELS: tuple[Level, ...] = ("national", "province", "regency")


def listed_regions(live: LiveCoverage, level: Level, parent: str | None) -> list[Region]:
    """The regions of a level (under a parent of the level above), in code order."""
    above = LEVEL_ABOVE.get(level)
    if parent is None:
        if level in PARENT_REQUIRED:
            raise validation_problem([{"field": "parent", "message": (
                f"required for level {level}: give the code of a {above} (there are too many "
                f"{level} regions to list at once)")}])
        return live.at_level(level)
    if above is None:
        raise validation_problem([{"field": "parent", "message": "the national level has no "
                                   "parent: leave parent out"}])
    region = live.regions.get(parent)
    if region is None or region.level != above:
        shown = parent if len(parent) <= 40 else parent[:40] + "…"
        raise validation_problem([{"field": "parent", "message": (
            f"{shown!r} is not the code of an existing {above} (the level above {level})")}])
    return live.regions.children(parent)


def stream_selection(live: LiveCoverage, regions: str | None, parent: str | None
                     ) -> tuple[list[Region], Callable[[str], bool]]:
    """The regions a stream starts with, and which changes it wants."""
    chosen: list[Region] = []
    errors: list[dict[str, str]] = []
    if regions is not None:
        codes = [c.strip() for c in regions.split(",") if c.strip()]
        if not codes or len(codes) > MAX_STREAM_REGIONS:
            errors.append({"field": "regions",
                           "message": f"give 1 to {MAX_STREAM_REGIONS} comma-separated codes"})
        unknown = [c for c in codes if c not in live.regions]
        if unknown:
            errors.append({"field": "regions", "message": "unknown region codes: "
                           + ", ".join(repr(c[:40]) for c in unknown[:10])})
        chosen += [r for c in dict.fromkeys(codes) if (r := live.regions.get(c))]
    if parent is not None:
        region = live.regions.get(parent)
        if region is None:
            errors.append({"field": "parent", "message": f"no region has the code {parent[:40]!r}"})
        else:
            lineage = [live.known_region(c) for c in reversed(live.regions.lineage(parent))]
            chosen += lineage + live.regions.children(parent)
    if errors:
        raise validation_problem(errors)
    if regions is None and parent is None:
        chosen = [r for level in OVERVIEW_LEVELS for r in live.at_level(level)]
        return chosen, lambda code: level_of(code) in OVERVIEW_LEVELS
    unique = {r.code: r for r in chosen}  # in the order given, without repeats
    return list(unique.values()), frozenset(unique).__contains__
