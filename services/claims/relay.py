"""python -m services.claims.relay — publishes the claims outbox to Kafka."""

from shared.relay_process import RelaySettings, run_relay

CLIENT_ID = "claims-relay"

if __name__ == "__main__":
    run_relay(RelaySettings(), CLIENT_ID)
