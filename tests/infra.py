"""Where the tests get a real Kafka broker and a real PostgreSQL server.

In this order: the URLs in the environment (KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL, both
set); testcontainers when a Docker engine answers; otherwise the project's own local stack
(deploy/local/stack.py: Kafka from the Maven Central jars, PostgreSQL from Debian's binaries)
on free ports in a temporary directory. Never a mock: these tests are about the real parts.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deploy.local import stack


@dataclass(frozen=True)
class RealInfra:
    bootstrap: str
    server_url: str  # a PostgreSQL server URL; tests create their own databases on it
    origin: str

    def new_prefix(self, specs: tuple | None = None) -> str:
        """Fresh topics for one test: every topic of shared/topics.py (or those of `specs`)
        under a new prefix."""
        prefix = f"t{uuid.uuid4().hex[:10]}."
        stack.create_topics(self.bootstrap, prefix, specs)
        return prefix

    def new_database(self, label: str = "db") -> str:
        name = f"t_{label}_{uuid.uuid4().hex[:10]}"
        return stack.create_databases(self.server_url, [name])[name]


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def _from_testcontainers() -> Iterator[RealInfra]:
    from testcontainers.community.kafka import KafkaContainer  # type: ignore[import-not-found]
    from testcontainers.postgres import PostgresContainer

    with KafkaContainer("apache/kafka:4.0.1").with_kraft() as kafka, PostgresContainer(
        "postgres:16", driver=None
    ) as postgres:
        yield RealInfra(kafka.get_bootstrap_server(), postgres.get_connection_url(driver=None),
                        "testcontainers")


@contextlib.contextmanager
def _from_local_stack(workdir: Path) -> Iterator[RealInfra]:
    ports = [stack.free_port() for _ in range(3)]
    infra = stack.start_infra(workdir, kafka_port=ports[0], controller_port=ports[1],
                              pg_port=ports[2], use_env=False)
    try:
        yield RealInfra(infra.bootstrap, infra.server_url, "local stack")
    finally:
        infra.stop()


@contextlib.contextmanager
def real_infra(workdir: Path) -> Iterator[RealInfra]:
    kafka, database = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    if kafka and database:
        stack.wait_for_kafka(kafka)
        yield RealInfra(kafka, database, "environment")
    elif _docker_answers():
        with _from_testcontainers() as infra:
            yield infra
    else:
        with _from_local_stack(workdir) as infra:
            yield infra
