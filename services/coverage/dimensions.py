"""Who pays and who is missing (issue 11), pure: the dimension counters of a region read as
employers, funded programmes, channels and agents.

The coverage workers keep them beside the region counters (counting.contribution), named with
slashes, and the view adds them up per region like any counter (counters_view.py):

    employer/<id>/<registered|active|inactive|terminated>     workers of an employer
    channel/<channel>/<YYYY-MM>/<registered|active>            registered that month (active now)
    agent/<agent id>/<YYYY-MM>/<registered|active>             the same, per PERISAI agent
    agent/<agent id>/<YYYY-MM>/collected                       rupiah the agent collected
    programme/<id>/<enrolled|active>                           a funded programme's workers
    programme/<id>/paid_through/<YYYY-MM>                      ... by the last month paid
    programme/<id>/spent                                       rupiah the programme paid

An employer's or programme's workers live in many villages: their totals are the nation's.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

Counters = Mapping[str, int]

AGENT_FEE_RATE = 0.075  # PERISAI agents are paid 7.5% of what they collect (DOMAIN.md)
AGENT_IDLE_MONTHS = 3  # an agent with no new participant for 3 months is dropped (DOMAIN.md)
EMPLOYER_STATUSES = ("registered", "active", "inactive", "terminated")


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def months_back(month: str, count: int) -> str:
    """The month `count` months before `month` (YYYY-MM)."""
    year, number = int(month[:4]), int(month[5:7])
    index = year * 12 + number - 1 - count
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _split(counters: Counters, family: str) -> Iterable[tuple[list[str], int]]:
    prefix = family + "/"
    for name, value in counters.items():
        if name.startswith(prefix):
            yield name[len(prefix):].split("/"), value


# --- employers --------------------------------------------------------------------------------


def employer_counts(counters: Counters) -> dict[str, dict[str, int]]:
    """Every employer's workers by status, from the nation's dimension counters."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(EMPLOYER_STATUSES, 0))
    for parts, value in _split(counters, "employer"):
        if len(parts) == 2 and parts[1] in EMPLOYER_STATUSES:
            out[parts[0]][parts[1]] += value
    return dict(out)


def declared_for(declared: Iterable[Mapping[str, Any]], year: int) -> Mapping[str, Any] | None:
    """The employer's declared workers for `year`, else its latest earlier year's."""
    earlier = [d for d in declared if int(d.get("year", 0)) <= year]
    return max(earlier, key=lambda d: int(d["year"])) if earlier else None


def compliance(active: int, declared: int | None) -> float | None:
    """Active workers over declared workers (None without a declared figure above 0)."""
    if not declared:
        return None
    return round(active / declared, 4)


# --- funded programmes ------------------------------------------------------------------------


@dataclass
class ProgrammeCounts:
    enrolled: int = 0
    active: int = 0
    spent: int = 0
    paid_through: dict[str, int] = field(default_factory=dict)  # last month paid → workers

    def paid_for(self, month: str) -> int:
        """Enrolled workers paid for `month` (their last month paid is it or later)."""
        return sum(n for through, n in self.paid_through.items() if through >= month)


def programme_counts(counters: Counters) -> dict[str, ProgrammeCounts]:
    out: dict[str, ProgrammeCounts] = defaultdict(ProgrammeCounts)
    for parts, value in _split(counters, "programme"):
        counts = out[parts[0]]
        if parts[1:] == ["enrolled"]:
            counts.enrolled += value
        elif parts[1:] == ["active"]:
            counts.active += value
        elif parts[1:] == ["spent"]:
            counts.spent += value
        elif len(parts) == 3 and parts[1] == "paid_through":
            counts.paid_through[parts[2]] = counts.paid_through.get(parts[2], 0) + value
    return dict(out)


