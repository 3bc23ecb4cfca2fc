from pathlib import Path

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class RegistrationSettings(ServiceSettings):
    port: int = Field(default=8001, validation_alias=AliasChoices("UCJ_PORT"))
    migrations_dir: Path = Path(__file__).parent / "migrations"
