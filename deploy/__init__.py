"""Deployment of UCJ Live: the local stack (deploy/local) and the Kafka jars (deploy/kafka)."""
