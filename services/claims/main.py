"""python -m services.claims.main — a placeholder (health and OpenAPI only)."""

from pydantic import AliasChoices, Field

from shared.placeholder import placeholder_app
from shared.serve import serve
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    port: int = Field(default=8003, validation_alias=AliasChoices("UCJ_PORT"))


def main() -> None:
    serve(placeholder_app("UCJ Live — claims"), Settings())


if __name__ == "__main__":
    main()
