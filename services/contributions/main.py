"""python -m services.contributions.main — the contributions HTTP service."""

from services.contributions.api import create_app
from services.contributions.settings import ContributionsSettings
from shared.serve import serve


def main() -> None:
    settings = ContributionsSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
