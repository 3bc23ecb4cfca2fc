"""The local UCJ Live stack without Docker: Kafka (Maven jars), PostgreSQL (Debian binaries) and
the service processes, all under one run directory. A library for the test fixtures and a CLI.

CLI (from the repo root, normally through ./ucj):
    python -m deploy.local.stack up          # infra + topics + databases + services, waits healthy
    python -m deploy.local.stack infra-up    # Kafka + PostgreSQL + topics + databases only
    python -m deploy.local.stack status
    python -m deploy.local.stack down [--wipe]   # --wipe also deletes the run directory
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
UCJ_BOOTSTRAP_API_KEY (default dev-bootstrap-key), UCJ_TOPIC_PREFIX (default empty).

Code layout: kafka.py (jars, broker, topics), postgres.py (cluster, databases), process.py
(ManagedProcess and shared helpers); this module re-exports them and runs the services.

Only the standard library is imported at module level (./ucj runs `jars` before the venv is
complete); aiokafka and asyncpg are imported inside the functions that need them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import urllib.request
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
    ServiceSpec("contributions", "services.contributions.main", 8002, "ucj_contributions"),
    ServiceSpec("contributions-relay", "services.contributions.relay", None,
                "ucj_contributions"),
    # learns participants from registration events; publishes what the calendar changes
    ServiceSpec("contributions-worker", "services.contributions.worker", None,
                "ucj_contributions"),
    ServiceSpec("claims", "services.claims.main", 8003, "ucj_claims"),
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
    return spawn(name, argv, Path(logdir) / f"{name}.log", env=full_env, cwd=cwd, port=port)


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


# ---------------------------------------------------------------------------------------- CLI

def _state_path(rd: Path) -> Path:
    return rd / "stack.json"


def load_state(rd: Path) -> dict[str, Any]:
    try:
        return json.loads(_state_path(rd).read_text())
    except FileNotFoundError:
        return {}


def save_state(rd: Path, state: dict[str, Any]) -> None:
    rd.mkdir(parents=True, exist_ok=True)
    tmp = _state_path(rd).with_suffix(".tmp")
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
        save_state(rd, state)
    url = {n: f"http://127.0.0.1:{p.port}" for n, p in procs.items() if p.port}
    print(f"UCJ Live ready: registration {url['registration']} contributions "
          f"{url['contributions']} claims {url['claims']} coverage {url['coverage']} "
          f"(dashboard {url['coverage']}/) api key: {api_key} logs: {_rel(logdir)}")
    return 0


def cmd_down(wipe: bool = False) -> int:
    rd = run_dir()
    state = load_state(rd)
    procs = [ManagedProcess.from_dict(d) for d in state.get("processes", {}).values()]
    # Services first (they flush to Kafka / PostgreSQL), then Kafka, then PostgreSQL.
    order = {"kafka": 1, "postgres": 2}
    for p in sorted(procs, key=lambda p: order.get(p.name, 0)):
        if p.alive():
            log(f"stopping {p.name} (pid {p.pid})")
            p.stop()
    if state:
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
    sub.add_parser("status")
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
