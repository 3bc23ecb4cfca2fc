"""The supervisor as a process: it restarts a service recorded in stack.json that died, with
the same command and environment, and `down` stops it before what it supervises."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from deploy.local import stack
from deploy.local.process import ManagedProcess


def wait_for(predicate, within: float):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    return predicate()


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def restarted(rd: Path, old_pid: int) -> ManagedProcess | None:
    d = stack.load_state(rd).get("processes", {}).get("claims")
    p = ManagedProcess.from_dict(d) if d else None
    return p if p is not None and p.pid != old_pid and p.alive() else None


def test_the_supervisor_restarts_a_dead_service_and_down_stops_the_supervisor_first(
        tmp_path, monkeypatch):
    rd = tmp_path / "run"
    monkeypatch.setenv("UCJ_RUN_DIR", str(rd))
    service = stack.start_service("claims", [sys.executable, "-c", "import time; time.sleep(60)"],
                                  {"UCJ_MARK": "supervised"}, rd / "logs")
    state = {"run_dir": str(rd), "databases": {}, "processes": {"claims": service.to_dict()}}
    with stack._state_lock(rd):
        stack.save_state(rd, state)
        supervisor = stack.start_supervisor(rd, state)
    again = None
    try:
        service.kill9()
        again = wait_for(lambda: restarted(rd, service.pid), within=15)
        assert again is not None, (rd / "logs" / "supervisor.log").read_text()
        assert environ(again.pid)["UCJ_MARK"] == "supervised"
        assert "claims (pid" in (rd / "logs" / "supervisor.log").read_text()

        assert stack.cmd_down() == 0
        assert not supervisor.alive()
        assert not again.alive()
        assert "supervisor" not in stack.load_state(rd)
        assert stack.load_state(rd)["processes"] == {}
    finally:
        supervisor.stop(5)
        if again is not None:
            again.stop(5)
