"""docker-compose.yml for real: the stack comes up from the project's images, every service
turns healthy, a worker registered and paid for over HTTP moves the coverage counters, and
`down -v` leaves nothing behind. Host ports are free ones (UCJ_*_HOST_PORT), on 127.0.0.1."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bench.faults import synthetic_worker
from deploy.local.process import REPO, free_port
from tests.polling import first_answer

AUTH = {"Authorization": "Bearer dev-bootstrap-key"}
VILLAGE = "12.75.01.1001"  # Kota Binjai
PORTS = ("REGISTRATION", "CONTRIBUTIONS", "CLAIMS", "COVERAGE", "KAFKA", "PG")


def compose_command() -> list[str]:
    """`docker compose` (v2) where the plugin is there, else `docker-compose` (v1)."""
    if shutil.which("docker") and subprocess.run(
            ["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("neither `docker compose` nor `docker-compose` is installed")


@dataclass
class ComposeStack:
    argv: list[str]
    env: dict[str, str]
    ports: dict[str, int]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *args], env=self.env, cwd=REPO, text=True,
                              capture_output=True, timeout=timeout)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service.upper()]}"

    def health(self) -> dict[str, str]:
        """Service -> health status (or the state of a container without a check)."""
        ids = self.run("ps", "-q", "-a").stdout.split()
        if not ids:
            return {}
        out = subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True)
        found = {}
        for c in json.loads(out.stdout or "[]"):
            name = c["Config"]["Labels"].get("com.docker.compose.service", c["Name"])
            state = c["State"]
            found[name] = (state.get("Health", {}).get("Status") if state["Status"] == "running"
                           else f"{state['Status']} ({state.get('ExitCode')})")
        return found


@pytest.fixture(scope="module")
def compose_stack() -> Iterator[ComposeStack]:
    ports = {name: free_port() for name in PORTS}
    project = f"ucjtest{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "COMPOSE_PROJECT_NAME": project,
           **{f"UCJ_{name}_HOST_PORT": str(port) for name, port in ports.items()}}
    running = ComposeStack([*compose_command(), "-f", str(REPO / "docker-compose.yml")], env,
                           ports)
    try:
        t0 = time.monotonic()
        up = running.run("up", "-d", timeout=600)
        assert up.returncode == 0, f"compose up failed:\n{up.stdout[-3000:]}{up.stderr[-3000:]}"

        last: dict[str, str] = {}

        def all_healthy() -> bool | None:
            last.clear()
            last.update(running.health())
            # The one-shot topics job exits 0; every other service reports healthy.
            done = last.pop("topics", None) == "exited (0)" and last and \
                all(status == "healthy" for status in last.values())
            return True if done else None

        first_answer(all_healthy, 240, "every service healthy", lambda: last, every=0.5)
        print(f"\ncompose stack {project} healthy in {time.monotonic() - t0:.1f} s")
        yield running
    except BaseException:
        logs = running.run("logs", "--no-color", "--tail", "40", timeout=60)
        print(logs.stdout[-20000:])
        raise
    finally:
        down = running.run("down", "-v", "--remove-orphans", "-t", "20", timeout=300)
        assert down.returncode == 0, down.stderr[-3000:]
        left = subprocess.run(["docker", "ps", "-aq", "--filter",
                               f"label=com.docker.compose.project={project}"],
                              capture_output=True, text=True).stdout.split()
        assert not left, f"containers left after down -v: {left}"


def coverage(http: httpx.Client, stack: ComposeStack, code: str) -> dict[str, Any]:
    r = http.get(f"{stack.url('coverage')}/v1/coverage/regions/{code}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_worker_registered_and_paid_for_moves_the_coverage_counters(
        compose_stack: ComposeStack) -> None:
    with httpx.Client(timeout=10, headers=AUTH) as http:
        before = coverage(http, compose_stack, VILLAGE)
        r = http.post(f"{compose_stack.url('registration')}/v1/participants",
                      json=synthetic_worker(VILLAGE, random.Random()))
        assert r.status_code == 201, r.text
        pid = r.json()["participant_id"]

        def counted(field: str, want: int) -> dict[str, Any] | None:
            now = coverage(http, compose_stack, VILLAGE)
            return now if now[field] == want else None

        first_answer(lambda: counted("registered", before["registered"] + 1), 60,
                     "registered +1", every=0.5)

        def dues() -> dict[str, Any] | None:  # 404 until contributions learnt the worker
            r = http.get(f"{compose_stack.url('contributions')}/v1/dues/{pid}?months=1")
            return dict(r.json()) if r.status_code == 200 else None

        owed = first_answer(dues, 60, f"dues of {pid}", every=0.5)
        paid = http.post(f"{compose_stack.url('contributions')}/v1/contributions", json={
            "payment_ref": f"COMPOSE-{uuid.uuid4().hex[:12]}", "participant_id": pid,
            "first_period": owed["first_period"], "months": 1, "amount": owed["amount"],
            "payer": "self"})
        assert paid.status_code == 201, paid.text
        assert paid.json()["membership_status"] == "active", paid.text

        after = first_answer(lambda: counted("active", before["active"] + 1), 60, "active +1",
                             every=0.5)
        assert after["registered"] == before["registered"] + 1
