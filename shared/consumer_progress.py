"""How far a service's worker has read its input events, and what that means for an id the
service does not know: unknown, or not known yet (the client retries: 404 with the problem type
NOT_YET_KNOWN and Retry-After: 1). Contributions and claims use it for participants.

The worker reports every 0.5 s how many events wait behind its positions, against the
partitions' ends asked of the broker at that moment. An id is plainly unknown only once a
report made after the question (plus a margin for the relay, which publishes registrations
within tens of milliseconds of their commit) says nothing waits: every registration written
before the question has then been read. The API waits up to UNKNOWN_WAIT for such a report."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

import asyncpg

from shared.problems import Problem

PARTICIPANT_CONSUMER = "participants"
NOT_YET_KNOWN = "https://ucj.live/problems/not-yet-known"
RELAY_MARGIN = timedelta(milliseconds=300)
UNKNOWN_WAIT = 2.5  # seconds


async def record_progress(conn: asyncpg.Connection, consumer: str, waiting: int) -> None:
    await conn.execute(
        "INSERT INTO consumer_progress (consumer, waiting) VALUES ($1, $2)"
        " ON CONFLICT (consumer) DO UPDATE SET waiting = excluded.waiting, updated_at = now()",
        consumer, waiting)


async def known_or_settled(pool: asyncpg.Pool, consumer: str,
                           lookup: Callable[[], Awaitable[T | None]]) -> T | None | NotYet:
    """The looked-up record; None when it is plainly unknown (a report made after the question
    says the consumer has read everything); NOT_YET when that could not be shown in time."""
    asked_at: datetime | None = None
    deadline = asyncio.get_running_loop().time() + UNKNOWN_WAIT
    while True:
        found = await lookup()
        if found is not None:
            return found
        row = await pool.fetchrow(
            "SELECT p.waiting, p.updated_at, now() AS now FROM (SELECT 1) AS one"
            " LEFT JOIN consumer_progress p ON p.consumer = $1", consumer)
        asked_at = asked_at or row["now"]
        if row["waiting"] == 0 and row["updated_at"] >= asked_at + RELAY_MARGIN:
            return None
        if asyncio.get_running_loop().time() >= deadline:
            return NOT_YET
        await asyncio.sleep(0.2)


class NotYet:
    """Not known yet: the consumer may still be reading it."""


NOT_YET = NotYet()
T = TypeVar("T")


def not_yet_known(service: str, what: str = "participant") -> Problem:
    return Problem(404, "Not yet known", f"no {what} has this id yet: the {service} service is "
                   "still reading its input events; retry", type_=NOT_YET_KNOWN, retry_after=1)
