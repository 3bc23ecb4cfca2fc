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
# Malformed messages, with the reason, so the consumers keep going.
DEAD_LETTER = TopicSpec("ucj.dead-letter", 6)
# Absolute village counters published by the coverage worker, one message per regency and source
# partition (key regency@partition); readers add them up to districts, regencies and above.
VILLAGE_COUNTERS = TopicSpec("ucj.coverage.village-counters", 6, compacted=True)

COVERAGE_APP_ID = "ucj-coverage"
# Faust's own changelog topic for the participant facts table (created by us, like the others,
# because the broker does not auto-create topics).
FACTS_TABLE = "participant-facts"
FACTS_CHANGELOG = TopicSpec(f"{COVERAGE_APP_ID}-{FACTS_TABLE}-changelog", PARTICIPANT_PARTITIONS,
                            compacted=True)

SOURCE_TOPICS = (PARTICIPANTS, MEMBERSHIPS, CLAIMS)
ALL_TOPICS = (*SOURCE_TOPICS, DEAD_LETTER, VILLAGE_COUNTERS, FACTS_CHANGELOG)


# Compacted topics keep the newest value per key. Roll segments often so the log cleaner
# actually runs: the counters topic gets a new value per changed regency several times a second.
COMPACTED_CONFIG = {"cleanup.policy": "compact", "segment.ms": "600000",
                    "min.cleanable.dirty.ratio": "0.1"}


def topic_config(spec: TopicSpec) -> dict[str, str]:
    return dict(COMPACTED_CONFIG) if spec.compacted else {}


def topic_name(spec: TopicSpec, prefix: str = "") -> str:
    return f"{prefix}{spec.name}"
