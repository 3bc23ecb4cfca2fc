"""The fault matrix: named faults, each under load, each followed by a reconciliation of the
live counters with the source databases (services/coverage/reconcile.py), which must find no
drift. Prints a table: fault, events sent, counted, drift, time to converge.

    python -m bench.faults [--long] [--only NAME,NAME] [--workdir DIR]

The run owns its stack: a private Kafka broker and PostgreSQL server (the project's local stack
on free ports, since faults stop and start them) and every service process. Faults run one
after the other on the same stack, so later faults meet whatever earlier ones left (a broker
killed, then PostgreSQL restarted: the relays' worst case). The short matrix (the default, and
what tests/faults runs in CI) uses a few seconds of load per fault; --long uses more load and
the full 30 s broker pause.

Load: bulk registrations of synthetic BPU workers in the fault's own regency, and city-budget
bulk payments for the workers registered before, so both source topics carry events. A request
refused by an outage is simply retried (registration with its Idempotency-Key, payments by
payment_ref); what counts is what the source databases hold at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from deploy.local import stack
from deploy.local.demo_who_pays import not_learnt_yet
from deploy.local.process import ManagedProcess
from services.coverage.reconcile import reconcile_until
from shared.events import (
    ContributionPaid,
    EmployerRegistered,
    MembershipStatusChanged,
    ParticipantRegistered,
    envelope_bytes,
)
from shared.regions import directory
from shared.topics import DEAD_LETTER, MEMBERSHIPS, ORGANISATIONS, PARTICIPANTS, topic_name

API_KEY = "faults-bootstrap-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
WORKERS = ("coverage-worker", "coverage-worker-2")


@dataclass(frozen=True)
class Profile:
    load_seconds: float
    chunk: int  # registrations per bulk request
    broker_pause: float
    converge_seconds: float


SHORT = Profile(load_seconds=4.0, chunk=100, broker_pause=12.0, converge_seconds=90.0)
LONG = Profile(load_seconds=15.0, chunk=500, broker_pause=30.0, converge_seconds=180.0)


@dataclass
class FaultStack:
    """Kafka, PostgreSQL and every service, owned by this run, with their ports fixed so that
    whatever is restarted comes back where it was."""

    workdir: Path
    infra: stack.Infra
    kafka_ports: tuple[int, int]
    pg_port: int
    ports: dict[str, int]
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    extra: dict[str, ManagedProcess] = field(default_factory=dict)

    @property
    def logdir(self) -> Path:
        return self.workdir / "logs"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def db(self, name: str) -> str:
        return self.infra.database_urls[name]

    def start_services(self, timeout: float = 90.0) -> None:
        """Start every service not running (a relay that exited on its own included)."""
        for name in [n for n, p in self.processes.items() if not p.alive()]:
            del self.processes[name]
        stack.start_services(self.infra, self.workdir, api_key=API_KEY, ports=self.ports,
                             logdir=self.logdir, reuse=dict(self.processes),
                             started=self.processes, timeout=timeout)

    def kill9(self, name: str) -> None:
        self.processes.pop(name).kill9()

    def restart(self, *names: str) -> None:
        for name in names:
            process = self.processes.pop(name, None)
            if process is not None and process.alive():
                process.kill9()
        self.start_services()

    def kill_broker(self) -> None:
        self.infra.processes["kafka"].kill9()

    def start_broker(self) -> None:
        self.infra.processes["kafka"] = stack.start_kafka(
            self.workdir / "kafka", *self.kafka_ports, logdir=self.logdir)

    def restart_postgres(self) -> None:
        self.infra.processes["postgres"].stop(30)
        self.infra.processes["postgres"] = stack.start_postgres(
            self.workdir / "postgres", self.pg_port, logdir=self.logdir)

    def signal_broker(self, sig: int) -> None:
        os.kill(self.infra.processes["kafka"].pid, sig)

    def stop(self) -> None:
        for process in [*self.extra.values(), *self.processes.values()]:
            with contextlib.suppress(Exception):
                process.stop(10)
        with contextlib.suppress(Exception):
            self.signal_broker(signal.SIGCONT)
        self.infra.stop()


def start_fault_stack(workdir: Path) -> FaultStack:
    workdir = workdir.resolve()
    kafka_ports = (stack.free_port(), stack.free_port())
    pg_port = stack.free_port()
    infra = stack.start_infra(workdir, kafka_port=kafka_ports[0],
                              controller_port=kafka_ports[1], pg_port=pg_port, use_env=False,
                              prefix="faults.", logdir=workdir / "logs")
    ports = {spec.name: stack.free_port() for spec in stack.SERVICES}
    running = FaultStack(workdir, infra, kafka_ports, pg_port, ports)
    try:
        running.start_services()
        wait_for_workers(running)
    except BaseException:
        running.stop()
        raise
    return running


def wait_for_workers(running: FaultStack, timeout: float = 90.0) -> None:
    """Until the coverage workers alive, between them, own all 12 partitions."""
    deadline = time.monotonic() + timeout
    owned: set[int] = set()
    while time.monotonic() < deadline:
        owned = set()
        for name in [*WORKERS, *running.extra]:
            if name not in running.processes and name not in running.extra:
                continue
            port = running.ports.get(name) or running.extra[name].port
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                owned |= set(response.json()["partitions"])
        if owned == set(range(12)):
            return
        time.sleep(0.3)
    raise TimeoutError(f"coverage workers own partitions {sorted(owned)} only")


# --- load ---------------------------------------------------------------------------------------


_niks: set[str] = set()


def synthetic_worker(village: str, rng: random.Random) -> dict[str, Any]:
    while True:
        sex = rng.choice("MF")
        born = date(1970, 1, 1) + timedelta(days=rng.randrange(35 * 365))
        day = born.day + (40 if sex == "F" else 0)
        district = village.rsplit(".", 1)[0].replace(".", "")
        nik = f"{district}{day:02d}{born:%m%y}{rng.randrange(1, 10_000):04d}"
        if nik not in _niks:
            _niks.add(nik)
            break
    return {"nik": nik, "full_name": "Pekerja Sintetis", "birth_date": born.isoformat(),
            "sex": sex, "region_code": village, "segment": "BPU", "employer_id": None,
            "occupation": "pedagang", "monthly_income": 1_000_000, "programs": ["JKK", "JKM"],
            **channel_of(village, rng)}


AGENTS = [f"PERISAI-{n:02d}" for n in range(6)]


def channel_of(village: str, rng: random.Random) -> dict[str, Any]:
    """Every channel of issue 11, so the faults move the channel and agent counters too."""
    channel = rng.choice(["partner_api", "agent", "agent", "village_office", "pemda"])
    if channel == "agent":
        return {"channel": channel, "agent_id": rng.choice(AGENTS)}
    if channel == "village_office":
        return {"channel": channel, "office_village": village}
    return {"channel": channel}


@dataclass
class Load:
    registered: int = 0
    paid: int = 0
    refused_requests: int = 0
    employer: str | None = None  # the regency's OPD, whose wage earners are registered
    employer_workers: int = 0
    programme: str | None = None  # the city-budget programme, and the workers it enrolled
    enrolled: int = 0

    @property
    def events(self) -> int:
        return self.registered + self.paid


async def _post(client: httpx.AsyncClient, url: str, body: dict, headers: dict, load: Load,
                until: float) -> httpx.Response | None:
    """Post until answered (or the load's time is well over): outages (5xx, no answer) are
    retried; a refusal (4xx) is not, and gives None."""
    while True:
        try:
            response = await client.post(url, json=body, headers=headers)
            if response.status_code < 300:
                return response
            load.refused_requests += 1
            if response.status_code < 500:
                return None
        except httpx.HTTPError:
            load.refused_requests += 1
        if time.monotonic() > until + 60:
            return None
        await asyncio.sleep(0.5)


async def run_load(running: FaultStack, regency: str, seconds: float, chunk: int,
                   seed: int) -> Load:
    """Bulk registrations through every channel (a fifth wage earners of one of the regency's
    OPDs), and each round a payment for half of the workers of the round before: half of those
    by a city-budget programme that enrols them first, the rest by an employer or an agent. So
    every counter of issue 11 moves under the fault, not only the region's."""
    rng = random.Random(seed)
    districts = directory().children(regency)
    villages = [v.code for d in districts[:3] for v in directory().children(d.code)]
    load = Load()
    unpaid: list[tuple[str, str]] = []  # (participant id, segment)
    late: list[str] = []  # to be enrolled once contributions has learnt them
    until = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=30) as client:
        employer, programme = await _who_pays(client, running, regency, until, load)
        load.employer, load.programme = employer, programme
        while time.monotonic() < until:
            rows = [synthetic_worker(rng.choice(villages), rng) for _ in range(chunk)]
            if employer:
                for row in rows[::5]:
                    row.update(segment="PU", employer_id=employer, channel="employer",
                               agent_id=None, office_village=None)
            key = {"Idempotency-Key": uuid.uuid4().hex}
            response = await _post(client, f"{running.url('registration')}/v1/participants/bulk",
                                   {"participants": rows}, {**AUTH, **key}, load, until)
            if response is None:
                continue
            body = response.json()
            load.registered += body["accepted"]
            new = [(r["participant_id"], rows[r["index"]]["segment"]) for r in body["results"]
                   if r.get("participant_id")]
            load.employer_workers += sum(1 for _, segment in new if segment == "PU")
            due, unpaid = unpaid[: chunk // 2], unpaid[chunk // 2:] + new
            funded: list[str] = []
            if programme:
                funded, learning = await _enrol(
                    client, running, programme,
                    [pid for pid, segment in due[::2] if segment == "BPU"], load, until)
                load.enrolled += len(funded)
                late += learning
            await _pay(client, running, funded, load, until, programme_id=programme)
            taken = set(funded) | set(late)
            rest = [(pid, segment) for pid, segment in due if pid not in taken]
            for segment in ("BPU", "PU"):
                await _pay(client, running, [pid for pid, s in rest if s == segment], load,
                           until)
        # Workers the programme could not enrol while contributions had not learnt them (the
        # fault held their events back): enrolled and paid once it has.
        while programme and late and time.monotonic() < until + 60:
            await asyncio.sleep(1.0)
            funded, late = await _enrol(client, running, programme, late, load, until)
            load.enrolled += len(funded)
            await _pay(client, running, funded, load, until, programme_id=programme)
    return load


async def _who_pays(client: httpx.AsyncClient, running: FaultStack, regency: str,
                    until: float, load: Load) -> tuple[str | None, str | None]:
    """An OPD of the regency and a city-budget programme funding its informal workers."""
    employer = await _post(client, f"{running.url('registration')}/v1/employers", {
        "name": f"Dinas Uji Gangguan {regency}", "kind": "opd", "region_code": regency,
        "declared_workers": {"year": 2026, "count": 5000, "source": "fault load"}},
        AUTH, load, until)
    today = date.today()
    programme = await _post(client, f"{running.url('contributions')}/v1/programmes", {
        "name": f"APBD {regency} {today.year} (fault load)", "funder_region": regency,
        "year": today.year, "quota": 100_000, "budget_rupiah": 10**12, "funding_code": "SG",
        "programs": ["JKK", "JKM"], "months": 12, "first_period": f"{today.year}-01"},
        AUTH, load, until)
    return (employer.json()["employer_id"] if employer else None,
            programme.json()["programme_id"] if programme else None)


async def _enrol(client: httpx.AsyncClient, running: FaultStack, programme: str,
                 pids: list[str], load: Load, until: float) -> tuple[list[str], list[str]]:
    """(those of `pids` the programme enrolled, those contributions has not learnt yet: it
    refuses them until their registrations reach it)."""
    if not pids:
        return [], []
    response = await _post(
        client, f"{running.url('contributions')}/v1/programmes/{programme}/enrolments",
        {"enrolments": [{"participant_id": pid} for pid in pids]}, AUTH, load, until)
    if response is None:
        return [], []
    body = response.json()
    learning = [pids[r["index"]] for r in body["rejected"] if not_learnt_yet(r)]
    return [r["participant_id"] for r in body["results"]], learning


async def _pay(client: httpx.AsyncClient, running: FaultStack, pids: list[str], load: Load,
               until: float, programme_id: str | None = None) -> None:
    """One batch for workers registered a round ago (known to contributions by now, or refused
    line by line; refused lines are not paid, which is fine), all of one segment (one amount):
    by their programme when given, else by their employer (wage earners) or half collected by
    PERISAI agents."""
    if not pids:
        return
    try:
        owed = await client.get(f"{running.url('contributions')}/v1/dues/{pids[0]}?months=1",
                                headers=AUTH)
    except httpx.HTTPError:
        return
    if owed.status_code != 200:
        return
    dues = owed.json()
    lines = []
    for n, pid in enumerate(pids):
        line = {"payment_ref": f"FAULT-{pid}", "participant_id": pid,
                "first_period": dues["first_period"], "months": 1, "amount": dues["amount"]}
        if programme_id:
            line |= {"payer": "government", "funding_code": "SG", "programme_id": programme_id}
        elif n % 2:
            line |= {"payer": "self", "agent_id": AGENTS[n % len(AGENTS)]}
        else:
            line |= {"payer": "government", "funding_code": "SG"}
        lines.append(line)
    response = await _post(client, f"{running.url('contributions')}/v1/contributions/bulk",
                           {"contributions": lines}, AUTH, load, until)
    if response is not None:
        load.paid += int(response.json().get("accepted", 0))


# --- faults -------------------------------------------------------------------------------------


Fault = Callable[[FaultStack, Profile], Awaitable[None]]


async def kill_worker_for_good(name: str, running: FaultStack, profile: Profile) -> None:
    await asyncio.sleep(1.0)
    await asyncio.to_thread(running.kill9, name)  # the other worker takes its partitions


async def kill_both_workers_restart_one(running: FaultStack, profile: Profile) -> None:
    await asyncio.sleep(1.0)
    for name in WORKERS:
        await asyncio.to_thread(running.kill9, name)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(running.start_services)  # starts the missing ones: both...
    await asyncio.to_thread(running.kill9, WORKERS[1])  # ...so one goes again, for good


async def kill_and_restart(name: str, running: FaultStack, profile: Profile) -> None:
    await asyncio.sleep(1.0)
    await asyncio.to_thread(running.kill9, name)
    await asyncio.sleep(1.0)
    await asyncio.to_thread(running.start_services)


async def kill_broker(running: FaultStack, profile: Profile) -> None:
    await asyncio.sleep(1.0)
    running.kill_broker()
    await asyncio.sleep(2.0)
    await asyncio.to_thread(running.start_broker)


async def restart_postgres(running: FaultStack, profile: Profile) -> None:
    await asyncio.sleep(1.0)
    await asyncio.to_thread(running.restart_postgres)


async def pause_broker(running: FaultStack, profile: Profile) -> None:
    await asyncio.sleep(1.0)
    running.signal_broker(signal.SIGSTOP)
    try:
        await asyncio.sleep(profile.broker_pause)
    finally:
        running.signal_broker(signal.SIGCONT)


async def rebalance_mid_batch(running: FaultStack, profile: Profile) -> None:
    """A third worker joins in the middle of the load (every partition moves), then dies."""
    await asyncio.sleep(0.5)
    port = stack.free_port()
    spec = next(s for s in stack.SERVICES if s.name == "coverage-worker")
    env = stack.service_env(spec, running.infra, api_key=API_KEY, port=port,
                            state_dir=running.workdir / "coverage-state")
    env["UCJ_COVERAGE_STATE_DIR"] = str(running.workdir / "coverage-state" / "third")
    running.extra["coverage-worker-3"] = await asyncio.to_thread(
        stack.start_service, "coverage-worker-3", [stack.python_exe(), "-m", spec.module], env,
        running.logdir, port=port)
    await asyncio.sleep(2.5)
    running.extra.pop("coverage-worker-3").kill9()


async def poison_events(running: FaultStack, profile: Profile) -> None:
    """Valid JSON and envelopes with impossible values, into each source topic."""
    await asyncio.sleep(0.5)
    producer = AIOKafkaProducer(bootstrap_servers=running.infra.bootstrap)
    await producer.start()
    try:
        for topic, raw in poison_messages(running.infra.prefix):
            pid = str(uuid.uuid4())
            partition = DefaultPartitioner()(pid.encode(), list(range(12)), list(range(12)))
            await producer.send_and_wait(topic, raw, key=pid.encode(), partition=partition)
    finally:
        await producer.stop()


def poison_messages(prefix: str) -> list[tuple[str, bytes]]:
    pid = str(uuid.uuid4())
    base = {"participant_id": pid, "kpj": "99000000001", "region_code": "12.75.01.1001",
            "segment": "BPU", "employer_id": None, "monthly_income": 1_000_000,
            "programs": ["JKK", "JKM"], "registered_on": "2026-11-20"}
    participants = topic_name(PARTICIPANTS, prefix)
    memberships = topic_name(MEMBERSHIPS, prefix)
    return [
        (participants, envelope_bytes(ParticipantRegistered,
                                      {**base, "region_code": "99.99.99.9999"},
                                      source="registration", subject=pid, sequence=1)),
        (participants, envelope_bytes(ParticipantRegistered,
                                      {**base, "registered_on": "2026-13-45"},
                                      source="registration", subject=str(uuid.uuid4()),
                                      sequence=1)),
        (participants, envelope_bytes(ParticipantRegistered, {**base, "monthly_income": 7},
                                      source="registration", subject=str(uuid.uuid4()),
                                      sequence=1).replace(b'"monthly_income":7',
                                                          b'"monthly_income":' + b"9" * 30)),
        (memberships, envelope_bytes(MembershipStatusChanged,
                                     {"participant_id": pid, "status": "active"},
                                     source="contributions", subject="not-a-participant",
                                     sequence=1)),
        (memberships, envelope_bytes(MembershipStatusChanged,
                                     {"participant_id": pid, "status": "active"},
                                     source="contributions", subject=pid, sequence=2**60)),
        (participants, envelope_bytes(ParticipantRegistered,
                                      {**base, "channel": "agent", "agent_id": "AG/../x"},
                                      source="registration", subject=str(uuid.uuid4()),
                                      sequence=1)),
        (memberships, envelope_bytes(ContributionPaid, {
            "participant_id": pid, "first_period": "2026-11", "last_period": "2026-11",
            "paid_on": "2026-11-20", "amount": -16_800, "by_program": {}},
            source="contributions", subject=pid, sequence=3)),
        (topic_name(ORGANISATIONS, prefix), envelope_bytes(EmployerRegistered, {
            "employer_id": str(uuid.uuid4()), "name": "Dinas Palsu", "kind": "opd",
            "region_code": "12.75"}, source="registration", subject=str(uuid.uuid4()),
            sequence=1)),
    ]


def _named(name: str, fault: Callable[..., Awaitable[None]], *args: Any) -> tuple[str, Fault]:
    async def run(running: FaultStack, profile: Profile) -> None:
        await fault(*args, running, profile)
    return name, run


MATRIX: list[tuple[str, Fault]] = [
    _named("kill -9 coverage-worker; coverage-worker-2 takes over for good",
           kill_worker_for_good, "coverage-worker"),
    _named("kill -9 coverage-worker-2; coverage-worker takes over for good",
           kill_worker_for_good, "coverage-worker-2"),
    ("kill -9 both coverage workers, restart one", kill_both_workers_restart_one),
    _named("kill -9 registration-relay", kill_and_restart, "registration-relay"),
    _named("kill -9 contributions-relay", kill_and_restart, "contributions-relay"),
    _named("kill -9 contributions-worker", kill_and_restart, "contributions-worker"),
    ("kill -9 the broker, restart it", kill_broker),
    ("restart PostgreSQL", restart_postgres),
    ("SIGSTOP the broker", pause_broker),
    ("rebalance in the middle of a batch (a third worker joins, dies)", rebalance_mid_batch),
    ("poison events in each source topic", poison_events),
]

# One regency per fault (Sumatera Utara's regencies, in order), so each row's figures are its own.
REGENCIES = [r.code for r in directory().children("12")]


@dataclass
class Row:
    fault: str
    regency: str
    sent: int
    counted: int
    drift: int
    converge_s: float
    ok: bool
    detail: str = ""


async def coverage_registered(running: FaultStack, regency: str) -> int:
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(50):
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                response = await client.get(
                    f"{running.url('coverage')}/v1/coverage/regions/{regency}")
                body = response.json()
                return int(body["registered"]) + int(body["terminated"])
            await asyncio.sleep(0.2)
    return -1


async def who_pays_shown(running: FaultStack, load: Load) -> str:
    """'' when the coverage API shows the load's OPD with every wage earner registered and its
    programme with every worker enrolled (the issue 11 counters); else what it shows."""
    if not (load.employer and load.programme and load.employer_workers and load.enrolled):
        return (f"; the load did not exercise employers and programmes (employer "
                f"{load.employer}, {load.employer_workers} workers; programme {load.programme}, "
                f"{load.enrolled} enrolled)")
    coverage = running.url("coverage")
    employer: dict[str, Any] = {}
    programme: dict[str, Any] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(50):
            with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
                employer = (await client.get(f"{coverage}/v1/coverage/employers/"
                                             f"{load.employer}")).json()
                programme = (await client.get(f"{coverage}/v1/coverage/programmes/"
                                              f"{load.programme}")).json()
                if (employer["registered"], programme["enrolled"]) == (
                        load.employer_workers, load.enrolled):
                    return ""
            await asyncio.sleep(0.2)
    return (f"; the OPD shows {employer.get('registered')} of {load.employer_workers} workers,"
            f" the programme {programme.get('enrolled')} of {load.enrolled} enrolled")


async def run_fault(running: FaultStack, index: int, name: str, fault: Fault,
                    profile: Profile) -> Row:
    regency = REGENCIES[index % len(REGENCIES)]
    before = await coverage_registered(running, regency)
    load_task = asyncio.create_task(
        run_load(running, regency, profile.load_seconds, profile.chunk, seed=index))
    try:
        await fault(running, profile)
    finally:
        load = await load_task
    # Whatever the fault left dead comes back now (a worker killed "for good" stayed dead
    # through the load and the convergence below: it is restarted only after the check).
    loaded_at = time.monotonic()
    result = await reconcile_until(running.db("ucj_registration"),
                                   running.db("ucj_contributions"), running.db("ucj_coverage"),
                                   profile.converge_seconds)
    converge = time.monotonic() - loaded_at
    # And what operators see: the API's counters of the regency, at most a poll later.
    counted = -1
    expected = before + load.registered
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        counted = await coverage_registered(running, regency) - before
        if counted == load.registered:
            break
        await asyncio.sleep(0.2)
    drift = sum(abs(d.drift) for d in result.drift if d.region == "ID")
    who_pays = await who_pays_shown(running, load)
    ok = (result.ok and counted == load.registered and before >= 0 and expected >= 0
          and not who_pays)
    detail = "" if ok else (result.summary() + f"; API shows {counted} new of "
                            f"{load.registered} registered" + who_pays)
    await asyncio.to_thread(running.start_services)  # bring back what the fault left dead
    await asyncio.to_thread(wait_for_workers, running)
    return Row(name, regency, load.events, counted, drift, round(converge, 1), ok, detail)


def table(rows: list[Row]) -> str:
    head = f"{'fault':66} {'regency':7} {'sent':>6} {'counted':>7} {'drift':>5} {'converge':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.fault[:66]:66} {r.regency:7} {r.sent:>6} {r.counted:>7} "
                     f"{r.drift:>5} {r.converge_s:>7.1f}s" + ("" if r.ok else "  FAILED"))
    return "\n".join(lines)


