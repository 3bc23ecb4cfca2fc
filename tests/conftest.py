from __future__ import annotations

import pytest

from tests.infra import RealInfra, real_infra


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory):
    with real_infra(tmp_path_factory.mktemp("infra")) as found:
        print(f"\nKafka {found.bootstrap} and PostgreSQL from the {found.origin}")
        yield found


@pytest.fixture
def prefix(infra: RealInfra) -> str:
    return infra.new_prefix()
