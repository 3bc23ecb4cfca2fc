"""What the coverage API reads and answers. Requests are validated; answers are built by
region_coverage.coverage_of and returned as these models, so the OpenAPI document is what is
served."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from services.coverage.forecast import ForecastReason
from services.coverage.region_coverage import CHILDREN_INCOMPLETE, NO_WORKFORCE, Band
from shared.regions import Level
from shared.text import refuse_controls
from shared.vocabulary import PROGRAMS, SEGMENTS, Program


def _no_controls(source: object) -> object:
    # Before the type's checks and strip() (which would drop some): shared/text.py.
    return refuse_controls(source) if isinstance(source, str) else source


def _named(source: str) -> str:
    if not source.strip():
        raise ValueError("must name the source (a survey, a plan)")
    return source.strip()


# Where a figure or a target comes from: printable text, stripped, not blank.
Source = Annotated[str, BeforeValidator(_no_controls), AfterValidator(_named)]

MAX_WORKFORCE = 300_000_000
TARGET_YEARS = (2000, 2100)
TARGET_DECIMALS = 4


class WorkforceIn(BaseModel):
    """A region's working population, from one survey."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"workforce": 132826, "year": 2024, "source": "BPS Sakernas"}]})

    workforce: int = Field(gt=0, le=MAX_WORKFORCE, description="working population, people")
    year: int = Field(description="survey year, 2000 to next year")
    source: Source = Field(min_length=1, max_length=200, description="e.g. BPS Sakernas")

    @field_validator("year")
    @classmethod
    def _plausible_year(cls, year: int) -> int:
        latest = date.today().year + 1
        if not 2000 <= year <= latest:
            raise ValueError(f"must be between 2000 and {latest}")
        return year



class TargetIn(BaseModel):
    """A region's UCJ target for a year, in percent as the plan publishes it."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"year": 2025, "ucj_target": 37.10, "source": "RPJMD Kota Binjai"}]})

    year: int = Field(ge=TARGET_YEARS[0], le=TARGET_YEARS[1], description="the plan's year")
    ucj_target: float = Field(ge=0, le=100, allow_inf_nan=False,
                              description="percent of the workforce actively covered, 0 to 100")
    source: Source = Field(min_length=1, max_length=200, description="e.g. RPJMN 2025-2029")

    @field_validator("ucj_target")
    @classmethod
    def _few_decimals(cls, value: float) -> float:
        exponent = Decimal(str(value)).as_tuple().exponent
        if isinstance(exponent, int) and exponent < -TARGET_DECIMALS:
            raise ValueError(f"at most {TARGET_DECIMALS} decimals")
        return value


    def percent(self) -> Decimal:
        return Decimal(str(self.ucj_target))


class RegionOut(BaseModel):
    code: str
    name: str
    level: Level


class SegmentCounts(BaseModel):
    registered: int
    active: int


class ProgrammeClaims(BaseModel):
    """A programme's claims in the region, each counted once under its current status."""

    submitted: int = Field(description="filed, not decided yet")
    approved: int
    rejected: int
    benefit_paid: int = Field(description="the benefits of the approved claims, rupiah")


class Forecast(BaseModel):
    """When the region reaches its target at the pace of its last 90 days."""

    reaches_target_on: date | None = Field(description=(
        "today + ceil(gap_people / per_day); null unless `reason` is at_this_pace or reached"))
    per_day: float = Field(description="net growth of active workers per day (new active − "
                           "lost active), over `basis_days`")
    basis_days: int = Field(description="the days measured: 90, or fewer for a shorter history")
    reason: ForecastReason = Field(description=(
        "`reached` (no gap), `at_this_pace`, `not_at_this_pace` (no growth), "
        "`not_enough_history` (no snapshot before today), `no_workforce` (no gap to close)"))