async def run_matrix(running: FaultStack, profile: Profile, only: set[str] | None = None,
                     report: Callable[[Row], None] = lambda row: None) -> list[Row]:
    rows = []
    for index, (name, fault) in enumerate(MATRIX):
        if only and not any(o in name for o in only):
            continue
        row = await run_fault(running, index, name, fault, profile)
        report(row)
        rows.append(row)
    return rows


# --- the scenarios of issue 7's "What was seen", scripted -------------------------------------


@dataclass(frozen=True)
class SeenSizes:
    bulk_rows: int  # per bulk burst (two bursts)
    singles: int  # single registrations before the broker is killed
    singles_after: int  # and after PostgreSQL restarted


SEEN_FULL = SeenSizes(bulk_rows=30_000, singles=8_000, singles_after=3_000)
SEEN_SHORT = SeenSizes(bulk_rows=6_000, singles=1_500, singles_after=500)


async def bulk_burst(running: FaultStack, regency: str, rows: int, seed: int,
                     bulk_size: int = 1000, concurrency: int = 2) -> int:
    """`rows` workers in bulk requests of `bulk_size`, `concurrency` at a time; accepted."""
    rng = random.Random(seed)
    villages = [v.code for d in directory().children(regency)[:3]
                for v in directory().children(d.code)]
    chunks = [[synthetic_worker(rng.choice(villages), rng) for _ in range(bulk_size)]
              for _ in range(rows // bulk_size)]
    load = Load()
    url = f"{running.url('registration')}/v1/participants/bulk"

    async def lane(client: httpx.AsyncClient) -> None:
        while chunks:
            chunk = chunks.pop()
            key = {"Idempotency-Key": uuid.uuid4().hex}
            response = await _post(client, url, {"participants": chunk}, {**AUTH, **key}, load,
                                   time.monotonic())
            if response is not None:
                load.registered += response.json()["accepted"]

    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(lane(client) for _ in range(concurrency)))
    return load.registered


async def singles(running: FaultStack, regency: str, count: int, seed: int,
                  concurrency: int = 32) -> int:
    rng = random.Random(seed)
    villages = [v.code for d in directory().children(regency)[:3]
                for v in directory().children(d.code)]
    rows = [synthetic_worker(rng.choice(villages), rng) for _ in range(count)]
    load = Load()
    url = f"{running.url('registration')}/v1/participants"

    async def lane(client: httpx.AsyncClient) -> None:
        while rows:
            row = rows.pop()
            key = {"Idempotency-Key": uuid.uuid4().hex}
            if await _post(client, url, row, {**AUTH, **key}, load, time.monotonic()):
                load.registered += 1

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(lane(client) for _ in range(concurrency)))
    return load.registered


