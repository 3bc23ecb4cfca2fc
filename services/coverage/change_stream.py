"""GET /v1/coverage/stream for one client: a `snapshot` event of the regions it follows, then a
`counters` event per changed region, each region at most once per coalescing interval.

Every event has an id, `<epoch>-<sequence>` (change_hub.py): everything the hub published up to
that sequence has reached the client for the regions it follows. The events of one round but
the last carry the previous round's id, so a client cut off mid-round resumes from before it.
A client that reconnects with Last-Event-ID gets, as its `snapshot`, only the regions changed
since; with an id this process did not give (restart, another replica, garbled), all of them.

sse-starlette writes the events, sends a comment line every heartbeat interval (so proxies keep
an idle stream open), stops when the client goes, and ends every stream as soon as the server
begins to shut down (a server waits for its connections to finish, and a stream never would)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

from services.coverage.change_hub import ChangeHub, ChangeSubscription
from services.coverage.live_coverage import LiveCoverage
from services.coverage.schemas import RegionCoverageList
from shared.regions import Region

SEPARATOR = "\n"
RETRY_MILLISECONDS = 3000  # how long a browser waits before it reconnects
MAX_EVENT_ID_LENGTH = 64
RETRY_AFTER_SECONDS = 5  # a client over its cap of open streams asks again after this


class RegionStreamResponse(EventSourceResponse):
    """An event stream that holds its subscription from the request on (so the per-client cap
    counts it at once) and lets go of it however the response ends, even unstarted."""

    def __init__(self, content: AsyncIterator[ServerSentEvent], hub: ChangeHub,
                 subscription: ChangeSubscription, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._hub = hub
        self._subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._hub.unsubscribe(self._subscription)


def event_id(hub: ChangeHub, sequence: int) -> str:
    return f"{hub.epoch}-{sequence}"


def resume_point(hub: ChangeHub, last_event_id: str | None) -> int | None:
    """The sequence a Last-Event-ID names, or None when this hub did not give it."""
    if not last_event_id or len(last_event_id) > MAX_EVENT_ID_LENGTH:
        return None
    epoch, _, sequence = last_event_id.strip().partition("-")
    if epoch != hub.epoch or not sequence.isascii() or not sequence.isdigit():
        return None
    number = int(sequence)
    return number if number <= hub.sequence else None


def region_stream(live: LiveCoverage, snapshot: list[Region], wants: Callable[[str], bool], *,
                  heartbeat_seconds: float, coalesce_seconds: float, client: str | None = None,
                  last_event_id: str | None = None) -> EventSourceResponse:
    # Subscribed now, before the snapshot is read, so no change falls between the two.
    subscription = live.hub.subscribe(wants, client)
    resume_from = resume_point(live.hub, last_event_id)
    return RegionStreamResponse(
        region_events(live, subscription, snapshot, coalesce_seconds, resume_from),
        live.hub, subscription, sep=SEPARATOR, ping=heartbeat_seconds,
        ping_message_factory=_heartbeat, headers={"Cache-Control": "no-cache"})


async def region_events(live: LiveCoverage, subscription: ChangeSubscription,
                        snapshot: list[Region], coalesce_seconds: float,
                        resume_from: int | None = None) -> AsyncIterator[ServerSentEvent]:
    """The events of one client's stream; they end when the service stops."""
    hub = live.hub
    try:
        yield ServerSentEvent(retry=RETRY_MILLISECONDS, sep=SEPARATOR)
        watermark = hub.sequence
        if resume_from is not None:
            changed = set(hub.changed_since(resume_from, (r.code for r in snapshot)))
            snapshot = [r for r in snapshot if r.code in changed]
        yield _event("snapshot", RegionCoverageList(items=live.coverage(snapshot)),
                     event_id(hub, watermark))
        while True:
            codes = await subscription.next_changes()
            if subscription.closed:
                return
            sequence = hub.sequence  # read with the coverage below: no publish between
            items = live.coverage([r for code in sorted(codes) if (r := live.regions.get(code))])
            for n, item in enumerate(items, 1):
                yield _event("counters", item,
                             event_id(hub, sequence if n == len(items) else watermark))
            watermark = sequence
            # Coalescing: whatever changes meanwhile is sent once, in the next round.
            await asyncio.sleep(coalesce_seconds)
    finally:
        hub.unsubscribe(subscription)


def _event(name: str, body: BaseModel, id_: str) -> ServerSentEvent:
    return ServerSentEvent(body.model_dump_json(exclude_unset=True), event=name, id=id_,
                           sep=SEPARATOR)


def _heartbeat() -> ServerSentEvent:
    return ServerSentEvent(comment="heartbeat", sep=SEPARATOR)
