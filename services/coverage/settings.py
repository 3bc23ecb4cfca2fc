"""Settings of the coverage API process, read once."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field

from shared.settings import CommonSettings, ServiceSettings


class CoverageApiSettings(ServiceSettings):
    port: int = Field(default=8004, validation_alias=AliasChoices("UCJ_PORT"))
    migrations_dir: Path = Path(__file__).parent / "migrations"
    # Server-Sent Events: a comment every heartbeat keeps proxies from closing an idle stream;
    # each region is sent at most once per coalesce interval however often it changes (0.5 s:
    # at most 2 messages a second per region and client).
    stream_heartbeat_seconds: float = Field(
        default=15.0, gt=0, validation_alias=AliasChoices("UCJ_STREAM_HEARTBEAT_SECONDS"))
    stream_coalesce_seconds: float = Field(
        default=0.5, ge=0, validation_alias=AliasChoices("UCJ_STREAM_COALESCE_SECONDS"))
    # How often the counters of the regions that changed are snapshotted (history, as_of,
    # forecast); also at each day's end.
    snapshot_every_seconds: float = Field(
        default=3600.0, gt=0, validation_alias=AliasChoices("UCJ_SNAPSHOT_EVERY_SECONDS"))
    stream_max_clients: int = Field(
        default=500, ge=1, validation_alias=AliasChoices("UCJ_STREAM_MAX_CLIENTS"))
    # Open streams per client address (a 429 with Retry-After past it): a dashboard holds one
    # per tab, so this leaves room for an office behind one address, not for a runaway script.
    stream_max_per_client: int = Field(
        default=20, ge=1, validation_alias=AliasChoices("UCJ_STREAM_MAX_PER_CLIENT"))


class WorkerSettings(CommonSettings):
    """Settings of a coverage worker process (services/coverage/worker.py)."""

    # The coverage database: the counting state lives there (migrations/0002_counting_state.sql).
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    state_dir: Path = Field(default=Path(".run/coverage-state"),
                            validation_alias=AliasChoices("UCJ_COVERAGE_STATE_DIR"))
    web_port: int = Field(default=8014, validation_alias=AliasChoices("UCJ_COVERAGE_WORKER_PORT"))
    # A batch is what arrived within batch_wait seconds, at most batch_messages Kafka messages
    # (each holds up to 200 events); it is folded in transactions of at most this many events.
    batch_messages: int = Field(default=200, ge=1,
                                validation_alias=AliasChoices("UCJ_COVERAGE_BATCH_MESSAGES"))
    batch_wait: float = Field(default=0.05, gt=0,
                              validation_alias=AliasChoices("UCJ_COVERAGE_BATCH_WAIT"))
    max_events_per_transaction: int = Field(
        default=5000, ge=1, validation_alias=AliasChoices("UCJ_COVERAGE_MAX_EVENTS_PER_TX"))
    # A deadline on every counting transaction (and on a dead letter's acknowledgement).
    transaction_timeout: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("UCJ_COVERAGE_TX_TIMEOUT"))
