"""Settings read once from the environment, one class per process.

Nothing else in the code base reads the environment.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Prefix for every topic name, so several stacks (or test runs) can share one broker.
    topic_prefix: str = Field(default="", validation_alias=AliasChoices("UCJ_TOPIC_PREFIX"))
    bootstrap_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("UCJ_BOOTSTRAP_API_KEY")
    )
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("UCJ_LOG_LEVEL"))
    # A file holding the current time (ISO 8601) instead of the system clock: tests and demos
    # move the calendar of every process at once by writing it.
    clock_file: str | None = Field(default=None, validation_alias=AliasChoices("UCJ_CLOCK_FILE"))


class ServiceSettings(CommonSettings):
    """Settings of one HTTP service with its own database (DATABASE_URL names that database)."""

    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("UCJ_HOST"))
    port: int = Field(default=8000, validation_alias=AliasChoices("UCJ_PORT"))
    # Run the outbox relay as a task of the HTTP process (handy for one-process setups);
    # the local stack runs the relay as its own process instead.
    embedded_relay: bool = Field(default=False, validation_alias=AliasChoices("UCJ_EMBEDDED_RELAY"))
    db_pool_min: int = 2
    db_pool_max: int = Field(default=10, validation_alias=AliasChoices("UCJ_DB_POOL_MAX"))
