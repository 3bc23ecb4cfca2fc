"""One stack and one seeding of the demo's who-pays data (deploy/local/demo_who_pays.py) for
every test of this package: the figures through the coverage API first, then the page in a
browser (which adds to them)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import httpx
import pytest

from deploy.local import demo_who_pays
from shared.regions import directory
from tests.e2e.conftest import AUTH, RunningStack, whole_stack


@dataclass(frozen=True)
class Demo:
    stack: RunningStack
    seeded: demo_who_pays.WhoPays
    villages: list[str]  # Tanjungbalai's and Serdang Bedagai's


def demo_villages() -> list[str]:
    regencies = (demo_who_pays.TANJUNGBALAI + ".", demo_who_pays.SERDANG_BEDAGAI + ".")
    return [r.code for r in directory().at_level("village") if r.code.startswith(regencies)]


@pytest.fixture(scope="package")
def demo(infra, tmp_path_factory) -> Iterator[Demo]:
    """The demo's programme, OPDs and door-to-door registrations, over HTTP, on a stack of
    this package's own."""
    villages = demo_villages()
    with whole_stack(infra, tmp_path_factory.mktemp("who-pays-stack")) as running:
        with httpx.Client(headers=AUTH, timeout=60) as http:
            seeded = demo_who_pays.seed(http, running.url("registration"),
                                        running.url("contributions"), villages,
                                        random.Random(11), date.today())
        assert not seeded.problems, seeded.problems[:10]
        assert seeded.enrolled == demo_who_pays.PROGRAMME_QUOTA
        assert seeded.programme_paid == demo_who_pays.PROGRAMME_PAID
        yield Demo(running, seeded, villages)
