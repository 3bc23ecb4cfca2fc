"""How long one registration takes to show in the live coverage counters, on a quiet stack.

    python -m bench.latency [--n 20] [--village 12.75.01.1001] [--api-key dev-bootstrap-key]

Registers one synthetic worker at a time and polls the village's regency every 10 ms until
its `registered` counter has moved; prints each delay and the median and maximum.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import httpx

from bench.registrations import check_local, generate_workers, load_villages


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--village", default="12.75.01.1001")
    p.add_argument("--registration", default="http://127.0.0.1:8001")
    p.add_argument("--coverage", default="http://127.0.0.1:8004")
    p.add_argument("--api-key", default="dev-bootstrap-key")
    args = p.parse_args()
    registration = check_local(args.registration, "--registration")
    coverage = check_local(args.coverage, "--coverage")
    regency = ".".join(args.village.split(".")[:2])
    villages = [v for v in load_villages(regency) if v[0] == args.village]
    workers = generate_workers(args.n, villages, random.Random(time.time_ns()))
    delays = []
    with httpx.Client(timeout=10) as client:
        def registered() -> int:
            return client.get(f"{coverage}/v1/coverage/regions/{regency}").json()["registered"]

        for worker in workers:
            before = registered()
            response = client.post(f"{registration}/v1/participants", json=worker,
                                   headers={"Authorization": f"Bearer {args.api_key}"})
            answered = time.perf_counter()
            if response.status_code != 201:
                print(f"skipped: HTTP {response.status_code}")
                continue
            while registered() <= before and time.perf_counter() - answered < 30:
                time.sleep(0.01)
            delays.append(time.perf_counter() - answered)
            time.sleep(0.3)
    print("delays s:", " ".join(f"{d:.3f}" for d in delays))
    print(f"median {statistics.median(delays):.3f} s, max {max(delays):.3f} s "
          f"after the 201, over {len(delays)} registrations")


if __name__ == "__main__":
    main()
