"""python -m services.registration.relay — publishes the registration outbox to Kafka."""

from services.registration.settings import RegistrationSettings
from shared.relay_process import RelaySettings, RunningRelay, run_relay, start_relay

CLIENT_ID = "registration-relay"


async def start_embedded(settings: RegistrationSettings) -> RunningRelay:
    """The relay as a task of the HTTP process (UCJ_EMBEDDED_RELAY); default deadlines."""
    return await start_relay(settings, CLIENT_ID)


if __name__ == "__main__":
    run_relay(RelaySettings(), CLIENT_ID)
