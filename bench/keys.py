"""How fast one partner credential reaches every service, and its revocation.

    python -m bench.keys [--rounds 20] [--registration http://127.0.0.1:8001]
        [--contributions http://127.0.0.1:8002] [--coverage http://127.0.0.1:8004]
        [--api-key dev-bootstrap-key]

Against a running stack (`./ucj up`). Each round makes a key on one service (in turn), polls
the other two every 10 ms until they accept it, then revokes it on a third and polls all three
until each refuses it (401). Prints, per measure, min / median / max seconds; last line a JSON
summary. A measuring tool, not a test: it asserts nothing and only targets this machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

PROBES = {  # a request each key's scopes cover, and the status that says "authenticated"
    "registration": ("GET", "/v1/participants/00000000-0000-4000-8000-000000000000", 404),
    "contributions": ("POST", "/v1/contributions", 422),
    "coverage": ("PUT", "/v1/workforce/12.75", 422),
}
SCOPES = ["participants:read", "contributions:write", "workforce:write"]


def until(check, limit: float = 30.0) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > limit:
            return float("inf")
        time.sleep(0.01)
    return time.monotonic() - started


def status(client: httpx.Client, base: str, service: str, key: str) -> int:
    method, path, _ = PROBES[service]
    return client.request(method, base + path, json={},
                          headers={"Authorization": f"Bearer {key}"}).status_code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--registration", default="http://127.0.0.1:8001")
    parser.add_argument("--contributions", default="http://127.0.0.1:8002")
    parser.add_argument("--coverage", default="http://127.0.0.1:8004")
    parser.add_argument("--api-key", default="dev-bootstrap-key")
    args = parser.parse_args()
    urls = {"registration": args.registration, "contributions": args.contributions,
            "coverage": args.coverage}
    names = list(urls)
    admin = {"Authorization": f"Bearer {args.api_key}"}
    known, refused = [], []
    with httpx.Client(timeout=10) as client:
        for n in range(args.rounds):
            maker, revoker = names[n % 3], names[(n + 2) % 3]
            made = client.post(urls[maker] + "/v1/api-keys", headers=admin, json={
                "name": f"bench-{n}", "scopes": SCOPES, "requests_per_minute": 100_000}).json()
            key = made["key"]
            known.append(until(lambda k=key: all(
                status(client, urls[s], s, k) == PROBES[s][2] for s in names)))
            client.delete(f"{urls[revoker]}/v1/api-keys/{made['id']}", headers=admin)
            refused.append(until(lambda k=key: all(
                status(client, urls[s], s, k) == 401 for s in names)))

    def line(label: str, values: list[float]) -> dict[str, float]:
        figures = {"min": min(values), "median": statistics.median(values), "max": max(values)}
        print(f"{label}: " + " / ".join(f"{v:.3f}" for v in figures.values()) + " s")
        return figures

    summary = {"rounds": args.rounds,
               "known_everywhere": line("a new key accepted by all three services", known),
               "refused_everywhere": line("a revoked key refused by all three services",
                                          refused)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
