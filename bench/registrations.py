"""Registration throughput and live-counter latency, against a running stack.

    python -m bench.registrations --n 20000 --concurrency 32 [--mode single|bulk]
        [--bulk-size 1000] [--registration http://127.0.0.1:8001]
        [--coverage http://127.0.0.1:8004] [--api-key dev-bootstrap-key]
        [--region-prefix 12.75] [--counter-timeout 120] [--seed N]

1. Generates N valid synthetic BPU workers in the villages under --region-prefix (before
   timing), with NIKs that agree with birth date and sex and are unique in the run.
2. Reads the coverage counters (`registered`) of the prefix's regency and of the nation ("ID").
3. Registers them: `single` posts one per request (`POST /v1/participants`) from C concurrent
   clients; `bulk` posts chunks of --bulk-size (`POST /v1/participants/bulk`), C at a time.
4. Prints throughput, latency percentiles and the statuses, then polls both counters every
   50 ms until they have grown by the number accepted, and prints how long after the last
   response that happened. The last line is a one-line JSON summary.

A measuring tool, not a test: it asserts nothing and always targets this machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from bench.calibration import calibration_s, run_and_print

REPO = Path(__file__).resolve().parent.parent
VILLAGES_CSV = REPO / "shared" / "data" / "regions" / "villages.csv"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
NATIONAL = "ID"
POLL_INTERVAL = 0.05
MAX_EXAMPLES = 3
BULK_MAX = 10_000  # CONTRACT.md: a bulk request takes up to 10,000 rows

GIVEN_M = ("Budi", "Agus", "Andi", "Rudi", "Joko", "Dedi", "Hendra", "Rizki", "Fajar", "Bayu",
           "Yusuf", "Ahmad", "Irfan", "Putra", "Taufik", "Dimas", "Arief", "Surya", "Bambang",
           "Eko", "Hadi", "Indra", "Reza", "Wahyu")
GIVEN_F = ("Siti", "Dewi", "Sri", "Rina", "Wulan", "Ayu", "Putri", "Nur", "Lestari", "Indah",
           "Fitri", "Maya", "Ratna", "Yuni", "Aminah", "Sari", "Rahmawati", "Nurul", "Dian",
           "Intan", "Mega", "Ani", "Kartika", "Lina")
FAMILY = ("Siregar", "Nasution", "Lubis", "Harahap", "Sitompul", "Hutapea", "Simanjuntak",
          "Ginting", "Sembiring", "Tarigan", "Purba", "Saragih", "Damanik", "Pohan", "Batubara",
          "Rangkuti", "Hasibuan", "Pane", "Santoso", "Wijaya", "Pratama", "Setiawan",
          "Hidayat", "Saputra", "Kurniawan", "Aminah", "Rahman", "Syahputra")

BIRTH_FIRST = date(1960, 1, 1).toordinal()
BIRTH_LAST = date(2005, 12, 31).toordinal()


# ----------------------------------------------------------------------------- generation

def load_villages(prefix: str, path: Path = VILLAGES_CSV) -> list[tuple[str, str]]:
    """(village code, district code) of every village under the prefix (whole code parts)."""
    with path.open(newline="", encoding="utf-8") as fh:
        return [
            (row["code"], row["district_code"])
            for row in csv.DictReader(fh)
            if row["code"] == prefix or row["code"].startswith(prefix + ".")
        ]


def make_nik(district_code: str, birth: date, sex: str, serial: int) -> str:
    """District (6 digits), birth date DDMMYY with 40 added to DD for women, 4-digit serial."""
    day = birth.day + (40 if sex == "F" else 0)
    return (f"{district_code.replace('.', '')}{day:02d}{birth.month:02d}{birth.year % 100:02d}"
            f"{serial:04d}")


def generate_workers(n: int, villages: list[tuple[str, str]],
                     rng: random.Random) -> list[dict[str, Any]]:
    """N valid registration bodies, NIKs unique in the run. Random birth dates (1960-2005),
    sexes and serials make a clash with an earlier run unlikely (it shows as a 409)."""
    seen: set[str] = set()
    workers: list[dict[str, Any]] = []
    attempts = 0
    while len(workers) < n and attempts < n * 50:
        attempts += 1
        village, district = rng.choice(villages)
        sex = rng.choice("MF")
        birth = date.fromordinal(rng.randint(BIRTH_FIRST, BIRTH_LAST))
        nik = make_nik(district, birth, sex, rng.randint(1, 9999))
        if nik in seen:
            continue
        seen.add(nik)
        given = rng.choice(GIVEN_F if sex == "F" else GIVEN_M)
        workers.append({
            "nik": nik,
            "full_name": f"{given} {rng.choice(FAMILY)}",
            "birth_date": birth.isoformat(),
            "sex": sex,
            "region_code": village,
            "segment": "BPU",
            "employer_id": None,
            "occupation": "pedagang",
            "monthly_income": 1_000_000,
            "programs": ["JKK", "JKM"],
        })
    if len(workers) < n:
        raise SystemExit(f"could only generate {len(workers)} unique NIKs of {n}")
    return workers


# ----------------------------------------------------------------------------- load phase

@dataclass
class LoadResult:
    requests: int = 0
    rows: int = 0
    accepted: int = 0
    rejected_rows: int = 0
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    started: float = 0.0
    last_response: float = 0.0

    def example(self, key: str, text: str) -> None:
        bucket = self.examples.setdefault(key, [])
        if len(bucket) < MAX_EXAMPLES:
            bucket.append(text[:500])

    @property
    def elapsed(self) -> float:
        return max(self.last_response - self.started, 1e-9)


def _short(body: bytes) -> str:
    return body.decode("utf-8", "replace").strip()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def run_single(session: aiohttp.ClientSession, base: str, bodies: list[bytes],
                     concurrency: int, headers: dict[str, str]) -> LoadResult:
    url = f"{base}/v1/participants"
    result = LoadResult(rows=len(bodies))
    indexes = iter(range(len(bodies)))  # shared by the clients: each body is posted once

    async def client() -> None:
        for i in indexes:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=bodies[i], headers=headers) as resp:
                    body = await resp.read()
                    status = str(resp.status)
            except (TimeoutError, aiohttp.ClientError) as exc:
                body, status = str(exc).encode(), f"error:{type(exc).__name__}"
            t1 = time.perf_counter()
            result.latencies.append(t1 - t0)
            result.last_response = max(result.last_response, t1)
            result.requests += 1
            result.statuses[status] += 1
            if status == "201":
                result.accepted += 1
            else:
                result.example(status, _short(body))

    result.started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return result


async def run_bulk(session: aiohttp.ClientSession, base: str, chunks: list[tuple[int, bytes]],
                   concurrency: int, headers: dict[str, str]) -> LoadResult:
    url = f"{base}/v1/participants/bulk"
    result = LoadResult(rows=sum(size for size, _ in chunks))
    indexes = iter(range(len(chunks)))

    async def client() -> None:
        for i in indexes:
            size, payload = chunks[i]
            t0 = time.perf_counter()
            data: Any = None
            try:
                async with session.post(url, data=payload, headers=headers) as resp:
                    body = await resp.read()
                    status = str(resp.status)
                if status == "200":
                    data = orjson.loads(body)
            except (TimeoutError, aiohttp.ClientError) as exc:
                body, status = str(exc).encode(), f"error:{type(exc).__name__}"
            except orjson.JSONDecodeError:
                status = "200-unparsable"
            t1 = time.perf_counter()
            result.latencies.append(t1 - t0)
            result.last_response = max(result.last_response, t1)
            result.requests += 1
            result.statuses[status] += 1
            if isinstance(data, dict):
                result.accepted += int(data.get("accepted", 0))
                rejected = data.get("rejected") or []
                result.rejected_rows += len(rejected)
                for row in rejected[:MAX_EXAMPLES]:
                    result.example("rejected row", orjson.dumps(row).decode())
            else:
                result.rejected_rows += size
                result.example(status, _short(body))

    result.started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return result


# ----------------------------------------------------------------------------- counters

async def read_registered(session: aiohttp.ClientSession, base: str,
                          code: str) -> tuple[int | None, str]:
    """`registered` of a region, or None with the reason."""
    try:
        async with session.get(f"{base}/v1/coverage/regions/{code}") as resp:
            body = await resp.read()
            if resp.status != 200:
                return None, f"HTTP {resp.status}: {_short(body)[:200]}"
            return int(orjson.loads(body)["registered"]), ""
    except (TimeoutError, aiohttp.ClientError) as exc:
        return None, _describe(exc)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        return None, f"unexpected body: {exc!r}"


@dataclass
class CounterWatch:
    code: str
    baseline: int | None
    error: str = ""
    target: int | None = None
    last: int | None = None
    complete_after: float | None = None

    def summary(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "target": self.target, "last": self.last,
                "complete_after_s": None if self.complete_after is None
                else round(self.complete_after, 3),
                **({"error": self.error} if self.error else {})}


async def wait_for_counters(session: aiohttp.ClientSession, base: str,
                            watches: list[CounterWatch], accepted: int,
                            last_response: float, wait_seconds: float) -> None:
    """Poll every 50 ms until each counter reaches baseline + accepted, or the timeout."""
    pending = [w for w in watches if w.baseline is not None]
    for w in pending:
        w.target = w.baseline + accepted  # type: ignore[operator]
    deadline = last_response + wait_seconds
    while pending and time.perf_counter() < deadline:
        values = await asyncio.gather(*(read_registered(session, base, w.code) for w in pending))
        now = time.perf_counter()
        for w, (value, _) in zip(pending, values, strict=True):
            if value is not None:
                w.last = value
                if w.target is not None and value >= w.target:
                    w.complete_after = now - last_response
        pending = [w for w in pending if w.complete_after is None]
        if pending:
            await asyncio.sleep(POLL_INTERVAL)


# ----------------------------------------------------------------------------- report

def percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_ms(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {name: round(percentile(ordered, pct) * 1000, 2)
            for name, pct in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))}


def check_local(url: str, flag: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOCAL_HOSTS:
        raise SystemExit(f"{flag} must point at this machine (127.0.0.1/localhost): {url!r}")
    return url.rstrip("/")


def counted_region(prefix: str) -> str:
    """The regency the prefix lies in (or the province, for a province prefix)."""
    return ".".join(prefix.split(".")[:2])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.registrations", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20_000, help="workers to register")
    p.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    p.add_argument("--mode", choices=("single", "bulk"), default="single")
    p.add_argument("--bulk-size", type=int, default=1000, help="rows per bulk request")
    p.add_argument("--registration", default="http://127.0.0.1:8001")
    p.add_argument("--coverage", default="http://127.0.0.1:8004")
    p.add_argument("--api-key", default="dev-bootstrap-key")
    p.add_argument("--region-prefix", default="12.75",
                   help="villages whose code starts with this (default: Kota Binjai)")
    p.add_argument("--counter-timeout", type=float, default=120.0,
                   help="seconds to wait for the counters after the last response")
    p.add_argument("--request-timeout", type=float, default=120.0,
                   help="seconds one request may take")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed (same seed = same NIKs: the second run gets 409s)")
    args = p.parse_args(argv)
    if not 1 <= args.n <= 1_000_000:
        p.error("--n must be in 1..1000000")
    if not 1 <= args.concurrency <= 1024:
        p.error("--concurrency must be in 1..1024")
    if not 1 <= args.bulk_size <= BULK_MAX:
        p.error(f"--bulk-size must be in 1..{BULK_MAX}")
    if not 0 < args.counter_timeout <= 600:
        p.error("--counter-timeout must be in (0, 600]")
    args.registration = check_local(args.registration, "--registration")
    args.coverage = check_local(args.coverage, "--coverage")
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    villages = load_villages(args.region_prefix)
    if not villages:
        raise SystemExit(f"no village code starts with {args.region_prefix!r} in {VILLAGES_CSV}")
    machine = calibration_s()
    print(f"calibration: {machine:.3f} s for a fixed Python loop (lower is a faster machine)")
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    workers = generate_workers(args.n, villages, random.Random(args.seed))
    if args.mode == "single":
        payloads: list[Any] = [orjson.dumps(w) for w in workers]
    else:
        payloads = [(len(workers[i:i + args.bulk_size]),
                     orjson.dumps({"participants": workers[i:i + args.bulk_size]}))
                    for i in range(0, len(workers), args.bulk_size)]
    print(f"generated {len(workers)} workers in {len(villages)} villages under "
          f"{args.region_prefix} ({time.perf_counter() - t0:.2f} s, not measured)")

    region = counted_region(args.region_prefix)
    http_timeout = aiohttp.ClientTimeout(total=args.request_timeout)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as cov:
        watches = []
        for code in (region, NATIONAL):
            value, error = await read_registered(cov, args.coverage, code)
            watches.append(CounterWatch(code, value, error))
            print(f"coverage {code}: registered = {value}" if value is not None
                  else f"coverage {code}: cannot read the baseline ({error}); not watched")

        headers = {"Authorization": f"Bearer {args.api_key}", "Content-Type": "application/json"}
        connector = aiohttp.TCPConnector(limit=args.concurrency)
        async with aiohttp.ClientSession(connector=connector, timeout=http_timeout) as session:
            print(f"{args.mode}: {args.n} workers, concurrency {args.concurrency}"
                  + (f", {len(payloads)} requests of up to {args.bulk_size}"
                     if args.mode == "bulk" else "") + " ...")
            if args.mode == "single":
                result = await run_single(session, args.registration, payloads,
                                          args.concurrency, headers)
            else:
                result = await run_bulk(session, args.registration, payloads,
                                        args.concurrency, headers)

        lat = latency_ms(result.latencies)
        per_s = result.requests / result.elapsed
        rows_per_s = result.rows / result.elapsed
        if args.mode == "single":
            print(f"{result.requests} requests in {result.elapsed:.2f} s: {per_s:.1f} requests/s")
        else:
            print(f"{result.rows} rows in {result.requests} requests in {result.elapsed:.2f} s: "
                  f"{rows_per_s:.1f} rows/s ({result.accepted / result.elapsed:.1f} accepted "
                  f"rows/s, {per_s:.2f} requests/s)")
        print(f"latency ms: p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  "
              f"max {lat['max']}")
        print("statuses: " + ", ".join(f"{k} x{v}" for k, v in sorted(result.statuses.items())))
        print(f"accepted {result.accepted}" + (f", rejected rows {result.rejected_rows}"
                                              if args.mode == "bulk" else ""))
        if result.statuses.get("409"):
            print("  (409: NIK already registered, most likely by an earlier run)")
        for key, bodies in result.examples.items():
            for body in bodies:
                print(f"  e.g. {key}: {body}")

        client_cpu = time.process_time() - cpu0
        print(f"(this client used {client_cpu:.2f} s of CPU, generation included, on "
              f"{result.elapsed:.2f} s of load: it shares the machine with the stack)")
        await wait_for_counters(cov, args.coverage, watches, result.accepted,
                                result.last_response, args.counter_timeout)
    for w in watches:
        if w.baseline is None:
            continue
        if result.accepted == 0:
            print(f"coverage {w.code}: nothing accepted, so nothing to count (registered {w.last})")
        elif w.complete_after is not None:
            print(f"coverage {w.code}: counters complete {w.complete_after:.2f} s after the "
                  f"last response (registered {w.last}, target {w.target})")
        else:
            got = None if w.last is None else w.last - w.baseline  # type: ignore[operator]
            print(f"coverage {w.code}: NOT complete {args.counter_timeout:.0f} s after the last "
                  f"response: registered {w.last} of target {w.target} "
                  f"({got} of {result.accepted} counted)")

    return {
        "bench": "registrations",
        "calibration_s": machine,
        "mode": args.mode,
        "n": args.n,
        "concurrency": args.concurrency,
        "bulk_size": args.bulk_size if args.mode == "bulk" else None,
        "region_prefix": args.region_prefix,
        "requests": result.requests,
        "elapsed_s": round(result.elapsed, 3),
        "requests_per_s": round(per_s, 1),
        "rows_per_s": round(rows_per_s, 1),
        "accepted": result.accepted,
        "rejected_rows": result.rejected_rows if args.mode == "bulk" else None,
        "statuses": dict(sorted(result.statuses.items())),
        "latency_ms": lat,
        "client_cpu_s": round(client_cpu, 2),
        "counters": {w.code: w.summary() for w in watches},
    }


def main(argv: list[str] | None = None) -> None:
    run_and_print(main_async(parse_args(argv)))


if __name__ == "__main__":
    main()
