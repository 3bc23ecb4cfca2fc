"""The local UCJ Live stack without Docker: Kafka (Maven jars), PostgreSQL (Debian binaries) and
the service processes, all under one run directory. A library for the test fixtures and a CLI.

CLI (from the repo root, normally through ./ucj):
    python -m deploy.local.stack up          # infra + topics + databases + services, waits healthy
    python -m deploy.local.stack infra-up    # Kafka + PostgreSQL + topics + databases only
    python -m deploy.local.stack status      # processes, and each outbox's backlog
    python -m deploy.local.stack down [--wipe]   # --wipe also deletes the run directory
    python -m deploy.local.stack supervise   # (started by `up`) restarts services that die
    python -m deploy.local.stack jars        # fetch the Kafka jars (./ucj install)

Library (blocking functions; they are safe to call from inside a running event loop too):
    ensure_kafka_jars() -> Path
    start_kafka(workdir, port=9092, controller_port=9093, *, logdir=None, timeout=90.0)
        -> ManagedProcess
    wait_for_kafka(bootstrap, timeout=90.0, proc=None) -> None
    start_postgres(workdir, port=5432, *, logdir=None, settings=None, timeout=60.0)
        -> ManagedProcess   (settings: extra `-c name=value` server settings)
    create_topics(bootstrap, prefix="") -> list[str]          (async: acreate_topics)
    create_databases(server_url, names) -> dict[name, url]    (async: acreate_databases)
    database_url(server_url, name) -> str
    start_infra(workdir, *, kafka_port=9092, controller_port=9093, pg_port=5432, prefix="",
                logdir=None, use_env=True, reuse=None) -> Infra   (.stop() stops what it started)
    start_service(name, argv, env, logdir, *, port=None, cwd=REPO) -> ManagedProcess
    start_services(infra, run_dir, *, api_key="dev-bootstrap-key", ports=None, logdir=None,
                   timeout=60.0, reuse=None, started=None) -> dict[name, ManagedProcess]
    wait_healthy(procs, timeout=60.0) -> None
    free_port() -> int
    ManagedProcess: .pid .log .port .alive() .stop(timeout) .kill9() .log_tail()

Environment: UCJ_RUN_DIR (default <repo>/.run), UCJ_CACHE (default ~/.cache/ucj-live),
UCJ_KAFKA_PORT / UCJ_KAFKA_CONTROLLER_PORT / UCJ_PG_PORT (9092 / 9093 / 5432),
UCJ_PORT_BASE (8000: services on base+1..base+4, coverage worker base+14),
KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL (use that broker / server instead of starting one),
UCJ_BOOTSTRAP_API_KEY (default dev-bootstrap-key), UCJ_TOPIC_PREFIX (default empty),
UCJ_RELAY_STALL_SECONDS (60: `status` fails when an outbox row waits longer).

`up` also starts a supervisor (log: <run dir>/logs/supervisor.log, recorded in stack.json), which
restarts a service process that died, as docker compose's `restart: unless-stopped` does: same
command, environment and port, after a delay that doubles while it keeps dying quickly. `down`
stops the supervisor first. Processes started through the library (the test fixtures) are not
supervised.

Code layout: kafka.py (jars, broker, topics), postgres.py (cluster, databases), process.py
(ManagedProcess and shared helpers); this module re-exports them and runs the services.

Only the standard library is imported at module level (./ucj runs `jars` before the venv is
complete); aiokafka and asyncpg are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Re-exported: deploy.local.stack is the one import the fixtures and the CLI need.
from deploy.local.kafka import (  # noqa: F401
    KAFKA_VERSION,
    acreate_topics,
    create_topics,
    ensure_kafka_jars,
    kafka_home,
    start_kafka,
    wait_for_kafka,
)
from deploy.local.postgres import (  # noqa: F401
    acreate_databases,
    create_databases,
    database_url,
    pg_bindir,
    start_postgres,
)
from deploy.local.process import (  # noqa: F401
    REPO,
    ManagedProcess,
    free_port,
    log,
    require_free_port,
    run_sync,
    spawn,
)

DATABASES = ("ucj_registration", "ucj_contributions", "ucj_claims", "ucj_coverage")
DEFAULT_API_KEY = "dev-bootstrap-key"


def run_dir() -> Path:
    return Path(os.environ.get("UCJ_RUN_DIR") or REPO / ".run").resolve()


# ------------------------------------------------------------------------------------ Services

@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    port: int | None  # None: no HTTP endpoint (the relay)
    database: str
    port_env: str = "UCJ_PORT"


SERVICES = (
    ServiceSpec("registration", "services.registration.main", 8001, "ucj_registration"),
    ServiceSpec("registration-relay", "services.registration.relay", None, "ucj_registration"),
    # learns ended memberships, so a terminated worker's NIK may register again
    ServiceSpec("registration-worker", "services.registration.worker", None,
                "ucj_registration"),
    ServiceSpec("contributions", "services.contributions.main", 8002, "ucj_contributions"),
    ServiceSpec("contributions-relay", "services.contributions.relay", None,
                "ucj_contributions"),
    # learns participants from registration events; publishes what the calendar changes
    ServiceSpec("contributions-worker", "services.contributions.worker", None,
                "ucj_contributions"),
    ServiceSpec("claims", "services.claims.main", 8003, "ucj_claims"),
    ServiceSpec("claims-relay", "services.claims.relay", None, "ucj_claims"),
    # learns participants, payments and memberships from events
    ServiceSpec("claims-worker", "services.claims.worker", None, "ucj_claims"),
    # faust's own web server; its /healthz answers 200 once the tables are recovered.
    ServiceSpec("coverage-worker", "services.coverage.worker", 8014, "ucj_coverage",
                port_env="UCJ_COVERAGE_WORKER_PORT"),
    # A second worker in the same consumer group: the 12 participant partitions are split
    # between them, so counting uses both cores (a Python process uses one).
    ServiceSpec("coverage-worker-2", "services.coverage.worker", 8015, "ucj_coverage",
                port_env="UCJ_COVERAGE_WORKER_PORT"),
    ServiceSpec("coverage", "services.coverage.main", 8004, "ucj_coverage"),
)


def python_exe() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def start_service(name: str, argv: list[str], env: dict[str, str], logdir: Path, *,
                  port: int | None = None, cwd: Path = REPO) -> ManagedProcess:
    """Start one process detached; `env` is added on top of os.environ; log: logdir/<name>.log."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    if port is not None:
        require_free_port(port, name)
    proc = spawn(name, argv, Path(logdir) / f"{name}.log", env=full_env, cwd=cwd, port=port)
    proc.env = dict(env)
    return proc


