"""python -m services.registration.relay — publishes the registration outbox to Kafka."""

from services.registration.settings import RegistrationSettings
from shared.relay_process import RunningRelay, run_relay, start_relay

CLIENT_ID = "registration-relay"


async def start_embedded(settings: RegistrationSettings) -> RunningRelay:
    return await start_relay(settings, CLIENT_ID)


if __name__ == "__main__":
    run_relay(RegistrationSettings(), CLIENT_ID)
