"""Code shared by the UCJ Live services: event schemas, outbox, Kafka and database plumbing."""
