"""Time, injectable: rules take dates as arguments; services ask a Clock, tests move it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

# Dates in the domain (due dates, birthdays, registration days) are Western Indonesia Time.
WIB = ZoneInfo("Asia/Jakarta")


class Clock(Protocol):
    def now(self) -> datetime: ...

    def today(self) -> date: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(WIB)

    def today(self) -> date:
        return self.now().date()


class FixedClock:
    """A clock that stands still until moved (tests, simulations)."""

    def __init__(self, at: datetime):
        self._at = at if at.tzinfo else at.replace(tzinfo=WIB)

    def now(self) -> datetime:
        return self._at

    def today(self) -> date:
        return self._at.astimezone(WIB).date()

    def advance(self, **delta: float) -> None:
        self._at += timedelta(**delta)