async def outbox_backlog(running: FaultStack) -> int:
    """Rows waiting in the registration and contributions outboxes (-1: a database away)."""
    total = 0
    for name in ("ucj_registration", "ucj_contributions"):
        try:
            conn = await asyncpg.connect(running.db(name), timeout=5, command_timeout=5)
        except (OSError, asyncpg.PostgresError):
            return -1
        try:
            total += await conn.fetchval("SELECT count(*) FROM outbox")
        finally:
            await conn.close()
    return total


async def converge(running: FaultStack, regency: str, before: int, registered: int,
                   seconds: float) -> tuple[bool, float, int, int, str]:
    """Outboxes drained, no drift, the API showing the regency's new workers: (ok, seconds,
    counted, national drift, detail)."""
    started = time.monotonic()
    deadline = started + seconds
    backlog = await outbox_backlog(running)
    while backlog and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        backlog = await outbox_backlog(running)
    result = await reconcile_until(running.db("ucj_registration"),
                                   running.db("ucj_contributions"), running.db("ucj_coverage"),
                                   max(5.0, deadline - time.monotonic()))
    counted = -1
    while time.monotonic() < deadline + 10:
        counted = await coverage_registered(running, regency) - before
        if counted == registered:
            break
        await asyncio.sleep(0.2)
    drift = sum(abs(d.drift) for d in result.drift if d.region == "ID")
    ok = result.ok and not backlog and counted == registered
    detail = "" if ok else (f"{result.summary()}; outbox backlog {backlog}; API shows "
                            f"{counted} new of {registered}")
    return ok, time.monotonic() - started, counted, drift, detail


