from pathlib import Path

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class ContributionsSettings(ServiceSettings):
    port: int = Field(default=8002, validation_alias=AliasChoices("UCJ_PORT"))
    migrations_dir: Path = Path(__file__).parent / "migrations"
    # How often the calendar scheduler looks for memberships whose status time alone changes.
    scheduler_interval: float = Field(
        default=30.0, gt=0, validation_alias=AliasChoices("UCJ_SCHEDULER_INTERVAL_SECONDS"))
