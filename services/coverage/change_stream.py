"""GET /v1/coverage/stream for one client: a `snapshot` event of the regions it follows, then a
`counters` event per changed region, each region at most once per coalescing interval.

sse-starlette writes the events, sends a comment line every heartbeat interval (so proxies keep
an idle stream open), stops when the client goes, and ends every stream as soon as the server
begins to shut down (a server waits for its connections to finish, and a stream never would)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent

from services.coverage.live_coverage import LiveCoverage
from services.coverage.schemas import RegionCoverageList
from shared.regions import Region

SEPARATOR = "\n"
RETRY_MILLISECONDS = 3000  # how long a browser waits before it reconnects


def region_stream(live: LiveCoverage, snapshot: list[Region], wants: Callable[[str], bool], *,
                  heartbeat_seconds: float, coalesce_seconds: float) -> EventSourceResponse:
    return EventSourceResponse(
        region_events(live, snapshot, wants, coalesce_seconds), sep=SEPARATOR,
        ping=heartbeat_seconds, ping_message_factory=_heartbeat,
        headers={"Cache-Control": "no-cache"})


async def region_events(live: LiveCoverage, snapshot: list[Region], wants: Callable[[str], bool],
                        coalesce_seconds: float) -> AsyncIterator[ServerSentEvent]:
    """The events of one client's stream; they end when the service stops."""
    subscription = live.hub.subscribe(wants)  # before the snapshot, so no change falls between
    try:
        yield ServerSentEvent(retry=RETRY_MILLISECONDS, sep=SEPARATOR)
        yield _event("snapshot", RegionCoverageList(items=live.coverage(snapshot)))
        while True:
            changed = await subscription.next_changes()
            if subscription.closed:
                return
            regions = [r for code in sorted(changed) if (r := live.regions.get(code))]
            for item in live.coverage(regions):
                yield _event("counters", item)
            # Coalescing: whatever changes meanwhile is sent once, in the next round.
            await asyncio.sleep(coalesce_seconds)
    finally:
        live.hub.unsubscribe(subscription)


def _event(name: str, body: BaseModel) -> ServerSentEvent:
    return ServerSentEvent(body.model_dump_json(exclude_unset=True), event=name, sep=SEPARATOR)


def _heartbeat() -> ServerSentEvent:
    return ServerSentEvent(comment="heartbeat", sep=SEPARATOR)
