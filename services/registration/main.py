"""python -m services.registration.main — the registration HTTP service."""

from services.registration.api import create_app
from services.registration.settings import RegistrationSettings
from shared.serve import serve


def main() -> None:
    settings = RegistrationSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