class RegionCoverage(BaseModel):
    region: RegionOut
    workforce: int | None
    workforce_year: int | None
    workforce_source: str | None
    registered: int
    active: int
    inactive: int
    terminated: int
    kpi_active: int = Field(default=0, description="active workers with at least 6 paid months: "
                            "those that count toward the region's KPI (DOMAIN.md)")
    by_segment: dict[str, SegmentCounts] = Field(description=f"keys: {', '.join(SEGMENTS)}")
    claims: dict[Program, ProgrammeClaims] = Field(
        description=f"keys: {', '.join(PROGRAMS)} (zeros where none)")
    ucj: float | None = Field(description="active / workforce, 6 decimals; null without workforce")
    ucj_missing_reason: str | None = Field(
        default=None, description=f"why `ucj` is null: `{NO_WORKFORCE}` (no figure for this year "
        f"or before, and no child regions) or `{CHILDREN_INCOMPLETE}` (no figure of its own, and "
        "not every child region has one to sum); null when there is a UCJ")
    band: Band | None = Field(
        default=None, description="very_low below 30%, low 30% to under 50%, medium 50% to "
        "under 75%, high from 75%; null without UCJ")
    updated_at: str | None
    stale: bool = Field(description="true while the coverage database has not been read for a "
                        "few seconds: the counters shown are the last ones held")
    target: float | None = Field(
        default=None, description="the UCJ target as a fraction like `ucj` (0.371 for 37.10%): "
        "?target= when given, else the region's target for the current year (or the latest "
        "earlier year's); absent without either (with target_year, target_source and "
        "gap_people)")
    target_year: int | None = Field(default=None, description="the year of the region's target"
                                    " (null under ?target=)")
    target_source: str | None = Field(default=None, description="the plan it comes from")
    gap_people: int | None = Field(
        default=None, description="active workers still needed to reach `target`: max(0, "
        "ceil(target × workforce) − active); null without workforce or target")
    gap_to_target: int | None = Field(
        default=None, description="only when ?target= is given: max(0, ceil(target × workforce)"
        " − active); null without workforce")
    forecast: Forecast | None = Field(
        default=None, description="with a target and a history of snapshots: when the region "
        "reaches it at the pace of its last 90 days; absent otherwise (and under ?as_of=)")
    as_of: date | None = Field(
        default=None, description="only under ?as_of=: the day whose end the answer shows, from "
        "the last snapshot up to then (`updated_at` is that snapshot's time; null when the "
        "region had no counters yet)")


class HistoryPointOut(BaseModel):
    period: date = Field(description="the first day of the day, week (Monday) or month")
    period_end: date = Field(description="its last day, or `to` when the range ends in it")
    taken_at: str = Field(description="the time of the snapshot shown: the last one up to the "
                          "period's end (a region is snapshotted only when it changes)")
    registered: int
    active: int
    inactive: int
    terminated: int
    workforce: int | None
    ucj: float | None = Field(description="active / workforce, 6 decimals")
    net_growth: int | None = Field(description=(
        "new active − lost active since the previous point (or the last snapshot before "
        "`from`); null when there is none"))


class RegionHistory(BaseModel):
    region: RegionOut
    step: str
    from_: date = Field(alias="from", serialization_alias="from")
    to: date = Field(description="the last day answered: `to`, or today when it is later")
    points: list[HistoryPointOut] = Field(description=(
        "one per period that has a snapshot up to its end, oldest first"))

    model_config = ConfigDict(populate_by_name=True)


class RegionCoverageList(BaseModel):
    items: list[RegionCoverage]
    next_cursor: str | None = Field(default=None, description=(
        "with `limit`: give it as `cursor` for the next page; null on the last page"))


class TargetOut(BaseModel):
    region: RegionOut
    year: int
    ucj_target: float = Field(description="percent")
    source: str


class TargetList(BaseModel):
    items: list[TargetOut] = Field(description="every year's target of the region, by year")


class ImportResult(BaseModel):
    imported: int = Field(description="rows written, all in one transaction")


class ServedDrift(BaseModel):
    """A counter the service serves for a region that its database does not hold."""

    region: str
    level: str
    counter: str
    live: int
    truth: int
    drift: int = Field(description="live − truth")


class InternalDrift(BaseModel):
    """A village counter of one source partition that the participant facts do not give."""

    partition: int
    village: str
    counter: str
    counters: int = Field(description="what village_counters says")
    facts: int = Field(description="what participant_facts give")


class SelfCheck(BaseModel):
    """GET /v1/admin/reconcile: the counters served against the coverage database."""

    ok: bool
    versions: dict[str, int] = Field(description="the source partitions' versions compared")
    served_drift: list[ServedDrift] = Field(description="the first 100")
    served_drift_rows: int
    internal_drift: list[InternalDrift] = Field(description="the first 100")
    internal_drift_rows: int
