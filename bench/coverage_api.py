"""The coverage API under load: reads at a fixed rate, and 200 live screens while payments flow.

    python -m bench.coverage_api [--rate 500] [--list-rate 500] [--duration 20]
        [--region 12.75] [--clients 200] [--stream-parent 12.75] [--pay-rate 500]
        [--pay-duration 20] [--sample-district 12.75.03] [--sample-interval 0.5]
        [--phases region,list,sse] [--registration ...] [--contributions ...]
        [--coverage ...] [--api-key dev-bootstrap-key] [--kafka 127.0.0.1:9092]

1. `region`: GET /v1/coverage/regions/{--region} open-loop at --rate requests/s for
   --duration s: request i is started at t0 + i/rate whether or not earlier ones have
   answered (aiohttp, up to --connections in flight; beyond that they queue in the client and
   the wait counts). Latency is printed twice: from the scheduled start (what a caller sees,
   no coordinated omission) and from the moment the request was actually started (the
   server's share, when the client itself falls behind).
2. `list`: the same for GET /v1/coverage/regions?level=regency (all 514 regencies, one answer)
   at --list-rate.
3. `sse`: registers workers in bulk in the villages of --stream-parent (not measured), waits
   until contributions knows them, coverage counts them and every consumer group has caught
   up; opens --clients Server-Sent Events streams on /v1/coverage/stream?parent=... (in a
   child process, so the load generator and the readers do not share one event loop) and
   waits for every snapshot. Then, for --pay-duration s, posts one month's government payment
   (SG) for --pay-rate fresh workers a second to POST /v1/contributions/bulk, in chunks every
   100 ms, open-loop, in the villages outside --sample-district. Meanwhile, every
   --sample-interval s, one sampled payment (a one-line bulk request, one at a time) pays a
   fresh worker of --sample-district: sample k is the k-th payment ever made in that district
   during the run, so a client has seen it when the district's `active` in its stream reaches
   its snapshot's value + k. Payment to screen = the time the client read that `counters`
   event − the time the sample's response arrived (negative when the event beat the HTTP
   response). Printed over every (sample, client) pair, and per sample its slowest client.

All streams come from one address: start the stack with UCJ_STREAM_MAX_PER_CLIENT=250 (the
coverage API answers 429 past 20 streams an address by default).

Targets printed next to the figures (issue 10, item 9): region p99 < 20 ms, list p99 <
100 ms, payment to screen < 2 s. Last line: a JSON summary. A measuring tool, not a test:
it asserts nothing and only targets this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import random
import time
from collections import Counter
from typing import Any

import aiohttp
import orjson

from bench.calibration import calibration_s, run_and_print
from bench.contributions import register_all, wait_consumers_caught_up, wait_learnt
from bench.registrations import (
    check_local,
    generate_workers,
    latency_ms,
    load_villages,
)

TARGET_REGION_P99_MS = 20.0
TARGET_LIST_P99_MS = 100.0
TARGET_SCREEN_S = 2.0
PAY_TICK = 0.1  # a bulk chunk every 100 ms
POLL = 0.05


def _mark(value: float, target: float) -> str:
    return "ok" if value < target else "MISSED"


# ----------------------------------------------------------------------------- 1, 2: reads

async def open_loop(session: aiohttp.ClientSession, url: str, rate: float, duration: float,
                    request_timeout_s: float) -> dict[str, Any]:
    """Start rate × duration GETs on schedule; each records from-schedule and from-send
    latency and its status."""
    n = max(1, int(rate * duration))
    from_due: list[float] = []
    from_sent: list[float] = []
    lag: list[float] = []
    statuses: Counter[str] = Counter()
    examples: list[str] = []
    last_end = 0.0
    req_timeout = aiohttp.ClientTimeout(total=request_timeout_s)

    async def one(due: float) -> None:
        nonlocal last_end
        sent = time.perf_counter()
        lag.append(sent - due)
        try:
            async with session.get(url, timeout=req_timeout) as resp:
                body = await resp.read()
                status = str(resp.status)
        except (TimeoutError, aiohttp.ClientError) as exc:
            body, status = str(exc).encode(), f"error:{type(exc).__name__}"
        end = time.perf_counter()
        last_end = max(last_end, end)
        statuses[status] += 1
        if status == "200":
            from_due.append(end - due)
            from_sent.append(end - sent)
        elif len(examples) < 3:
            examples.append(f"{status}: {body[:200].decode('utf-8', 'replace')}")

    cpu0 = time.process_time()
    tasks = []
    t0 = time.perf_counter() + 0.05
    for i in range(n):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    last_start = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = max(last_end - t0, 1e-9)
    ok = statuses.get("200", 0)
    return {
        "url": url, "target_rate": rate, "duration_s": duration, "requests": n,
        "started_rate": round(n / max(last_start - t0, 1e-9), 1),
        "achieved_rate": round(ok / elapsed, 1), "elapsed_s": round(elapsed, 3),
        "ok": ok, "errors": n - ok, "statuses": dict(sorted(statuses.items())),
        "examples": examples,
        "latency_ms": latency_ms(from_due), "latency_from_send_ms": latency_ms(from_sent),
        "start_lag_ms": latency_ms(lag), "client_cpu_s": round(time.process_time() - cpu0, 2),
    }


def print_reads(label: str, r: dict[str, Any], target_ms: float) -> None:
    lat, sent = r["latency_ms"], r["latency_from_send_ms"]
    print(f"{label}: {r['requests']} requests at a target of {r['target_rate']:g}/s for "
          f"{r['duration_s']:g} s: started {r['started_rate']}/s, achieved "
          f"{r['achieved_rate']} ok/s over {r['elapsed_s']:.2f} s; errors {r['errors']}")
    print("  (latencies of the answered requests; timeouts and other failures are the errors)")
    print(f"  latency ms from schedule: p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  "
          f"max {lat['max']}   (target p99 < {target_ms:g} ms: {_mark(lat['p99'], target_ms)})")
    print(f"  latency ms from send:     p50 {sent['p50']}  p90 {sent['p90']}  p99 {sent['p99']}  "
          f"max {sent['max']}   (target p99 < {target_ms:g} ms: "
          f"{_mark(sent['p99'], target_ms)})")
    print(f"  client start lag ms: p50 {r['start_lag_ms']['p50']}  p99 {r['start_lag_ms']['p99']}"
          f"  max {r['start_lag_ms']['max']}; client CPU {r['client_cpu_s']} s")
    print("  statuses: " + ", ".join(f"{k} x{v}" for k, v in r["statuses"].items()))
    for e in r["examples"]:
        print(f"  e.g. {e}")


# ----------------------------------------------------------------------------- 3: SSE clients

async def _sse_clients(url: str, n: int, district: str, conn: Any) -> None:
    """Child process: n streams; report each one's snapshot value of the district's `active`,
    then every (time, active) it reads for the district, until told to stop."""
    needle = f'"code":"{district}"'.encode()
    bases: list[int | None] = [None] * n
    seen: list[list[tuple[float, int]]] = [[] for _ in range(n)]
    events = [0] * n
    errors: list[str] = []
    snapshot_ready = [asyncio.Event() for _ in range(n)]
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(i: int) -> None:
            try:
                async with session.get(url, headers={"Accept": "text/event-stream"}) as resp:
                    if resp.status != 200:
                        body = await resp.read()
                        errors.append(f"client {i}: HTTP {resp.status} {body[:200]!r}")
                        return
                    event = b""
                    async for line in resp.content:
                        if line.startswith(b"event:"):
                            event = line[6:].strip()
                        elif line.startswith(b"data:"):
                            t = time.perf_counter()
                            events[i] += 1
                            if needle not in line:
                                continue
                            body = orjson.loads(line[5:])
                            if event == b"snapshot":
                                for item in body["items"]:
                                    if item["region"]["code"] == district:
                                        bases[i] = int(item["active"])
                                snapshot_ready[i].set()
                            elif body["region"]["code"] == district:
                                seen[i].append((t, int(body["active"])))
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                errors.append(f"client {i}: {type(exc).__name__}: {exc}")
            finally:
                snapshot_ready[i].set()

        tasks = [asyncio.create_task(client(i)) for i in range(n)]
        started = time.perf_counter()
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in snapshot_ready)), 120)
        except TimeoutError:
            errors.append("not every snapshot arrived within 120 s")
        connected = time.perf_counter() - started
        loop = asyncio.get_running_loop()
        conn.send(("ready", bases, errors[:], round(connected, 3)))
        await loop.run_in_executor(None, conn.recv)  # "stop"
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    conn.send(("done", bases, seen, events, errors))


def sse_child(url: str, n: int, district: str, conn: Any) -> None:
    try:
        import uvloop
        uvloop.run(_sse_clients(url, n, district, conn))
    except ImportError:
        asyncio.run(_sse_clients(url, n, district, conn))


def payment_lines(ids: list[str], dues: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return [{"payment_ref": f"APBD-COVBENCH-{tag}-{i}", "participant_id": pid,
             "first_period": dues["first_period"], "months": 1, "amount": dues["amount"],
             "payer": "government", "funding_code": "SG"} for i, pid in enumerate(ids)]


async def post_lines(session: aiohttp.ClientSession, base: str,
                     lines: list[dict[str, Any]]) -> tuple[str, int, int]:
    try:
        async with session.post(f"{base}/v1/contributions/bulk",
                                data=orjson.dumps({"contributions": lines}),
                                headers={"content-type": "application/json"}) as resp:
            body = await resp.read()
            status = str(resp.status)
        data = orjson.loads(body) if status == "200" else {}
    except (TimeoutError, aiohttp.ClientError, orjson.JSONDecodeError) as exc:
        return f"error:{type(exc).__name__}", 0, len(lines)
    if not data:
        return status, 0, len(lines)
    return status, int(data.get("accepted", 0)), len(data.get("rejected", []))


async def sse_phase(args: argparse.Namespace) -> dict[str, Any]:
    region = args.stream_parent
    district = args.sample_district
    load_villages_ = [v for v in load_villages(region) if not v[0].startswith(district + ".")]
    sample_villages = load_villages(district)
    if not load_villages_ or not sample_villages:
        raise SystemExit(f"need villages under {region} both inside and outside {district}")
    n_load = int(args.pay_rate * args.pay_duration)
    n_samples = int(args.pay_duration / args.sample_interval) + 5
    rng = random.Random(args.seed)
    # NIKs begin with the district's code, so the two groups cannot share one.
    workers = (generate_workers(n_load, load_villages_, rng)
               + generate_workers(n_samples, sample_villages, rng))

    headers = {"Authorization": f"Bearer {args.api_key}"}
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        async with session.get(f"{args.coverage}/v1/coverage/regions/{region}") as resp:
            registered_before = (await resp.json())["registered"]
        t0 = time.perf_counter()
        ids = await register_all(session, args.registration, workers)
        learnt = await wait_learnt(session, args.contributions, ids)
        while time.perf_counter() - t0 < args.counter_timeout:
            async with session.get(f"{args.coverage}/v1/coverage/regions/{region}") as resp:
                if (await resp.json())["registered"] >= registered_before + len(ids):
                    break
            await asyncio.sleep(POLL)
        settled = await wait_consumers_caught_up(args.kafka, args.counter_timeout)
        print(f"registered {len(ids)} workers ({n_load} in {region} outside {district}, "
              f"{len(ids) - n_load} in {district}) in {time.perf_counter() - t0:.2f} s with "
              f"the waits (contributions knew them after {learnt:.2f} s; consumers caught up "
              f"{settled:.2f} s after the counters), not measured")
        async with session.get(f"{args.contributions}/v1/dues/{ids[0]}?months=1") as resp:
            dues = await resp.json()
        load_lines = payment_lines(ids[:n_load], dues, f"{args.seed}-L")
        sample_lines = payment_lines(ids[n_load:], dues, f"{args.seed}-S")

        stream_url = f"{args.coverage}/v1/coverage/stream?parent={region}"
        ctx = mp.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe()
        child = ctx.Process(target=sse_child, args=(stream_url, args.clients, district,
                                                    child_conn), daemon=True)
        child.start()
        loop = asyncio.get_running_loop()
        _, bases, early_errors, connected_s = await loop.run_in_executor(None, parent_conn.recv)
        live_clients = sum(b is not None for b in bases)
        print(f"{live_clients} of {args.clients} SSE clients on {stream_url} had their "
              f"snapshot {connected_s:.2f} s after connecting began")
        for e in early_errors[:3]:
            print(f"  e.g. {e}")
        if any("HTTP 429" in e for e in early_errors):
            print("  (429: the coverage API caps open streams per client address, "
                  "UCJ_STREAM_MAX_PER_CLIENT, default 20; for this bench start the stack with "
                  f"UCJ_STREAM_MAX_PER_CLIENT={args.clients + 50} ./ucj up)")

        # --- the measured part: bulk load + samples, concurrently
        chunk = max(1, round(args.pay_rate * PAY_TICK))
        chunks = [load_lines[i:i + chunk] for i in range(0, len(load_lines), chunk)]
        load_lat: list[float] = []
        load_status: Counter[str] = Counter()
        load_accepted = load_rejected = 0
        load_last = 0.0

        async def load_one(lines: list[dict[str, Any]]) -> None:
            nonlocal load_accepted, load_rejected, load_last
            s = time.perf_counter()
            status, acc, rej = await post_lines(session, args.contributions, lines)
            e = time.perf_counter()
            load_lat.append(e - s)
            load_last = max(load_last, e)
            load_status[status] += 1
            load_accepted += acc
            load_rejected += rej

        samples: list[tuple[float, float]] = []  # (response time, request latency) accepted
        sample_status: Counter[str] = Counter()
        stop_sampling = asyncio.Event()

        async def sampler() -> None:
            for line in sample_lines:
                if stop_sampling.is_set():
                    return
                s = time.perf_counter()
                status, acc, _ = await post_lines(session, args.contributions, [line])
                e = time.perf_counter()
                sample_status[status] += 1
                if acc == 1:
                    samples.append((e, e - s))
                try:
                    await asyncio.wait_for(stop_sampling.wait(),
                                           max(0.0, args.sample_interval - (e - s)))
                except TimeoutError:
                    pass

        cpu0 = time.process_time()
        sampling = asyncio.create_task(sampler())
        tasks = []
        start = time.perf_counter() + 0.05
        for i, lines in enumerate(chunks):
            due = start + i * PAY_TICK
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(load_one(lines)))
        await asyncio.gather(*tasks)
        stop_sampling.set()
        await sampling
        pay_elapsed = max(load_last - start, 1e-9)
        client_cpu = time.process_time() - cpu0
        # Let the last samples reach the screens, then stop the readers.
        await asyncio.sleep(args.settle)
        parent_conn.send("stop")
        _, bases, seen, events, errors = await loop.run_in_executor(None, parent_conn.recv)
        child.join(10)

    pairs: list[float] = []
    worst: list[float] = []
    missing = 0
    for k, (t_resp, _) in enumerate(samples, start=1):
        per_client = []
        for base, trace in zip(bases, seen, strict=True):
            if base is None:
                continue
            hit = next((t for t, active in trace if active >= base + k), None)
            if hit is None:
                missing += 1
            else:
                per_client.append(hit - t_resp)
        pairs += per_client
        if per_client:
            worst.append(max(per_client))
    screen = latency_ms(pairs)
    screen_worst = latency_ms(worst)
    sample_req = latency_ms([lat for _, lat in samples])
    load_req = latency_ms(load_lat)
    print(f"payments: {len(load_lines)} lines in {len(chunks)} bulk requests of {chunk} every "
          f"{PAY_TICK:g} s (open-loop) over {pay_elapsed:.2f} s: "
          f"{len(load_lines) / pay_elapsed:.1f} lines/s (target ~{args.pay_rate:g}/s); "
          f"accepted {load_accepted}, rejected {load_rejected}; statuses "
          + ", ".join(f"{k} x{v}" for k, v in sorted(load_status.items())))
    print("  bulk request latency ms: " + "  ".join(f"{k} {v}" for k, v in load_req.items()))
    print(f"  sampled payments in {district}: {len(samples)} accepted, one every "
          f"{args.sample_interval:g} s; request latency ms: "
          + "  ".join(f"{k} {v}" for k, v in sample_req.items())
          + "; statuses " + ", ".join(f"{k} x{v}" for k, v in sorted(sample_status.items())))
    total_events = sum(events)
    print(f"  SSE: {live_clients} clients read {total_events} events over the run "
          f"({total_events / max(live_clients, 1):.0f} per client); errors {len(errors)}; "
          f"client (load generator) CPU {client_cpu:.2f} s")
    for e in errors[:3]:
        print(f"  e.g. {e}")
    s_p50, s_p99, s_max = (screen[k] / 1000 for k in ("p50", "p99", "max"))
    print(f"payment to screen s, over {len(pairs)} (sample, client) pairs: p50 {s_p50:.3f}  "
          f"p90 {screen['p90'] / 1000:.3f}  p99 {s_p99:.3f}  max {s_max:.3f}   "
          f"(target < {TARGET_SCREEN_S:g} s: p99 {_mark(s_p99, TARGET_SCREEN_S)}, max "
          f"{_mark(s_max, TARGET_SCREEN_S)}); "
          f"not seen {missing}")
    print(f"  each sample's slowest client s: p50 {screen_worst['p50'] / 1000:.3f}  "
          f"p99 {screen_worst['p99'] / 1000:.3f}  max {screen_worst['max'] / 1000:.3f}")
    return {
        "clients": args.clients, "clients_live": live_clients, "stream": stream_url,
        "sample_district": district, "pay_rate_target": args.pay_rate,
        "pay_lines": len(load_lines), "pay_lines_per_s": round(len(load_lines) / pay_elapsed, 1),
        "pay_accepted": load_accepted, "pay_rejected": load_rejected,
        "bulk_latency_ms": load_req, "samples": len(samples), "sample_latency_ms": sample_req,
        "screen_ms": screen, "screen_worst_client_ms": screen_worst, "not_seen": missing,
        "sse_events": total_events, "sse_errors": len(errors),
        "client_cpu_s": round(client_cpu, 2),
    }


# ----------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.coverage_api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--phases", default="region,list,sse",
                   help="comma-separated, of region, list, sse")
    p.add_argument("--rate", type=float, default=500.0, help="region reads a second")
    p.add_argument("--list-rate", type=float, default=500.0, help="list reads a second")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per read phase")
    p.add_argument("--region", default="12.75")
    p.add_argument("--connections", type=int, default=64, help="reads in flight at most")
    p.add_argument("--request-timeout", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--stream-parent", default="12.75")
    p.add_argument("--sample-district", default="12.75.03")
    p.add_argument("--pay-rate", type=float, default=500.0, help="payment lines a second")
    p.add_argument("--pay-duration", type=float, default=20.0)
    p.add_argument("--sample-interval", type=float, default=0.5)
    p.add_argument("--settle", type=float, default=5.0,
                   help="seconds to keep reading the streams after the last payment")
    p.add_argument("--registration", default="http://127.0.0.1:8001")
    p.add_argument("--contributions", default="http://127.0.0.1:8002")
    p.add_argument("--coverage", default="http://127.0.0.1:8004")
    p.add_argument("--api-key", default="dev-bootstrap-key")
    p.add_argument("--kafka", default="127.0.0.1:9092")
    p.add_argument("--counter-timeout", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=random.randrange(1_000_000))
    args = p.parse_args(argv)
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    if bad := set(args.phases) - {"region", "list", "sse"}:
        p.error(f"unknown phases: {', '.join(sorted(bad))}")
    if not args.sample_district.startswith(args.stream_parent + "."):
        p.error("--sample-district must be a child of --stream-parent")
    for flag in ("registration", "contributions", "coverage"):
        setattr(args, flag, check_local(getattr(args, flag), f"--{flag}"))
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    machine = calibration_s()
    print(f"calibration: {machine:.3f} s for a fixed Python loop (lower is a faster machine)")
    summary: dict[str, Any] = {
        "bench": "coverage_api", "calibration_s": machine, "phases": args.phases,
        "rate": args.rate, "list_rate": args.list_rate, "duration_s": args.duration,
        "clients": args.clients, "pay_rate": args.pay_rate, "pay_duration_s": args.pay_duration,
        "sample_interval_s": args.sample_interval}
    connector = aiohttp.TCPConnector(limit=args.connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        if "region" in args.phases:
            r = await open_loop(session, f"{args.coverage}/v1/coverage/regions/{args.region}",
                                args.rate, args.duration, args.request_timeout)
            print_reads(f"region {args.region}", r, TARGET_REGION_P99_MS)
            r.pop("examples")
            summary["region"] = r
        if "list" in args.phases:
            url = f"{args.coverage}/v1/coverage/regions?level=regency"
            async with session.get(url) as resp:
                count = len((await resp.json())["items"])
            r = await open_loop(session, url, args.list_rate, args.duration,
                                args.request_timeout)
            print_reads(f"list of {count} regencies", r, TARGET_LIST_P99_MS)
            r.pop("examples")
            r["items"] = count
            summary["list"] = r
    if "sse" in args.phases:
        summary["sse"] = await sse_phase(args)
    return summary


def main(argv: list[str] | None = None) -> None:
    run_and_print(main_async(parse_args(argv)))


if __name__ == "__main__":
    main()
