"""python -m services.claims.main — the claims HTTP service."""

from services.claims.api import create_app
from services.claims.settings import ClaimsSettings
from shared.serve import serve


def main() -> None:
    settings = ClaimsSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
