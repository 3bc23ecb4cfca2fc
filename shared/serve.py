"""Run a FastAPI app with uvicorn the one way every service does.

Slow or oversized clients are bounded at every stage of a request:
- the head (request line and headers): GuardedHttpToolsProtocol, below (uvicorn with httptools
  bounds neither its size nor its time);
- the body: shared.problems.RequestGuard (size 413, time 408, whichever route reads it);
- between requests: uvicorn's keep-alive timeout;
- after a response sent before its request's body was all read: the rest must arrive within
  HEAD_SECONDS or the connection is closed (uvicorn reads and drops it);
- at shutdown: connections still open after GRACEFUL_SHUTDOWN_SECONDS are closed.

A connection closed while its client is still sending a request (a refused body: 413, 408, or
a 401 answered before reading a large one) is closed the way nginx's "lingering close" does it:
the response is sent and the write side shut, then whatever still arrives is read and dropped
for up to LINGER_SECONDS before the socket closes. Closing at once would make the kernel answer
the unread bytes with a reset, and most clients would lose the response in it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.gc_tuning import tune_gc
from shared.logs import configure
from shared.settings import ServiceSettings

# A request's head must arrive within this many seconds of its first byte (of the connection
# opening, for the first request) and hold at most HEAD_MAX_BYTES.
HEAD_SECONDS = 10.0
HEAD_MAX_BYTES = 64 * 1024
KEEP_ALIVE_SECONDS = 5
LINGER_SECONDS = 2.0
GRACEFUL_SHUTDOWN_SECONDS = 10


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    configure(settings.log_level)
    tune_gc()
    # log_config=None: uvicorn's own lines go through configure()'s formatter, which logs
    # exceptions without their messages.
    uvicorn.run(app, host=settings.host, port=settings.port, loop="uvloop", access_log=False,
                log_config=None, log_level=settings.log_level.lower(), **uvicorn_limits())


def uvicorn_limits() -> dict[str, Any]:
    """The uvicorn settings every HTTP service runs with."""
    return {"http": GuardedHttpToolsProtocol, "timeout_keep_alive": KEEP_ALIVE_SECONDS,
            "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
            # with http="h11" (not ours): the same bound on a request's head
            "h11_max_incomplete_event_size": HEAD_MAX_BYTES}


def _problem_bytes(status: int, reason: str, detail: str) -> bytes:
    body = orjson.dumps({"type": "about:blank", "title": reason, "status": status,
                         "detail": detail, "errors": []})
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


_HEAD_TOO_SLOW = _problem_bytes(408, "Request Timeout",
                                f"the request's headers must arrive within {HEAD_SECONDS:g} s")
_HEAD_TOO_LARGE = _problem_bytes(431, "Request Header Fields Too Large",
                                 f"the request line and headers may be at most {HEAD_MAX_BYTES} "
                                 "bytes")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with what it lacks: a request head larger than
    HEAD_MAX_BYTES is answered 431, one that does not arrive within HEAD_SECONDS 408 (a
    connection that sends nothing at all is closed), and the connection closed; a request body
    still arriving after its response was sent has HEAD_SECONDS to finish."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._lingering = False
        super().connection_made(_LingeringTransport(transport, self))  # type: ignore[arg-type]
        self._in_head = True
        self._head_bytes = 0
        self._head_started = False
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a request already answered: dropped
        if self._in_head:
            self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and self._head_bytes > HEAD_MAX_BYTES:
            self._refuse(_HEAD_TOO_LARGE)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_started = True, True
        if self._deadline is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._in_head, self._head_bytes, self._head_started = False, 0, False
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_head, self._head_bytes = True, 0
        self._disarm()  # a body drained after its response: done
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            self._arm()  # the response went out before its request's body was all read

    def client_still_sending(self) -> bool:
        """Whether a request is partly received: its head begun, or its body not complete."""
        if self._in_head:
            return self._head_started
        return self.cycle is not None and self.cycle.more_body

    def linger(self, transport: asyncio.Transport) -> None:
        """Shut the write side (the response sent so far goes first), drop what arrives, and
        close for good after LINGER_SECONDS or when the client closes its side."""
        self._disarm()
        self._lingering = True
        if transport.can_write_eof():
            transport.write_eof()
        transport.resume_reading()
        self.loop.call_later(LINGER_SECONDS, transport.close)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(HEAD_SECONDS, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm()  # a pipelined head behind a response still going: after it
        elif self._in_head and self._head_started:
            self._refuse(_HEAD_TOO_SLOW)
        else:  # nothing sent at all, or a body drained too slowly after its response
            self.transport.close()

    def _refuse(self, response: bytes) -> None:
        self._disarm()
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(response)
        self.transport.close()


class _LingeringTransport:
    """The connection's transport as uvicorn sees it: close() lingers while the client is still
    sending a request (GuardedHttpToolsProtocol.linger); everything else is the transport's."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedHttpToolsProtocol):
        self._transport = transport
        self._protocol = protocol
        self._closing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def close(self) -> None:
        if self.is_closing():
            return
        self._closing = True
        if self._protocol.client_still_sending():
            self._protocol.linger(self._transport)
        else:
            self._transport.close()
