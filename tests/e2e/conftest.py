"""The whole stack as processes (registration API and relay, coverage worker and API, the
placeholders), on free ports, with fresh topics and databases, against the real infra."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from bench.faults import synthetic_worker
from deploy.local import stack
from deploy.local.process import ManagedProcess

API_KEY = "e2e-bootstrap-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

# The browser tests: screenshots, Chromium's flags, the two screens they look through.
ARTIFACTS = Path(__file__).resolve().parents[2] / ".run" / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1400, "height": 1000}
TIMEOUT_MS = 20_000  # what a page may take to show what it has been sent


@dataclass
class RunningStack:
    infra: stack.Infra
    run_dir: Path
    ports: dict[str, int]
    processes: dict[str, ManagedProcess]
    clock_file: Path
    env: dict[str, str]

    def set_clock(self, at: datetime) -> None:
        """Move every process's calendar (they read this file as their clock)."""
        self.clock_file.write_text(at.isoformat())

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def restart(self, *names: str) -> None:
        """Start stopped or killed processes again, with their old ports and environment."""
        for name in names:
            del self.processes[name]
        stack.start_services(self.infra, self.run_dir, api_key=API_KEY, ports=self.ports,
                             reuse=self.processes, started=self.processes, env=self.env)


@contextlib.contextmanager
def whole_stack(infra, run_dir: Path) -> Iterator[RunningStack]:
    """Every process of the stack on fresh databases and topics, until the block ends."""
    databases = {name: infra.new_database(name.removeprefix("ucj_"))
                 for name in stack.DATABASES}
    prefix = infra.new_prefix()
    services = stack.Infra(infra.bootstrap, infra.server_url, databases, prefix)
    ports = {spec.name: stack.free_port() for spec in stack.SERVICES}
    processes: dict[str, ManagedProcess] = {}
    clock_file = run_dir / "clock"
    clock_file.write_text("")  # empty: the system clock, until a test moves it
    env = {"UCJ_CLOCK_FILE": str(clock_file), "UCJ_SCHEDULER_INTERVAL_SECONDS": "0.5"}
    try:
        stack.start_services(services, run_dir, api_key=API_KEY, ports=ports,
                             started=processes, env=env)
        running = RunningStack(services, run_dir, ports, processes, clock_file, env)
        wait_for_worker(running)
        yield running
    finally:
        for process in processes.values():
            process.stop(10)


@pytest.fixture(scope="module")
def running_stack(infra, tmp_path_factory):
    with whole_stack(infra, tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium (./ucj install): Playwright's own download is never used."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is not installed: run ./ucj install"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def text_becomes(page: Page, selector: str, expected: str, timeout: int = TIMEOUT_MS, *,
                 holds: bool = False) -> None:
    """Until the element reads `expected` (with `holds`: until its text holds it); the
    assertion shows what it read instead."""
    check = "(document.querySelector(s)?.textContent ?? '')" + (
        ".includes(t)" if holds else ".trim() === t")
    try:
        page.wait_for_function(f"([s, t]) => {check}", arg=[selector, expected],
                               timeout=timeout)
    except PlaywrightTimeout as error:
        found = page.eval_on_selector(selector, "e => e.textContent") \
            if page.query_selector(selector) else None
        raise AssertionError(f"{selector} shows {found!r}, "
                             f"{'without' if holds else 'not'} {expected!r}") from error


def id_number(n: int) -> str:
    """A count as id-ID writes it: 132.826."""
    return f"{n:,}".replace(",", ".")


COVERAGE_WORKERS = ("coverage-worker", "coverage-worker-2")


def wait_for_worker(running: RunningStack, timeout: float = 90.0) -> None:
    """Until the coverage workers running own all 12 partitions between them, each its share
    (not one of them all of them, before the other has joined: a rebalance would follow)."""
    deadline = time.monotonic() + timeout
    owned: set[int] = set()
    while time.monotonic() < deadline:
        owned, shares = set(), []
        for name in COVERAGE_WORKERS:
            if name not in running.processes or not running.processes[name].alive():
                continue
            try:
                response = httpx.get(f"http://127.0.0.1:{running.ports[name]}/healthz",
                                     timeout=2)
                partitions = set(response.json()["partitions"]) \
                    if response.status_code == 200 else set()
            except (httpx.HTTPError, ValueError, KeyError):
                partitions = set()
            owned |= partitions
            shares.append(partitions)
        if owned == set(range(12)) and all(shares):
            return
        time.sleep(0.3)
    raise TimeoutError(f"coverage workers own partitions {sorted(owned)} only:\n"
                       f"{running.processes['coverage-worker'].log_tail()}")


# A valid synthetic BPU worker with a NIK unique in this run (one definition, with the faults'
# load): synthetic_worker(village, rng).
__all__ = ["synthetic_worker"]
