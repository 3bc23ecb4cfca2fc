#!/bin/bash
# Healthy once this start's server log says the broker started (KRaft logs it after the broker
# registered and was unfenced) and its client port accepts connections.
port=$(cat /tmp/kafka-port 2>/dev/null) || exit 1
grep -qs "Kafka Server started" /var/log/kafka/kafka-server.log* || exit 1
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
