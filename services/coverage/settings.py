"""Settings of the coverage API process, read once."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class CoverageApiSettings(ServiceSettings):
    port: int = Field(default=8004, validation_alias=AliasChoices("UCJ_PORT"))
    # Server-Sent Events: a comment every heartbeat keeps proxies from closing an idle stream;
    # each region is sent at most once per coalesce interval however often it changes.
    stream_heartbeat_seconds: float = Field(
        default=15.0, gt=0, validation_alias=AliasChoices("UCJ_STREAM_HEARTBEAT_SECONDS"))
    stream_coalesce_seconds: float = Field(
        default=0.25, ge=0, validation_alias=AliasChoices("UCJ_STREAM_COALESCE_SECONDS"))
    stream_max_clients: int = Field(
        default=500, ge=1, validation_alias=AliasChoices("UCJ_STREAM_MAX_CLIENTS"))
