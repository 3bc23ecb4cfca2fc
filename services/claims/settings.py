"""The claims service's settings (HTTP service, worker and relay share them)."""

from pathlib import Path

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class ClaimsSettings(ServiceSettings):
    port: int = Field(default=8003, validation_alias=AliasChoices("UCJ_PORT"))
    migrations_dir: Path = Path(__file__).parent / "migrations"