async def seen_partitions_move(running: FaultStack, sizes: SeenSizes, run: int) -> Row:
    """What was seen 1: kill -9 of a worker, the relay and the contributions worker 2.5 s into
    a bulk burst, all restarted; then both workers killed in another burst, restarted, and
    coverage-worker killed for good so coverage-worker-2 takes every partition over."""
    regency = "12.76"
    before = await coverage_registered(running, regency)
    burst = asyncio.create_task(bulk_burst(running, regency, sizes.bulk_rows, seed=100 + run))
    await asyncio.sleep(2.5)
    for name in ("coverage-worker", "registration-relay", "contributions-worker"):
        await asyncio.to_thread(running.kill9, name)
    await asyncio.to_thread(running.start_services)
    registered = await burst
    burst = asyncio.create_task(bulk_burst(running, regency, sizes.bulk_rows, seed=200 + run))
    await asyncio.sleep(2.0)
    for name in WORKERS:
        await asyncio.to_thread(running.kill9, name)
    await asyncio.to_thread(running.start_services)
    await asyncio.sleep(2.0)
    await asyncio.to_thread(running.kill9, "coverage-worker")  # for good
    registered += await burst
    ok, seconds, counted, drift, detail = await converge(running, regency, before, registered,
                                                         120)
    await asyncio.to_thread(running.start_services)
    await asyncio.to_thread(wait_for_workers, running)
    return Row(f"seen 1, run {run}: partitions move after kill -9 (bulk {sizes.bulk_rows} x2)",
               regency, registered, counted, drift, round(seconds, 1), ok, detail)


