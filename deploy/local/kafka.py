"""Kafka for the local stack and the tests: a single-node KRaft broker run from the Maven Central
jars (deploy/kafka/pom.xml, cached under $UCJ_CACHE), and the project's topics."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from deploy.local.process import (
    REPO,
    ManagedProcess,
    log,
    port_open,
    require_free_port,
    run_sync,
    spawn,
    tail,
)

KAFKA_CONF = REPO / "deploy" / "kafka"
POM = KAFKA_CONF / "pom.xml"
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)<", POM.read_text()).group(1)  # type: ignore[union-attr]


def kafka_home() -> Path:
    cache = Path(os.environ.get("UCJ_CACHE") or Path.home() / ".cache" / "ucj-live")
    return cache / f"kafka-{KAFKA_VERSION}"


def ensure_kafka_jars() -> Path:
    """The broker's classpath directory, fetched with Maven once (re-fetched if pom.xml changes)."""
    home = kafka_home()
    libs, stamp = home / "libs", home / "libs.stamp"
    want = hashlib.sha256(POM.read_bytes()).hexdigest()

    def complete() -> bool:
        return libs.is_dir() and stamp.is_file() and stamp.read_text().strip() == want

    if complete():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test sessions fetch only once
        if complete():
            return libs
        if not shutil.which("mvn"):
            raise RuntimeError("Maven (mvn) is missing: run ./ucj install")
        tmp = home / "libs.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"fetching Kafka {KAFKA_VERSION} jars with Maven into {libs}")
        res = subprocess.run(["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
                              f"-DoutputDirectory={tmp}"], capture_output=True, text=True)
        if res.returncode != 0 or not any(tmp.glob("kafka_2.13-*.jar")):
            raise RuntimeError(f"mvn failed ({res.returncode}):\n{res.stdout[-3000:]}"
                               f"{res.stderr[-3000:]}")
        shutil.rmtree(libs, ignore_errors=True)
        tmp.rename(libs)
        stamp.write_text(want + "\n")  # written last: its presence means "complete"
    return libs


def _java_argv(libs: Path, logdir: Path, main: str, *args: str, heap: str = "1g") -> list[str]:
    java = shutil.which("java")
    if not java:
        raise RuntimeError("java (17+) is missing: run ./ucj install")
    return [java, f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={KAFKA_CONF / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={logdir}", "-cp", f"{libs}/*", main, *args]


def start_kafka(workdir: Path, port: int = 9092, controller_port: int = 9093, *,
                logdir: Path | None = None, timeout: float = 90.0) -> ManagedProcess:
    """Format (once) and start a single-node KRaft broker with its data in workdir/data."""
    workdir = Path(workdir).resolve()
    logdir = Path(logdir).resolve() if logdir else workdir
    workdir.mkdir(parents=True, exist_ok=True)
    libs = ensure_kafka_jars()
    require_free_port(port, "kafka")
    require_free_port(controller_port, "kafka controller")

    data = workdir / "data"
    props = workdir / "server.properties"
    template = (KAFKA_CONF / "server.properties").read_text()
    props.write_text(template.replace("@PORT@", str(port))
                     .replace("@CONTROLLER_PORT@", str(controller_port))
                     .replace("@LOG_DIRS@", str(data)))

    if not (data / "meta.properties").exists():
        cid_file = workdir / "cluster.id"
        if not cid_file.exists():
            cid = subprocess.run(_java_argv(libs, logdir, "kafka.tools.StorageTool", "random-uuid",
                                            heap="128m"),
                                 check=True, capture_output=True, text=True).stdout.split()[-1]
            cid_file.write_text(cid + "\n")
        fmt = subprocess.run(
            _java_argv(libs, logdir, "kafka.tools.StorageTool", "format", "-t",
                       cid_file.read_text().strip(), "-c", str(props), "--ignore-formatted",
                       heap="128m"), capture_output=True, text=True)
        if fmt.returncode != 0:
            raise RuntimeError(f"kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")

    proc = spawn("kafka", _java_argv(libs, logdir, "kafka.Kafka", str(props)),
                 logdir / "kafka.log", cwd=workdir, port=port)
    try:
        wait_for_kafka(f"127.0.0.1:{port}", timeout, proc)
    except BaseException as e:
        proc.stop(10)
        if not isinstance(e, Exception):  # Ctrl-C
            raise
        # The console only gets warnings; the full story is in the rolling server log.
        server_log = logdir / "kafka-server.log"
        raise RuntimeError(f"{e}\n--- {server_log}:\n{tail(server_log, 30)}") from e
    return proc


async def _kafka_has_broker(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        return bool((await admin.describe_cluster())["brokers"])
    except Exception:
        return False
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


def wait_for_kafka(bootstrap: str, timeout: float = 90.0, proc: ManagedProcess | None = None):
    """Until a metadata request lists a registered broker (topic creation needs one)."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and not proc.alive():
            raise RuntimeError(f"kafka exited during startup; log {proc.log}:\n{proc.log_tail()}")
        if port_open(int(port), host) and run_sync(_kafka_has_broker(bootstrap)):
            return
        if time.monotonic() > deadline:
            logs = f"; log {proc.log}:\n{proc.log_tail()}" if proc else ""
            raise TimeoutError(f"kafka at {bootstrap} not ready after {timeout:.0f}s{logs}")
        time.sleep(0.5)


async def acreate_topics(bootstrap: str, prefix: str = "", wait_s: float = 60.0,
                         specs: tuple | None = None) -> list[str]:
    """Create every topic of shared.topics.ALL_TOPICS (or those `specs` name) (RF 1) and wait
    until all have leaders.

    Existing topics are kept, but a partition count different from the spec is an error:
    the coverage worker relies on co-partitioned source topics.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from shared.topics import ALL_TOPICS, topic_config, topic_name

    want = {topic_name(s, prefix): s for s in (specs or ALL_TOPICS)}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        resp = await admin.create_topics([
            NewTopic(name, s.partitions, 1,
                     topic_configs=topic_config(s))
            for name, s in want.items()])
        for name, code, *msg in resp.topic_errors:
            if code not in (0, 36):  # 36 = TOPIC_ALREADY_EXISTS
                raise RuntimeError(f"creating topic {name} failed: error {code} {msg}")
        deadline = time.monotonic() + wait_s
        while True:
            meta = {t["topic"]: t for t in await admin.describe_topics(list(want))}
            ready = [n for n, t in meta.items()
                     if t["error_code"] == 0 and t["partitions"]
                     and all(p["leader"] >= 0 for p in t["partitions"])]
            for n in ready:
                if len(meta[n]["partitions"]) != want[n].partitions:
                    raise RuntimeError(
                        f"topic {n} has {len(meta[n]['partitions'])} partitions, expected "
                        f"{want[n].partitions}: delete it (or ./ucj down --wipe) and retry")
            if len(ready) == len(want):
                return list(want)
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics without leaders: {sorted(set(want) - set(ready))}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


def create_topics(bootstrap: str, prefix: str = "", specs: tuple | None = None) -> list[str]:
    return run_sync(acreate_topics(bootstrap, prefix, specs=specs))
