from __future__ import annotations

import os
import uuid

import pytest

from tests.infra import RealInfra, real_infra

# The compose test runs in the Docker pass of `./ucj test` (deploy/docker/engine.sh pass sets
# UCJ_COMPOSE_TEST=1, with an engine and the images there): left out of the main run, not
# skipped in it.
collect_ignore = [] if os.environ.get("UCJ_COMPOSE_TEST") == "1" else ["docker"]


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory):
    with real_infra(tmp_path_factory.mktemp("infra")) as found:
        print(f"\nKafka {found.bootstrap} and PostgreSQL from the {found.origin}")
        yield found


@pytest.fixture
def prefix(infra: RealInfra) -> str:
    """A fresh topic prefix with every topic created under it."""
    return infra.new_prefix()


@pytest.fixture
def keys_prefix(infra: RealInfra) -> str:
    """A fresh topic prefix with only the API keys' topic: for tests that make keys and touch
    no other topic."""
    from shared.topics import API_KEYS

    return infra.new_prefix((API_KEYS,))


@pytest.fixture
def bare_prefix() -> str:
    """A fresh topic prefix with no topics: for tests that never touch Kafka (each created
    topic costs the one test broker memory for the whole run)."""
    return f"t{uuid.uuid4().hex[:10]}."