def wait_healthy(procs: list[ManagedProcess], timeout: float = 60.0) -> None:
    """Until GET /healthz answers 200 on each process with a port; fail fast if one dies."""
    deadline = time.monotonic() + timeout
    pending = [p for p in procs if p.port]
    while True:
        for p in procs:
            if not p.alive():
                raise RuntimeError(f"{p.name} exited; log {p.log}:\n{p.log_tail()}")
        pending = [p for p in pending if not _healthz(p.port)]  # type: ignore[arg-type]
        if not pending:
            return
        if time.monotonic() > deadline:
            p = pending[0]
            raise TimeoutError(f"{', '.join(x.name for x in pending)} not healthy after "
                               f"{timeout:.0f}s; log {p.log}:\n{p.log_tail()}")
        time.sleep(0.3)


def _healthz(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@dataclass
class Infra:
    bootstrap: str
    server_url: str  # the PostgreSQL server (its maintenance database)
    database_urls: dict[str, str]
    prefix: str = ""
    processes: dict[str, ManagedProcess] = field(default_factory=dict)  # only what we started

    def stop(self) -> None:
        for name in ("kafka", "postgres"):
            if name in self.processes:
                self.processes[name].stop()


def start_infra(workdir: Path, *, kafka_port: int = 9092, controller_port: int = 9093,
                pg_port: int = 5432, prefix: str = "", logdir: Path | None = None,
                use_env: bool = True, reuse: dict[str, ManagedProcess] | None = None) -> Infra:
    """Kafka + PostgreSQL (or the ones named by KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when
    use_env), then every topic and the per-service databases. `reuse`: running processes."""
    workdir = Path(workdir).resolve()
    logdir = Path(logdir).resolve() if logdir else workdir / "logs"
    reuse = reuse or {}
    procs: dict[str, ManagedProcess] = {}
    env_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") if use_env else None
    env_db = os.environ.get("DATABASE_URL") if use_env else None
    try:
        if env_kafka:
            bootstrap = env_kafka
            wait_for_kafka(bootstrap)
        elif "kafka" in reuse:
            procs["kafka"] = reuse["kafka"]
            bootstrap = f"127.0.0.1:{reuse['kafka'].port}"
        else:
            log(f"starting kafka on 127.0.0.1:{kafka_port}")
            procs["kafka"] = start_kafka(workdir / "kafka", kafka_port, controller_port,
                                         logdir=logdir)
            bootstrap = f"127.0.0.1:{kafka_port}"

        if env_db:
            server_url = env_db
        else:
            if "postgres" in reuse:
                procs["postgres"] = reuse["postgres"]
                pg_port = reuse["postgres"].port or pg_port
            else:
                log(f"starting postgres on 127.0.0.1:{pg_port}")
                procs["postgres"] = start_postgres(workdir / "postgres", pg_port, logdir=logdir)
            server_url = f"postgresql://postgres@127.0.0.1:{pg_port}/postgres"

        create_topics(bootstrap, prefix)
        dbs = create_databases(server_url, DATABASES)
    except BaseException:
        for name, p in procs.items():
            if name not in reuse:
                p.stop(10)
        raise
    return Infra(bootstrap, server_url, dbs, prefix, procs)


def service_env(spec: ServiceSpec, infra: Infra, *, api_key: str, port: int | None,
                state_dir: Path) -> dict[str, str]:
    env = {"DATABASE_URL": infra.database_urls[spec.database],
           "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap, "UCJ_BOOTSTRAP_API_KEY": api_key,
           "UCJ_TOPIC_PREFIX": infra.prefix,
           # each worker its own state directory (RocksDB allows one process per store)
           "UCJ_COVERAGE_STATE_DIR": str(state_dir / spec.name)}
    if port is not None:
        env[spec.port_env] = str(port)
    return env


def start_services(infra: Infra, run_dir: Path, *, api_key: str = DEFAULT_API_KEY,
                   ports: dict[str, int] | None = None, logdir: Path | None = None,
                   timeout: float = 60.0, reuse: dict[str, ManagedProcess] | None = None,
                   started: dict[str, ManagedProcess] | None = None,
                   env: dict[str, str] | None = None) -> dict[str, ManagedProcess]:
    """Start the SERVICES (ports: name -> port overrides) and wait until the APIs are healthy.
    The others start once the registration API is healthy, so that its migrations are not
    raced by the relay, which works on the same database.
    `started` (optional) is filled as processes start, so a caller can stop them on failure.
    `env` (optional) is added to every service's environment (tests: a clock file, say)."""
    run_dir = Path(run_dir).resolve()
    logdir = Path(logdir).resolve() if logdir else run_dir / "logs"
    state_dir = run_dir / "coverage-state"
    state_dir.mkdir(parents=True, exist_ok=True)
    reuse = reuse or {}
    procs = started if started is not None else {}
    try:
        for phase in (
            [s for s in SERVICES if s.name == "registration"],
            [s for s in SERVICES if s.name != "registration"],
        ):
            for spec in phase:
                if spec.name in reuse:
                    procs[spec.name] = reuse[spec.name]
                    continue
                port = (ports or {}).get(spec.name, spec.port) if spec.port else None
                env_ = {**service_env(spec, infra, api_key=api_key, port=port,
                                      state_dir=state_dir), **(env or {})}
                procs[spec.name] = start_service(spec.name, [python_exe(), "-m", spec.module],
                                                 env_, logdir, port=port)
            wait_healthy(list(procs.values()), timeout)
        time.sleep(1.0)  # the relay has no health endpoint: at least it must not die at once
        wait_healthy(list(procs.values()), timeout)
    except BaseException:
        if procs:
            log(f"startup failed; left running for inspection: {', '.join(procs)}")
        raise
    return procs


# ------------------------------------------------------------------------------ Outbox backlog

@dataclass(frozen=True)
class Backlog:
    """A service database's outbox: rows waiting and the age of the oldest (seconds), or why
    it could not be read."""

    database: str
    rows: int | None = None
    oldest_age: float | None = None
    error: str | None = None

    def stalled(self, threshold: float) -> bool:
        return self.error is not None or (self.oldest_age or 0.0) > threshold


async def aoutbox_backlogs(databases: dict[str, str], seconds: float = 5.0) -> list[Backlog]:
    """The backlog of each database (name -> URL) that has an outbox table, each read within
    `seconds` (a database that does not answer in time is reported as such)."""
    try:
        import asyncpg
    except ImportError:  # ./ucj status without the venv
        return [Backlog(name, error="asyncpg is not installed") for name in databases]

    async def one(name: str, url: str) -> Backlog | None:
        try:
            async with asyncio.timeout(seconds):
                conn = await asyncpg.connect(url, timeout=seconds)
                try:
                    if not await conn.fetchval("SELECT to_regclass('outbox') IS NOT NULL"):
                        return None
                    row = await conn.fetchrow(
                        "SELECT count(*) AS rows, extract(epoch FROM now() - min(created_at))"
                        "::float8 AS age FROM outbox")
                finally:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1)
        except Exception as exc:
            return Backlog(name, error=f"{type(exc).__name__} {exc}".strip())
        return Backlog(name, row["rows"], row["age"])

    found = await asyncio.gather(*(one(n, u) for n, u in databases.items()))
    return [b for b in found if b is not None]


