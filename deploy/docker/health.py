"""A container health check for the ucj-app processes, standard library only.

    python -m deploy.docker.health [URL]

With a URL: healthy when it answers 200 (the services' and coverage workers' /healthz).
Without: healthy when the container's Python process is running (not a zombie) and the broker
(KAFKA_BOOTSTRAP_SERVERS) and the database (DATABASE_URL) accept TCP connections, the check for
the relays and workers, which serve no HTTP.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.parse
import urllib.request


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=4) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _process_running() -> bool:
    me = os.getpid()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if b"-m" in argv and b"deploy.docker.health" not in argv and state != "Z" \
                and os.path.basename(argv[0]).startswith(b"python"):
            return True
    return False


def _reachable(host: str | None, port: int | None) -> bool:
    if not host or not port:
        return True
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False


def healthy(argv: list[str]) -> bool:
    if argv:
        return _answers(argv[0])
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").split(",")[0]
    k_host, _, k_port = kafka.rpartition(":")
    db = urllib.parse.urlsplit(os.environ.get("DATABASE_URL", ""))
    return (_process_running()
            and _reachable(k_host or None, int(k_port) if k_port.isdigit() else None)
            and _reachable(db.hostname, db.port or (5432 if db.hostname else None)))


if __name__ == "__main__":
    sys.exit(0 if healthy(sys.argv[1:]) else 1)
