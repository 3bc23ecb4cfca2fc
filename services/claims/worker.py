"""python -m services.claims.worker — learns what claims are judged by, from events only:
participants (segment, programmes, registration date, birth month, who registered them),
payments (months paid, on which day, the JHT and JP shares) and ended memberships."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from services.claims import store
from services.claims.settings import ClaimsSettings
from shared.consumer_progress import PARTICIPANT_CONSUMER
from shared.event_consumer import EventConsumer
from shared.topics import MEMBERSHIPS, PARTICIPANTS
from shared.worker_process import database_consumer, worker_main

log = logging.getLogger("ucj.claims.worker")



def claims_consumer(pool: asyncpg.Pool, *, bootstrap: str, topic_prefix: str,
                    **options: Any) -> EventConsumer:
    return database_consumer(pool, group="ucj-claims", topics=(PARTICIPANTS, MEMBERSHIPS),
                             bootstrap=bootstrap, topic_prefix=topic_prefix, apply=store.learn,
                             progress=PARTICIPANT_CONSUMER, **options)


def main() -> None:
    settings = ClaimsSettings()
    worker_main("claims worker", settings, settings.migrations_dir, lambda pool: [
        claims_consumer(pool, bootstrap=settings.kafka_bootstrap_servers,
                        topic_prefix=settings.topic_prefix).run])


if __name__ == "__main__":
    main()