def outbox_backlogs(databases: dict[str, str], seconds: float = 5.0) -> list[Backlog]:
    return run_sync(aoutbox_backlogs(databases, seconds))


def relay_stall_seconds() -> float:
    return float(os.environ.get("UCJ_RELAY_STALL_SECONDS") or 60)


# ---------------------------------------------------------------------------------- Supervisor

SUPERVISED = frozenset(s.name for s in SERVICES)


def restart_delay(ran_for: float, quick_deaths: int, *, base: float = 1.0, cap: float = 60.0,
                  healthy_after: float = 10.0) -> tuple[float, int]:
    """When to restart a process that died after running `ran_for` seconds, having died
    `quick_deaths` times in a row before that, each soon after its start: (delay in seconds,
    quick deaths now). One that ran `healthy_after` seconds or more starts again at once; a
    quick death waits `base`, doubled for each quick death before it, at most `cap`."""
    if ran_for >= healthy_after:
        return 0.0, 0
    return min(cap, base * 2 ** quick_deaths), quick_deaths + 1


@dataclass
class _Watched:
    pid: int
    since: float  # monotonic: when it was started (or first seen)
    quick_deaths: int = 0
    restart_at: float | None = None  # monotonic: it died, start it again then


def _say(msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}", flush=True)


def supervise(rd: Path, interval: float = 1.0) -> int:
    """Every `interval` seconds, start again any service process of stack.json that died (same
    argv, environment and port), with restart_delay's backoff. Exits on SIGTERM/SIGINT, or
    once stack.json no longer names this process as the supervisor."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    me = os.getpid()
    watched: dict[str, _Watched] = {}
    _say(f"supervisor {me} watching {_state_path(rd)}")
    while not stopping:
        _reap_children()
        with _state_lock(rd):
            state = load_state(rd)
        if state.get("supervisor", {}).get("pid") != me:
            _say("stack.json names another supervisor, or none: exiting")
            return 0
        now = time.monotonic()
        for name, d in state.get("processes", {}).items():
            if name not in SUPERVISED or stopping:
                continue
            p = ManagedProcess.from_dict(d)
            w = watched.get(name)
            if w is None or w.pid != p.pid:
                w = watched[name] = _Watched(p.pid, now)
            if w.restart_at is None:
                if p.alive():
                    continue
                ran_for = p.seconds_since_start()
                ran_for = now - w.since if ran_for is None else ran_for
                delay, w.quick_deaths = restart_delay(ran_for, w.quick_deaths)
                w.restart_at = now + delay
                _say(f"{name} (pid {p.pid}) died after running {ran_for:.0f}s; "
                     f"restarting it in {delay:.0f}s")
            if now >= w.restart_at:
                new = _restart(rd, me, p)
                if new is not None:
                    w.pid, w.since, w.restart_at = new.pid, time.monotonic(), None
                    _say(f"{name} restarted: pid {new.pid}")
                else:
                    delay, w.quick_deaths = restart_delay(0.0, w.quick_deaths)
                    w.restart_at = time.monotonic() + delay
        time.sleep(interval)
    _say("supervisor stopped")
    return 0


def _restart(rd: Path, me: int, dead: ManagedProcess) -> ManagedProcess | None:
    """Start `dead` again and record it, unless stack.json changed meanwhile (down, up)."""
    with _state_lock(rd):
        state = load_state(rd)
        d = state.get("processes", {}).get(dead.name)
        if (state.get("supervisor", {}).get("pid") != me or d is None
                or d["pid"] != dead.pid):
            return None
        if dead.env is None or not dead.argv:  # recorded by an older `up`
            _say(f"{dead.name}: no command or environment recorded; ./ucj up starts it")
            return None
        try:
            new = start_service(dead.name, dead.argv, dead.env, dead.log.parent,
                                port=dead.port)
        except (OSError, RuntimeError) as exc:
            _say(f"{dead.name} did not start: {exc}")
            return None
        state["processes"][dead.name] = new.to_dict()
        save_state(rd, state)
    return new


def _reap_children() -> None:
    """Collect the exit status of restarted processes that died (else they stay zombies)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def start_supervisor(rd: Path, state: dict[str, Any]) -> ManagedProcess:
    """Spawn `supervise` detached and record it in `state` (saved; call under _state_lock)."""
    sup = spawn("supervisor", [python_exe(), "-m", "deploy.local.stack", "supervise"],
                rd / "logs" / "supervisor.log", env={**os.environ, "PYTHONUNBUFFERED": "1",
                                                     "UCJ_RUN_DIR": str(rd)}, cwd=REPO)
    state["supervisor"] = sup.to_dict()
    save_state(rd, state)
    return sup


