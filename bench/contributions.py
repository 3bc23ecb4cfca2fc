"""The city-budget batch: a government pays one month for N workers in one bulk request.

    python -m bench.contributions --n 10000 [--region-prefix 12.75] [--chunk 10000]
        [--registration http://127.0.0.1:8001] [--contributions http://127.0.0.1:8002]
        [--coverage http://127.0.0.1:8004] [--api-key dev-bootstrap-key]
        [--kafka 127.0.0.1:9092] [--no-warmup]

1. Registers 2N synthetic BPU workers (Rp 1,000,000, JKK+JKM; N with --no-warmup) in bulk,
   not measured, and waits until the contributions service has learnt them and the coverage
   counters show them.
2. Waits until every consumer group has caught up (the contributions worker learning the new
   members too).
3. Warm-up, not measured: pays for the first N workers the way step 4 does and waits for the
   counters and the consumers again. A Kafka started minutes ago still spends CPU compiling
   its code (C2 threads), which the two cores then lack; --no-warmup measures that case.
4. Measured: posts N payment lines (payer government, funding code SG, one month each) to
   POST /v1/contributions/bulk in chunks of --chunk lines, one request at a time, prints
   lines/s and latency, then polls the regency's `active` counter every 50 ms until it has
   grown by the lines accepted and prints how long after the last response that took.
   Last line: a JSON summary.

A measuring tool, not a test: it asserts nothing and only targets this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from bench.calibration import calibration_s
from bench.registrations import (
    check_local,
    counted_region,
    generate_workers,
    latency_ms,
    load_villages,
)

POLL = 0.05


async def coverage_active(session: aiohttp.ClientSession, base: str, code: str) -> int:
    async with session.get(f"{base}/v1/coverage/regions/{code}") as resp:
        return int((await resp.json())["active"])


async def wait_consumers_caught_up(bootstrap: str, limit_s: float) -> float:
    """Wait until every consumer group's committed offsets reach the end of what it reads."""
    started = time.perf_counter()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await probe.start()
    try:
        while time.perf_counter() - started < limit_s:
            groups = [g[0] for g in await admin.list_consumer_groups()]
            lag = 0
            for group in groups:
                committed = await admin.list_consumer_group_offsets(group)
                ends = await probe.end_offsets(list(committed))
                lag += sum(max(0, ends[tp] - meta.offset) for tp, meta in committed.items()
                           if meta.offset >= 0)
            if lag == 0:
                break
            await asyncio.sleep(0.2)
    finally:
        await probe.stop()
        await admin.close()
    return time.perf_counter() - started


async def register_all(session, base: str, workers: list[dict]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(workers), 5000):
        async with session.post(f"{base}/v1/participants/bulk",
                                json={"participants": workers[start:start + 5000]}) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise SystemExit(f"registration failed: {resp.status} {body}")
            ids += [r["participant_id"] for r in body["results"]]
    return ids


