"""Detached child processes that can be found and stopped again from another Python process,
plus the small helpers (ports, logging, sync-over-async) the stack modules share.

Every process is started in its own session (so its pid is also its process-group id): a
signal to the group reaches whatever it forked, and Ctrl-C in the terminal that ran
`./ucj up` does not reach it. The start time from /proc is kept next to the pid so that a
later `down` never signals an unrelated process that happens to reuse the pid.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a pid, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:  # no /proc (not Linux): fall back to a plain existence check
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ("R", 0)
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _any_thread_running(pid: int) -> bool:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        if raw[raw.rindex(")") + 2] not in "ZX":
            return True
    return False


@dataclass
class ManagedProcess:
    name: str
    pid: int
    log: Path
    argv: list[str] = field(default_factory=list)
    start_time: int | None = None
    # PostgreSQL wants SIGINT ("fast shutdown"); its SIGTERM waits for every client to leave.
    stop_signal: int = signal.SIGTERM
    port: int | None = None
    # The environment it was started with on top of the starter's (the local stack's
    # supervisor starts a dead service again with it).
    env: dict[str, str] | None = None
    _popen: subprocess.Popen | None = field(default=None, repr=False, compare=False)

    def alive(self) -> bool:
        if self._popen is not None:
            return self._popen.poll() is None  # also reaps our own child
        stat = _proc_stat(self.pid)
        if stat is None or (self.start_time not in (None, 0) and stat[1] != self.start_time):
            return False
        # A zombie has exited; but a leader thread shows "Z" too while the JVM's other threads
        # still run its shutdown, so look at every thread.
        return stat[0] not in ("Z", "X") or _any_thread_running(self.pid)

    def seconds_since_start(self) -> float | None:
        """How long ago it started (also once it died), from its recorded start time; None
        without one (not Linux)."""
        if not self.start_time:
            return None
        try:
            uptime = float(Path("/proc/uptime").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return max(0.0, uptime - self.start_time / os.sysconf("SC_CLK_TCK"))

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the process group to stop, SIGKILL it after `timeout` seconds."""
        if not self.alive():
            return
        self._signal_group(self.stop_signal)
        if not self._wait(timeout):
            self.kill9()
            return
        self._signal_group(signal.SIGKILL)  # children that outlived the leader, if any

    def kill9(self) -> None:
        """SIGKILL the whole group at once (a crash, for the tests) and wait until it is gone."""
        if not self.alive():
            return
        self._signal_group(signal.SIGKILL)
        self._wait(10)

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log, lines)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name, "pid": self.pid, "log": str(self.log), "argv": self.argv,
            "start_time": self.start_time, "stop_signal": int(self.stop_signal),
            "port": self.port}
        if self.env is not None:
            d["env"] = self.env
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ManagedProcess:
        return cls(name=d["name"], pid=d["pid"], log=Path(d["log"]), argv=d.get("argv", []),
                   start_time=d.get("start_time"),
                   stop_signal=d.get("stop_signal", signal.SIGTERM), port=d.get("port"),
                   env=d.get("env"))


def tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64 * 1024))
            return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"


def spawn(name: str, argv: list[str], log: Path, *, env: dict[str, str] | None = None,
          cwd: Path | None = None, user: str | None = None, port: int | None = None,
          stop_signal: int = signal.SIGTERM) -> ManagedProcess:
    """Start argv detached, stdout+stderr appended to `log`; `user` switches uid (root only)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    # Switching user must drop root's groups too, not only the uid.
    ids: dict[str, Any] = {}
    if user is not None:
        ids = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} start {name}: "
                  f"{' '.join(map(str, argv))}\n".encode())
        out.flush()
        popen = subprocess.Popen(
            [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True, **ids,
        )
    stat = _proc_stat(popen.pid)
    return ManagedProcess(name=name, pid=popen.pid, log=log, argv=[str(a) for a in argv],
                          start_time=stat[1] if stat else None, stop_signal=stop_signal,
                          port=port, _popen=popen)


def log(msg: str) -> None:
    print(f"[stack] {msg}", file=sys.stderr, flush=True)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, also from inside a running loop (async fixtures): then in a worker thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def run_dir() -> Path:
    return Path(os.environ.get("UCJ_RUN_DIR") or REPO / ".run").resolve()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def require_free_port(port: int, what: str) -> None:
    # A busy port would make the readiness checks talk to somebody else's server.
    if port_open(port):
        raise RuntimeError(f"{what}: port {port} on 127.0.0.1 is already in use "
                           "(another stack? try ./ucj status / ./ucj down)")