async def seen_relay_after_broker_and_postgres(running: FaultStack, sizes: SeenSizes,
                                               run: int) -> Row:
    """What was seen 2: kill -9 of the broker during single registrations, the broker
    restarted, then PostgreSQL restarted; later registrations must not stay in the outbox."""
    regency = "12.77"
    before = await coverage_registered(running, regency)
    load = asyncio.create_task(singles(running, regency, sizes.singles, seed=300 + run))
    await asyncio.sleep(2.0)
    running.kill_broker()
    await asyncio.sleep(2.0)
    await asyncio.to_thread(running.start_broker)
    registered = await load
    await asyncio.to_thread(running.restart_postgres)
    registered += await singles(running, regency, sizes.singles_after, seed=400 + run)
    ok, seconds, counted, drift, detail = await converge(running, regency, before, registered,
                                                         120)
    await asyncio.to_thread(running.start_services)
    await asyncio.to_thread(wait_for_workers, running)
    return Row(f"seen 2, run {run}: broker kill -9 + PostgreSQL restart under single "
               f"registrations", regency, registered, counted, drift, round(seconds, 1), ok,
               detail)


async def run_seen(running: FaultStack, sizes: SeenSizes, runs: int,
                   report: Callable[[Row], None] = lambda row: None) -> list[Row]:
    rows = []
    for run in range(1, runs + 1):
        for scenario in (seen_partitions_move, seen_relay_after_broker_and_postgres):
            row = await scenario(running, sizes, run)
            report(row)
            rows.append(row)
    return rows


