"""python -m services.registration.worker — learns from membership events which memberships
ended (lapsed, death, JHT withdrawal) and terminates those participants here, so that the
worker's NIK may register again. Nothing is published: the services that ended the
membership already said so."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from services.registration.settings import RegistrationSettings
from shared.event_consumer import EventConsumer
from shared.events import Envelope, MembershipStatusChanged, Payload
from shared.topics import MEMBERSHIPS
from shared.worker_process import database_consumer, worker_main

log = logging.getLogger("ucj.registration.worker")



async def end_participants(conn: asyncpg.Connection,
                           events: list[tuple[Envelope, Payload]]) -> int:
    """Terminate the participants whose membership ended; once (a replay changes nothing)."""
    ended = {p.participant_id: p.reason or "ended" for _, p in events
             if isinstance(p, MembershipStatusChanged) and p.status == "terminated"}
    if not ended:
        return 0
    rows = await conn.fetch(
        "UPDATE participants AS p SET status = 'terminated', ended_reason = u.reason,"
        " ended_at = now()"
        " FROM unnest($1::uuid[], $2::text[]) AS u(id, reason)"
        " WHERE p.id = u.id AND p.status <> 'terminated' RETURNING p.id",
        list(ended), list(ended.values()))
    return len(rows)


async def _end_and_say(conn: asyncpg.Connection,
                       events: list[tuple[Envelope, Payload]]) -> None:
    n = await end_participants(conn, events)
    if n:
        log.info("%d participants terminated (their membership ended)", n)


def membership_consumer(pool: asyncpg.Pool, *, bootstrap: str, topic_prefix: str,
                        **options: Any) -> EventConsumer:
    return database_consumer(pool, group="ucj-registration", topics=(MEMBERSHIPS,),
                             bootstrap=bootstrap, topic_prefix=topic_prefix,
                             apply=_end_and_say, **options)


def main() -> None:
    settings = RegistrationSettings()
    worker_main("registration worker", settings, settings.migrations_dir, lambda pool: [
        membership_consumer(pool, bootstrap=settings.kafka_bootstrap_servers,
                            topic_prefix=settings.topic_prefix).run])


if __name__ == "__main__":
    main()
