"""Where the tests get a real Kafka broker and a real PostgreSQL server.

UCJ_TEST_INFRA chooses:

- `local`: the project's own local stack (deploy/local/stack.py: Kafka from the Maven Central
  jars, PostgreSQL from Debian's binaries) on free ports in a temporary directory;
- `testcontainers`: the project's images (ucj-kafka, ucj-postgres: `./ucj docker-images`)
  through testcontainers, ports published on 127.0.0.1 only; an error, never a silent
  fallback, when no Docker engine answers or the images are missing;
- `env`: the broker and server named by KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL;
- `auto` (the default): `env` when both are set, else `testcontainers` when a Docker engine
  answers and has the images, else `local`.

Never a mock: these tests are about the real parts.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local import stack

KAFKA_IMAGE = os.environ.get("UCJ_KAFKA_IMAGE", "ucj-kafka")
POSTGRES_IMAGE = os.environ.get("UCJ_POSTGRES_IMAGE", "ucj-postgres")
CHOICES = ("auto", "local", "testcontainers", "env")


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


def infra_choice() -> str:
    choice = (os.environ.get("UCJ_TEST_INFRA") or "auto").strip().lower()
    if choice not in CHOICES:
        raise RuntimeError(f"UCJ_TEST_INFRA={choice!r}: expected one of {', '.join(CHOICES)}")
    return choice


def docker_problem() -> str | None:
    """Why testcontainers cannot run here (None: it can): no engine, or no project images."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as e:
        return f"no Docker engine answers ({type(e).__name__}: {e})"
    try:
        missing = [i for i in (KAFKA_IMAGE, POSTGRES_IMAGE) if not _has_image(client, i)]
        if missing:
            return f"image(s) {', '.join(missing)} missing: run ./ucj docker-images"
        return None
    finally:
        client.close()


def _has_image(client: Any, name: str) -> bool:
    import docker

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def _host_networking() -> bool:
    """True when the engine runs without its default bridge (dockerd --bridge=none, where the
    sandbox forbids one): the containers then share the host's network, bound to 127.0.0.1."""
    import docker

    client = docker.from_env(timeout=5)
    try:
        return not client.networks.list(names=["bridge"])
    finally:
        client.close()


def _on_loopback(container: Any, port: int, host_net: bool) -> Any:
    if host_net:
        return container.with_kwargs(network_mode="host", shm_size="256m")
    # docker-py takes (address, port): published on 127.0.0.1 only, never on every address.
    container.ports[f"{port}/tcp"] = ("127.0.0.1", port)
    return container.with_kwargs(shm_size="256m")


@contextlib.contextmanager
def _from_testcontainers() -> Iterator[RealInfra]:
    problem = docker_problem()
    if problem:
        raise RuntimeError(f"UCJ_TEST_INFRA=testcontainers, but {problem}")
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import HealthcheckWaitStrategy

    # Ryuk (the reaper) is an image from Docker Hub: the containers are removed below instead.
    testcontainers_config.ryuk_disabled = True
    host_net = _host_networking()
    kafka_port, pg_port = stack.free_port(), stack.free_port()

    # The broker listens on the same port number inside and out, so the address it advertises
    # (127.0.0.1:port) is the one the tests reach.
    kafka = DockerContainer(KAFKA_IMAGE).with_envs(
        KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{kafka_port}",
        KAFKA_HEAP_OPTS="-Xms1g -Xmx1g")
    if host_net:
        controller = stack.free_port()
        kafka.with_envs(KAFKA_LISTENERS=f"PLAINTEXT://127.0.0.1:{kafka_port},"
                                        f"CONTROLLER://127.0.0.1:{controller}",
                        KAFKA_CONTROLLER_QUORUM_VOTERS=f"1@127.0.0.1:{controller}")
    else:
        kafka.with_envs(KAFKA_LISTENERS=f"PLAINTEXT://:{kafka_port},CONTROLLER://127.0.0.1:9093")
    _on_loopback(kafka, kafka_port, host_net)

    # As the local stack's server (deploy/local/postgres.py): trust (no password: a SCRAM
    # handshake per connection costs the pools real time) on 127.0.0.1 only, same settings.
    postgres = DockerContainer(POSTGRES_IMAGE).with_envs(
        POSTGRES_PORT=str(pg_port),
        POSTGRES_LISTEN_ADDRESSES="127.0.0.1" if host_net else "*"
    ).with_command(["-c", "max_connections=200", "-c", "shared_buffers=256MB",
                    "-c", "TimeZone=UTC"])
    _on_loopback(postgres, pg_port, host_net)

    started: list[Any] = []
    try:
        for container in (postgres, kafka):  # both start; then each is waited for
            started.append(container)
            container.start()
        for container in (postgres, kafka):
            HealthcheckWaitStrategy().with_startup_timeout(120).wait_until_ready(container)
        bootstrap = f"127.0.0.1:{kafka_port}"
        server_url = f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"
        stack.wait_for_kafka(bootstrap, 60)  # what a client sees: a registered broker
        stack.create_databases(server_url, [])  # retries until the server takes connections
        yield RealInfra(bootstrap, server_url, f"testcontainers ({KAFKA_IMAGE}, {POSTGRES_IMAGE}"
                        f"{', host network' if host_net else ''})")
    finally:
        for container in reversed(started):
            with contextlib.suppress(Exception):
                container.stop()


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
    choice = infra_choice()
    kafka, database = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    if choice == "auto":
        choice = ("env" if kafka and database else
                  "testcontainers" if docker_problem() is None else "local")
    if choice == "env":
        if not (kafka and database):
            raise RuntimeError("UCJ_TEST_INFRA=env needs KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL")
        stack.wait_for_kafka(kafka)
        yield RealInfra(kafka, database, "environment")
    elif choice == "testcontainers":
        with _from_testcontainers() as infra:
            yield infra
    else:
        with _from_local_stack(workdir) as infra:
            yield infra
