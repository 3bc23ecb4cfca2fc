"""Kafka topics: names, partition counts and cleanup policies, chosen here and nowhere else.

Every topic is created by the stack (never auto-created). Keys are aggregate ids, so one
aggregate's events stay in one partition, in order.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False


# Source topics, keyed by participant id. They must have the same partition count: the coverage
# worker joins them per participant (co-partitioned).
PARTICIPANT_PARTITIONS = 12

PARTICIPANTS = TopicSpec("ucj.participants", PARTICIPANT_PARTITIONS)
MEMBERSHIPS = TopicSpec("ucj.memberships", PARTICIPANT_PARTITIONS)
CLAIMS = TopicSpec("ucj.claims", PARTICIPANT_PARTITIONS)
# Employers (source registration) and funded programmes (source contributions), keyed by their
# ids: reference data the coverage workers fold beside the participants (same partition count).
ORGANISATIONS = TopicSpec("ucj.organisations", PARTICIPANT_PARTITIONS)
# Malformed messages, with the reason, so the consumers keep going.
DEAD_LETTER = TopicSpec("ucj.dead-letter", 6)
# The coverage workers' consumer group (faust app id). Their counting state is in the coverage
# database, not in faust tables: no changelog topic.
COVERAGE_APP_ID = "ucj-coverage"

# Every partner's API keys (hash and scopes, never the key), keyed by key id: each service keeps
# a copy (shared/key_directory.py). One partition: one order for every change.
API_KEYS = TopicSpec("ucj.api-keys", 1, compacted=True)

SOURCE_TOPICS = (PARTICIPANTS, MEMBERSHIPS, CLAIMS, ORGANISATIONS)
ALL_TOPICS = (*SOURCE_TOPICS, DEAD_LETTER, API_KEYS)


# Compacted topics keep the newest value per key. Roll segments often so the log cleaner
# actually runs.
COMPACTED_CONFIG = {"cleanup.policy": "compact", "segment.ms": "600000",
                    "min.cleanable.dirty.ratio": "0.1"}


def topic_config(spec: TopicSpec) -> dict[str, str]:
    return dict(COMPACTED_CONFIG) if spec.compacted else {}


def topic_name(spec: TopicSpec, prefix: str = "") -> str:
    return f"{prefix}{spec.name}"
