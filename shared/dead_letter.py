"""The one shape of a dead letter: a message a consumer could not read or apply, with the reason.

No copy of the message itself: a misbehaving producer's message may carry personal data (NIK,
names), and the dead-letter topic is read by operators. The letter says where the message is
(topic, partition, offset: read it there, under the source topic's access rules) and carries a
SHA-256 of the event's bytes and their size, so two letters about the same bytes are seen as one.
The reason never quotes input values (pydantic errors are rendered without `input`).
"""

from __future__ import annotations

import hashlib

import orjson

MAX_REASON = 2000


def dead_letter(*, consumer: str, reason: str, topic: str, partition: int, offset: int,
                value: bytes | None) -> bytes:
    raw = value or b""
    return orjson.dumps({
        "consumer": consumer, "reason": reason[:MAX_REASON], "topic": topic,
        "partition": partition, "offset": offset,
        "sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)})
