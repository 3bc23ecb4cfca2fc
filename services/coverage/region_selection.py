"""Which regions a request names: a listing's level and parent, a stream's regions, parent, or
region and depth. Bad choices are 422s that say what to give instead."""

from __future__ import annotations

from collections.abc import Callable

from services.coverage.live_coverage import LiveCoverage
from shared.problems import validation_problem
from shared.regions import Level, Region, level_of

MAX_STREAM_REGIONS = 1000  # a province or a regency to depth 2 is at most ~900
MAX_DEPTH = 4  # the nation down to its villages
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


def stream_selection(live: LiveCoverage, regions: str | None, parent: str | None,
                     region: str | None = None, depth: int | None = None
                     ) -> tuple[list[Region], Callable[[str], bool]]:
    """The regions a stream starts with, and which changes it wants: those named in `regions`,
    `parent`'s lineage and children, `region` and its descendants `depth` levels down (1 when
    not given); together, their union."""
    chosen: list[Region] = []
    errors: list[dict[str, str]] = []
    if depth is not None and region is None:
        errors.append({"field": "depth", "message": "goes with region: give region=CODE too"})
    if depth is not None and not 0 <= depth <= MAX_DEPTH:
        errors.append({"field": "depth", "message": f"give 0 to {MAX_DEPTH} levels"})
        depth = None
    if region is not None:
        top = live.regions.get(region)
        if top is None:
            errors.append({"field": "region", "message": f"no region has the code {region[:40]!r}"})
        else:
            below = descendants(live, top, 1 if depth is None else depth)
            if below is None:
                errors.append({"field": "depth", "message": (
                    f"{region} to depth {depth} is more than {MAX_STREAM_REGIONS} regions: "
                    "give a smaller depth, or follow a region further down")})
            else:
                chosen += below
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
        if parent not in live.regions:
            errors.append({"field": "parent", "message": f"no region has the code {parent[:40]!r}"})
        else:
            lineage = [live.known_region(c) for c in reversed(live.regions.lineage(parent))]
            chosen += lineage + live.regions.children(parent)
    if errors:
        raise validation_problem(errors)
    if regions is None and parent is None and region is None:
        chosen = [r for level in OVERVIEW_LEVELS for r in live.at_level(level)]
        return chosen, lambda code: level_of(code) in OVERVIEW_LEVELS
    unique = {r.code: r for r in chosen}  # in the order given, without repeats
    return list(unique.values()), frozenset(unique).__contains__


def descendants(live: LiveCoverage, region: Region, depth: int) -> list[Region] | None:
    """The region and its descendants down to `depth` levels below it (0: itself), level by
    level in code order; None when that is more than MAX_STREAM_REGIONS."""
    out, frontier = [region], [region]
    for _ in range(max(0, min(depth, MAX_DEPTH))):
        frontier = [child for r in frontier for child in live.regions.children(r.code)]
        out += frontier
        if len(out) > MAX_STREAM_REGIONS:
            return None
    return out
