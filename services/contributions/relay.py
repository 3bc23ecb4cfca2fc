"""python -m services.contributions.relay — publishes the contributions outbox to Kafka."""

from services.contributions.settings import ContributionsSettings
from shared.relay_process import run_relay

if __name__ == "__main__":
    run_relay(ContributionsSettings(), "contributions-relay")
