"""PostgreSQL for the local stack and the tests: a private cluster from the Debian binaries
(initdb once, then `postgres` on 127.0.0.1), and the databases on it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import stat
import subprocess
import time
import urllib.parse
from pathlib import Path

from deploy.local.process import ManagedProcess, require_free_port, run_sync, spawn

PG_USER = "postgres"


def pg_bindir() -> Path:
    """The newest /usr/lib/postgresql/<version>/bin with initdb (Debian layout), else PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("PostgreSQL binaries (initdb) not found: run ./ucj install")


def _as_root() -> bool:
    return os.geteuid() == 0


def _let_postgres_in(path: Path) -> None:
    """As root, the server runs as the `postgres` user, which must be able to walk down to its
    data directory: add the search bit (o+x, never read) where a parent lacks it, e.g. pytest's
    0700 /tmp/pytest-of-root."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(p, mode | stat.S_IXOTH)


def start_postgres(workdir: Path, port: int = 5432, *, logdir: Path | None = None,
                   settings: dict[str, str] | None = None, timeout: float = 60.0) -> ManagedProcess:
    """initdb (once, trust auth, user postgres, UTF8, C locale) and start a server on 127.0.0.1."""
    workdir = Path(workdir).resolve()
    logdir = Path(logdir).resolve() if logdir else workdir
    data, sock = workdir / "data", workdir / "sock"
    for d in (workdir, data, sock):
        d.mkdir(parents=True, exist_ok=True)
    bindir = pg_bindir()
    require_free_port(port, "postgres")

    user = None
    if _as_root():  # initdb and postgres refuse to run as root
        user = PG_USER
        _let_postgres_in(workdir)
        for d in (data, sock):
            shutil.chown(d, PG_USER, PG_USER)
    data.chmod(0o700)  # postgres refuses a group/world-readable data directory

    if not (data / "PG_VERSION").exists():
        argv = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                "-E", "UTF8", "--locale=C"]
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        res = subprocess.run(argv, capture_output=True, text=True, cwd=data)
        if res.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{res.stdout}{res.stderr}")

    # A Unix socket path must fit in 107 bytes; without one, clients simply use TCP.
    sock_dir = str(sock) if len(str(sock)) < 90 else ""
    conf = {
        "listen_addresses": "127.0.0.1",
        "unix_socket_directories": sock_dir,
        "max_connections": "200",
        "shared_buffers": "256MB",
        # Durability stays on: the outbox pattern relies on committed rows surviving a crash.
        "fsync": "on",
        "synchronous_commit": "on",
        "max_wal_size": "1GB",
        "TimeZone": "UTC",
        "log_line_prefix": "%m [%p] %q%u@%d ",
        **(settings or {}),
    }
    argv = [str(bindir / "postgres"), "-D", str(data), "-p", str(port)]
    for k, v in conf.items():
        argv += ["-c", f"{k}={v}"]
    # Started with Popen(user=) rather than runuser: runuser keeps a watching parent process,
    # and the pid we record must be the postmaster itself.
    proc = spawn("postgres", argv, logdir / "postgres.log", cwd=data, user=user, port=port,
                 stop_signal=signal.SIGINT)
    try:
        _wait_for_postgres(bindir, port, timeout, proc)
    except BaseException:
        proc.stop(10)
        raise
    return proc


def _wait_for_postgres(bindir: Path, port: int, timeout: float, proc: ManagedProcess) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise RuntimeError(f"postgres exited during startup; log {proc.log}:\n"
                               f"{proc.log_tail()}")
        ok = subprocess.run([str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                             str(port), "-U", "postgres", "-d", "postgres"]).returncode == 0
        if ok:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"postgres not ready after {timeout:.0f}s; log {proc.log}:\n"
                               f"{proc.log_tail()}")
        time.sleep(0.2)


def database_url(server_url: str, name: str) -> str:
    """The same server URL with another database name."""
    u = urllib.parse.urlsplit(server_url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


async def acreate_databases(server_url: str, names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """CREATE DATABASE for each missing name; returns name -> URL."""
    import asyncpg

    conn = None
    for attempt in range(20):  # a server that just said "ready" may still refuse for a moment
        try:
            conn = await asyncpg.connect(server_url, timeout=5)
            break
        except (OSError, asyncpg.CannotConnectNowError):
            if attempt == 19:
                raise
            await asyncio.sleep(0.5)
    assert conn is not None
    try:
        for name in names:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                raise ValueError(f"bad database name {name!r}")
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # a parallel creator
                    await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return {n: database_url(server_url, n) for n in names}


def create_databases(server_url: str, names: list[str] | tuple[str, ...]) -> dict[str, str]:
    return run_sync(acreate_databases(server_url, names))