def programme_figures(programme: Mapping[str, Any], counts: ProgrammeCounts | None,
                      today: date) -> dict[str, Any]:
    """A programme as operators read it: quota, enrolled, paid this month, active, budget
    spent and left, and how many enrolled workers are not yet paid this month."""
    counts = counts or ProgrammeCounts()
    month = month_of(today)
    paid = counts.paid_for(month)
    budget = int(programme.get("budget_rupiah", 0))
    return {
        "programme_id": programme["programme_id"], "name": programme.get("name"),
        "funder_region": programme.get("funder_region"), "year": programme.get("year"),
        "funding_code": programme.get("funding_code"), "programs": programme.get("programs"),
        "first_period": programme.get("first_period"),
        "last_period": programme.get("last_period"),
        "quota": int(programme.get("quota", 0)), "enrolled": counts.enrolled,
        "places_left": max(0, int(programme.get("quota", 0)) - counts.enrolled),
        "month": month, "paid_this_month": paid,
        "not_paid_this_month": max(0, counts.enrolled - paid), "active": counts.active,
        "budget_rupiah": budget, "budget_spent": counts.spent,
        "budget_left": max(0, budget - counts.spent),
    }


# --- channels and agents ----------------------------------------------------------------------


def channel_months(counters: Counters, first: str, last: str
                   ) -> dict[str, dict[str, dict[str, int]]]:
    """Per channel, per month of registration in first..last: registered, and active now."""
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for parts, value in _split(counters, "channel"):
        if len(parts) != 3 or not first <= parts[1] <= last:
            continue
        month = out[parts[0]].setdefault(parts[1], {"registered": 0, "active": 0})
        if parts[2] in month:
            month[parts[2]] += value
    return {c: dict(sorted(m.items())) for c, m in sorted(out.items())}


@dataclass
class AgentCounts:
    registered: dict[str, int] = field(default_factory=dict)  # month → new participants
    active: dict[str, int] = field(default_factory=dict)  # month → of those, active now
    collected: dict[str, int] = field(default_factory=dict)  # month → rupiah

    def last_registration(self) -> str | None:
        months = [m for m, n in self.registered.items() if n > 0]
        return max(months) if months else None


def agent_counts(counters: Counters) -> dict[str, AgentCounts]:
    out: dict[str, AgentCounts] = defaultdict(AgentCounts)
    for parts, value in _split(counters, "agent"):
        if len(parts) != 3:
            continue
        held = getattr(out[parts[0]], parts[2], None)
        if isinstance(held, dict):
            held[parts[1]] = held.get(parts[1], 0) + value
    return dict(out)


def agent_fee(collected: int) -> int:
    """The agent's fee on what it collected: 7.5%, rounded down to the rupiah."""
    return math.floor(collected * AGENT_FEE_RATE)


def to_be_dropped(last_registration: str | None, today: date) -> bool:
    """No new participant in the last AGENT_IDLE_MONTHS whole months before this one, nor in
    this one."""
    return last_registration is None or last_registration < months_back(
        month_of(today), AGENT_IDLE_MONTHS)


def agent_figures(agent_id: str, counts: AgentCounts, first: str, last: str, today: date
                  ) -> dict[str, Any]:
    months = sorted({m for m in (*counts.registered, *counts.collected) if first <= m <= last})
    last_registration = counts.last_registration()
    return {
        "agent_id": agent_id,
        "registered": sum(counts.registered.get(m, 0) for m in months),
        "active": sum(counts.active.get(m, 0) for m in months),
        "collected": sum(counts.collected.get(m, 0) for m in months),
        "fee": sum(agent_fee(counts.collected.get(m, 0)) for m in months),
        "last_registration_month": last_registration,
        "to_be_dropped": to_be_dropped(last_registration, today),
        "months": [{"month": m, "registered": counts.registered.get(m, 0),
                    "active": counts.active.get(m, 0),
                    "collected": counts.collected.get(m, 0),
                    "fee": agent_fee(counts.collected.get(m, 0))} for m in months],
    }