def stop_supervisor(rd: Path) -> None:
    """Stop the recorded supervisor (and wait for it), so that it restarts nothing more."""
    with _state_lock(rd):
        state = load_state(rd)
        d = state.pop("supervisor", None)
        if d is not None:
            save_state(rd, state)
    if d is not None:
        sup = ManagedProcess.from_dict(d)
        if sup.alive():
            log(f"stopping supervisor (pid {sup.pid})")
            sup.stop(15)


# ---------------------------------------------------------------------------------------- CLI

def _state_path(rd: Path) -> Path:
    return rd / "stack.json"


@contextlib.contextmanager
def _state_lock(rd: Path) -> Iterator[None]:
    """One writer of stack.json at a time (up, down, the supervisor)."""
    rd.mkdir(parents=True, exist_ok=True)
    with open(rd / "stack.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load_state(rd: Path) -> dict[str, Any]:
    try:
        return json.loads(_state_path(rd).read_text())
    except FileNotFoundError:
        return {}


def save_state(rd: Path, state: dict[str, Any]) -> None:
    rd.mkdir(parents=True, exist_ok=True)
    tmp = _state_path(rd).with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(_state_path(rd))


def _running(state: dict[str, Any]) -> dict[str, ManagedProcess]:
    procs = (ManagedProcess.from_dict(d) for d in state.get("processes", {}).values())
    return {p.name: p for p in procs if p.alive()}


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def cmd_up(services: bool = True) -> int:
    rd = run_dir()
    logdir = rd / "logs"
    stop_supervisor(rd)  # it must not restart anything while `up` decides what runs
    state = load_state(rd)
    running = _running(state)
    api_key = os.environ.get("UCJ_BOOTSTRAP_API_KEY") or DEFAULT_API_KEY
    prefix = os.environ.get("UCJ_TOPIC_PREFIX", "")
    infra = start_infra(rd, kafka_port=int(os.environ.get("UCJ_KAFKA_PORT", 9092)),
                        controller_port=int(os.environ.get("UCJ_KAFKA_CONTROLLER_PORT", 9093)),
                        pg_port=int(os.environ.get("UCJ_PG_PORT", 5432)), prefix=prefix,
                        logdir=logdir, reuse=running)
    state = {"run_dir": str(rd), "kafka_bootstrap": infra.bootstrap,
             "database_url": infra.server_url, "databases": infra.database_urls,
             "topic_prefix": prefix, "api_key": api_key,
             "processes": {n: p.to_dict() for n, p in infra.processes.items()}}
    with _state_lock(rd):
        save_state(rd, state)
    print(f"KAFKA_BOOTSTRAP_SERVERS={infra.bootstrap}")
    print(f"DATABASE_URL={infra.server_url}")
    if not services:
        return 0
    procs: dict[str, ManagedProcess] = {}
    try:
        # UCJ_PORT_BASE moves every service port (8001 -> base+1 ...): a second stack beside one.
        base = int(os.environ.get("UCJ_PORT_BASE", 8000))
        ports = {s.name: s.port - 8000 + base for s in SERVICES if s.port}
        start_services(infra, rd, api_key=api_key, ports=ports, logdir=logdir, reuse=running,
                       started=procs)
    finally:  # recorded even on failure, so that `down` stops what did start
        state["processes"].update({n: p.to_dict() for n, p in procs.items()})
        state["services"] = {n: f"http://127.0.0.1:{p.port}" for n, p in procs.items() if p.port}
        with _state_lock(rd):
            save_state(rd, state)
    with _state_lock(rd):
        sup = start_supervisor(rd, state)
    url = {n: f"http://127.0.0.1:{p.port}" for n, p in procs.items() if p.port}
    print(f"UCJ Live ready: registration {url['registration']} contributions "
          f"{url['contributions']} claims {url['claims']} coverage {url['coverage']} "
          f"(dashboard {url['coverage']}/) api key: {api_key} logs: {_rel(logdir)} "
          f"(supervisor pid {sup.pid} restarts what dies)")
    return 0


def cmd_down(wipe: bool = False) -> int:
    rd = run_dir()
    stop_supervisor(rd)  # first: it would restart what is being stopped
    state = load_state(rd)
    procs = [ManagedProcess.from_dict(d) for d in state.get("processes", {}).values()]
    # Services first (they flush to Kafka / PostgreSQL), then Kafka, then PostgreSQL.
    order = {"kafka": 1, "postgres": 2}
    for p in sorted(procs, key=lambda p: order.get(p.name, 0)):
        if p.alive():
            log(f"stopping {p.name} (pid {p.pid})")
            p.stop()
    if state:
        with _state_lock(rd):
            state = load_state(rd)
            state["processes"] = {}
            save_state(rd, state)
    if wipe and rd.exists():
        shutil.rmtree(rd)
        log(f"removed {rd}")
    print("UCJ Live stopped")
    return 0


def cmd_status() -> int:
    rd = run_dir()
    state = load_state(rd)
    if not state.get("processes"):
        print(f"nothing running (state {_state_path(rd)})")
        return 1
    all_ok = True
    for d in state["processes"].values():
        p = ManagedProcess.from_dict(d)
        alive = p.alive()
        health = ""
        if alive and p.port and p.name not in ("kafka", "postgres"):
            health = " healthy" if _healthz(p.port) else " NOT healthy"
        all_ok &= alive and "NOT" not in health
        where = f" 127.0.0.1:{p.port}" if p.port else ""
        print(f"{p.name:20} {'up' if alive else 'DOWN':5} pid {p.pid:<8}{where}{health}"
              f"  log {_rel(p.log)}")
    if "supervisor" in state:
        sup = ManagedProcess.from_dict(state["supervisor"])
        alive = sup.alive()
        all_ok &= alive
        print(f"{'supervisor':20} {'up' if alive else 'DOWN':5} pid {sup.pid:<8}"
              f"  log {_rel(sup.log)}")
    threshold = relay_stall_seconds()
    for b in outbox_backlogs(state.get("databases") or {}):
        if b.error is not None:
            line = f"NOT readable ({b.error})"
        else:
            line = f"{b.rows} rows waiting"
            if b.oldest_age is not None:
                line += f", the oldest {b.oldest_age:.0f}s old"
            if b.stalled(threshold):
                line += f"  STALLED (older than {threshold:.0f}s)"
        all_ok &= not b.stalled(threshold)
        print(f"{'outbox ' + b.database:28} {line}")
    print(f"kafka {state.get('kafka_bootstrap')}  postgres {state.get('database_url')}  "
          f"api key {state.get('api_key')}")
    return 0 if all_ok else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deploy.local.stack", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("up", help="start everything and wait until healthy")
    sub.add_parser("infra-up", help="Kafka + PostgreSQL + topics + databases only")
    down = sub.add_parser("down", help="stop what `up` started")
    down.add_argument("--wipe", action="store_true", help="also delete the run directory")
    sub.add_parser("status", help="processes, supervisor, and each outbox's backlog")
    sub.add_parser("supervise", help="(started by up) restart service processes that die")
    sub.add_parser("jars", help="fetch the Kafka jars into the cache")
    sub.add_parser("create-topics", help="create every topic on KAFKA_BOOTSTRAP_SERVERS "
                   "(with UCJ_TOPIC_PREFIX); used by docker-compose")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "up":
            return cmd_up()
        if args.cmd == "infra-up":
            return cmd_up(services=False)
        if args.cmd == "down":
            return cmd_down(args.wipe)
        if args.cmd == "status":
            return cmd_status()
        if args.cmd == "supervise":
            return supervise(run_dir())
        if args.cmd == "create-topics":
            bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
            wait_for_kafka(bootstrap)
            create_topics(bootstrap, os.environ.get("UCJ_TOPIC_PREFIX", ""))
            return 0
        ensure_kafka_jars()
        return 0
    except (RuntimeError, TimeoutError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
