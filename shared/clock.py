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


class FileClock:
    """The time written in a file (ISO 8601), for moving several processes' clocks at once in
    end-to-end tests and demos; the system clock while the file is absent or empty."""

    def __init__(self, path: str):
        self._path = path
        self._system = SystemClock()

    def now(self) -> datetime:
        try:
            with open(self._path) as fh:
                text = fh.read().strip()
        except FileNotFoundError:
            text = ""
        if not text:
            return self._system.now()
        at = datetime.fromisoformat(text)
        return at if at.tzinfo else at.replace(tzinfo=WIB)

    def today(self) -> date:
        return self.now().astimezone(WIB).date()


def clock_from(path: str | None) -> Clock:
    return FileClock(path) if path else SystemClock()
