"""python -m services.contributions.relay — publishes the contributions outbox to Kafka."""

from shared.relay_process import RelaySettings, run_relay

if __name__ == "__main__":
    run_relay(RelaySettings(), "contributions-relay")