def dead_letter_topic(running: FaultStack) -> str:
    return topic_name(DEAD_LETTER, running.infra.prefix)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--long", action="store_true", help="more load, a 30 s broker pause")
    ap.add_argument("--only", help="comma-separated parts of fault names")
    ap.add_argument("--workdir", help="where the stack lives (default: a new /tmp directory)")
    ap.add_argument("--seen", type=int, default=0, metavar="RUNS",
                    help="instead of the matrix: issue 7's two scenarios, full size, RUNS times")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir or f"/tmp/ucj-faults-{os.getpid()}")
    workdir.mkdir(parents=True, exist_ok=True)
    profile = LONG if args.long else SHORT
    running = start_fault_stack(workdir)
    def report(row: Row) -> None:
        print(f"{'ok  ' if row.ok else 'FAIL'} {row.fault}: sent {row.sent}, drift {row.drift},"
              f" converged in {row.converge_s}s {row.detail}", flush=True)

    try:
        if args.seen:
            rows = asyncio.run(run_seen(running, SEEN_FULL, args.seen, report))
        else:
            rows = asyncio.run(run_matrix(
                running, profile, set(args.only.split(",")) if args.only else None, report))
    finally:
        running.stop()
    print(table(rows))
    print(f"logs: {workdir / 'logs'}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