async def wait_learnt(session, base: str, ids: list[str], wait_s: float = 120.0) -> float:
    started = time.perf_counter()
    for pid in (ids[0], ids[len(ids) // 2], ids[-1]):
        while True:
            async with session.get(f"{base}/v1/memberships/{pid}") as resp:
                if resp.status == 200:
                    break
            if time.perf_counter() - started > wait_s:
                raise SystemExit("contributions never learnt the registered workers")
            await asyncio.sleep(0.1)
    return time.perf_counter() - started


@dataclass
class Batch:
    lines: int
    accepted: int
    rejected: int
    elapsed: float
    latencies: list[float]
    complete_after: float | None


async def pay_batch(session, args: argparse.Namespace, region: str, lines: list[dict],
                    label: str) -> Batch:
    """Post the lines in chunks of --chunk, then poll the regency's `active` counter until it
    has grown by the lines accepted."""
    baseline = await coverage_active(session, args.coverage, region)
    chunks = [orjson.dumps({"contributions": lines[i:i + args.chunk]})
              for i in range(0, len(lines), args.chunk)]
    latencies: list[float] = []
    accepted = rejected = 0
    started = time.perf_counter()
    for chunk in chunks:
        t0 = time.perf_counter()
        async with session.post(f"{args.contributions}/v1/contributions/bulk", data=chunk,
                                headers={"content-type": "application/json"}) as resp:
            body = await resp.json()
        latencies.append(time.perf_counter() - t0)
        accepted += body.get("accepted", 0)
        rejected += len(body.get("rejected", []))
        if body.get("rejected"):
            print("e.g. rejected:", body["rejected"][0])
    last = time.perf_counter()
    elapsed = last - started
    print(f"{label}: {len(lines)} payment lines in {len(chunks)} requests in {elapsed:.2f} s: "
          f"{len(lines) / elapsed:.1f} lines/s; accepted {accepted}, rejected {rejected}")
    print("latency ms: " + "  ".join(f"{k} {v}" for k, v in latency_ms(latencies).items()))
    complete_after = None
    value = baseline
    while time.perf_counter() - last < args.counter_timeout:
        value = await coverage_active(session, args.coverage, region)
        if value >= baseline + accepted:
            complete_after = time.perf_counter() - last
            break
        await asyncio.sleep(POLL)
    if complete_after is None:
        print(f"coverage {region}: active reached {value - baseline} of {accepted} "
              f"in {args.counter_timeout:.0f} s")
    else:
        print(f"coverage {region}: active counters complete {complete_after:.2f} s after "
              f"the last response (active {value})")
    return Batch(len(lines), accepted, rejected, elapsed, latencies, complete_after)


async def settle(args: argparse.Namespace) -> None:
    """Let every consumer catch up, so nothing left over competes with the next batch."""
    settled = await wait_consumers_caught_up(args.kafka, args.counter_timeout)
    print(f"consumers caught up {settled:.2f} s later")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {args.api_key}"}
    region = counted_region(args.region_prefix)
    rng = random.Random(args.seed)
    batches = 2 if args.warmup else 1
    workers = generate_workers(batches * args.n, load_villages(args.region_prefix), rng)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        async with session.get(f"{args.coverage}/v1/coverage/regions/{region}") as resp:
            registered_before = (await resp.json())["registered"]
        ids = await register_all(session, args.registration, workers)
        learnt = await wait_learnt(session, args.contributions, ids)
        print(f"registered {len(ids)} workers; contributions knew them {learnt:.2f} s later")
        async with session.get(f"{args.contributions}/v1/dues/{ids[0]}?months=1") as resp:
            dues = await resp.json()
        # Let the coverage workers finish folding the registrations first, so the payment
        # batch is measured on its own, not against the tail of the registration load.
        before = time.perf_counter()
        while time.perf_counter() - before < args.counter_timeout:
            async with session.get(f"{args.coverage}/v1/coverage/regions/{region}") as resp:
                if (await resp.json())["registered"] >= registered_before + len(ids):
                    break
            await asyncio.sleep(POLL)
        await settle(args)
        lines = [{"payment_ref": f"APBD-BENCH-{args.seed}-{i}", "participant_id": pid,
                  "first_period": dues["first_period"], "months": 1, "amount": dues["amount"],
                  "payer": "government", "funding_code": "SG"} for i, pid in enumerate(ids)]
        if args.warmup:
            await pay_batch(session, args, region, lines[:args.n], "warm-up (not measured)")
            await settle(args)
            lines = lines[args.n:]
        machine = calibration_s()
        print(f"calibration: {machine:.3f} s for a fixed Python loop (lower is a faster machine)")
        batch = await pay_batch(session, args, region, lines, "measured")
    return {"bench": "contributions", "calibration_s": machine, "warmup": args.warmup,
            "n": args.n, "chunk": args.chunk,
            "lines_per_s": round(batch.lines / batch.elapsed, 1),
            "elapsed_s": round(batch.elapsed, 3),
            "accepted": batch.accepted, "rejected": batch.rejected,
            "latency_ms": latency_ms(batch.latencies),
            "active_complete_after_s": None if batch.complete_after is None
            else round(batch.complete_after, 3)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.contributions", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--chunk", type=int, default=10_000)
    p.add_argument("--region-prefix", default="12.75")
    p.add_argument("--registration", default="http://127.0.0.1:8001")
    p.add_argument("--contributions", default="http://127.0.0.1:8002")
    p.add_argument("--coverage", default="http://127.0.0.1:8004")
    p.add_argument("--api-key", default="dev-bootstrap-key")
    p.add_argument("--kafka", default="127.0.0.1:9092",
                   help="the stack's broker, to wait until every consumer has caught up")
    p.add_argument("--counter-timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=random.randrange(1_000_000))
    p.add_argument("--no-warmup", dest="warmup", action="store_false",
                   help="measure the first batch (by default one unmeasured batch of N lines "
                        "runs first: a Kafka started minutes ago is still compiling its code)")
    args = p.parse_args(argv)
    for flag in ("registration", "contributions", "coverage"):
        setattr(args, flag, check_local(getattr(args, flag), f"--{flag}"))
    return args


def main(argv: list[str] | None = None) -> None:
    print(orjson.dumps(asyncio.run(main_async(parse_args(argv)))).decode())


if __name__ == "__main__":
    main()
