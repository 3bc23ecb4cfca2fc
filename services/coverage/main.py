"""python -m services.coverage.main — the coverage HTTP service."""

from services.coverage.api import create_app
from services.coverage.settings import CoverageApiSettings
from shared.serve import serve


def main() -> None:
    settings = CoverageApiSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
