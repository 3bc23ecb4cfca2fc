"""python -m services.contributions.main — a placeholder (health and OpenAPI only)."""

from pydantic import AliasChoices, Field

from shared.placeholder import placeholder_app
from shared.serve import serve
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    port: int = Field(default=8002, validation_alias=AliasChoices("UCJ_PORT"))


def main() -> None:
    serve(placeholder_app("UCJ Live — contributions"), Settings())


if __name__ == "__main__":
    main()
