"""The one shape of a dead letter: a message a consumer could not read, with the reason."""

from __future__ import annotations

import orjson

MAX_REASON = 2000
MAX_VALUE = 10_000


def dead_letter(*, consumer: str, reason: str, topic: str, partition: int, offset: int,
                value: bytes | None) -> bytes:
    return orjson.dumps({
        "consumer": consumer, "reason": reason[:MAX_REASON], "topic": topic,
        "partition": partition, "offset": offset,
        "value": (value or b"")[:MAX_VALUE].decode("utf-8", "replace")})
