"""A small demo load for a running local stack: python -m deploy.local.demo [--count 300]

1. Workforce figures (the UCJ denominator) on the coverage service: Binjai's real one and
   synthetic ones for a few other Sumatera Utara regions; and the published UCJ targets
   (Binjai, Sumatera Utara, the national RPJMN) as one CSV import (POST /v1/targets/import).
2. A few synthetic employers (a private company, a city agency (OPD), a regional enterprise
   (BUMD), a village government) with the workers they declare (POST /v1/employers), then about
   300 synthetic registrations in villages of province 12 (a third in Kota Binjai) with valid
   synthetic NIKs, the wage earners among them naming those employers, through
   POST /v1/participants/bulk on the registration service.
3. Half of them paid up for the current month by one synthetic city-budget batch
   (POST /v1/contributions/bulk, payer government, funding code SG), so they count as active.
4. Who pays and who is missing (deploy/local/demo_who_pays.py): Kota Tanjungbalai's funded
   programme of 690 workers (half paid), Serdang Bedagai's 35 OPDs (12 with covered staff, 904
   in all), registrations by PERISAI agents and village offices.

URLs and the API key come from the stack's state file (.run/stack.json), so a stack on other
ports (UCJ_PORT_BASE) works too. NIK serials and birth dates are random, so running the demo
again adds participants instead of being refused as duplicates.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time
from datetime import date, timedelta
from typing import Any

import httpx

from deploy.local import demo_who_pays
from deploy.local.stack import DEFAULT_API_KEY, REPO, load_state, run_dir

VILLAGES_CSV = REPO / "shared" / "data" / "regions" / "villages.csv"
BINJAI = "12.75"

WORKFORCE = {
    BINJAI: (132826, "BPJS Ketenagakerjaan Cabang Binjai, Oct 2024 (real)"),
    "12.71": (1_215_000, "synthetic demo figure (Kota Medan)"),
    "12.76": (88_000, "synthetic demo figure (Kota Tebing Tinggi)"),
    "12.74": (79_000, "synthetic demo figure (Kota Tanjungbalai)"),
    "12": (7_400_000, "synthetic demo figure (Provinsi Sumatera Utara)"),
}

# The published UCJ targets (shared/DOMAIN.md), in percent: (code, year, ucj_target, source).
TARGETS = [
    (BINJAI, 2024, "32.48", "Kota Binjai UCJ target 2024"),
    (BINJAI, 2025, "37.10", "Kota Binjai UCJ target 2025"),
    ("12", 2025, "51.08", "Provinsi Sumatera Utara UCJ target 2025"),
    ("ID", 2025, "32.15", "RPJMN 2025-2029 national target"),
]

FIRST = {"M": ["Ahmad", "Budi", "Rizky", "Dedi", "Joko", "Hendra", "Fajar", "Agus", "Irwan"],
         "F": ["Siti", "Dewi", "Rina", "Putri", "Nurul", "Lestari", "Wulan", "Intan", "Sari"]}
LAST = ["Siregar", "Nasution", "Lubis", "Harahap", "Sitompul", "Simanjuntak", "Ginting",
        "Tarigan", "Sembiring", "Pane", "Hasibuan", "Batubara"]
# (name, kind, region, declared workers in 2025): synthetic employers of Sumatera Utara.
EMPLOYERS = [
    ("PT Sinar Binjai Plastik (synthetic)", "private", "12.75.01", 420),
    ("Dinas Kebersihan Kota Binjai (synthetic)", "opd", "12.75", 310),
    ("PDAM Tirtanadi (synthetic)", "bumd", "12.71", 1_250),
    ("Pemerintah Desa Limau Manis (synthetic)", "village_gov", "12.07.02.2003", 12),
    ("CV Karya Medan Mandiri (synthetic)", "private", "12.71.01", 85),
]

OCCUPATIONS = {"BPU": ["pedagang", "ojek daring", "petani", "nelayan", "penjahit", "tukang"],
               "PU": ["operator produksi", "staf administrasi", "kasir", "teknisi", "satpam"]}


def villages_of_province(code: str = "12") -> tuple[list[str], list[str]]:
    """(villages of Kota Binjai, other villages of the province)."""
    binjai, others = [], []
    with open(VILLAGES_CSV, newline="") as f:
        for row in csv.DictReader(f):
            if row["code"].startswith(BINJAI + "."):
                binjai.append(row["code"])
            elif row["code"].startswith(code + "."):
                others.append(row["code"])
    return binjai, others


def synthetic_participant(village: str, rng: random.Random, today: date,
                          employers: list[str]) -> dict[str, Any]:
    sex = rng.choice("MF")
    birth = today - timedelta(days=rng.randint(18 * 365, 55 * 365))
    day = birth.day + (40 if sex == "F" else 0)  # the NIK adds 40 to a woman's birth day
    district = "".join(village.split(".")[:3])  # 12.75.01.1001 -> 127501
    nik = f"{district}{day:02d}{birth.month:02d}{birth.year % 100:02d}{rng.randint(1, 9999):04d}"
    segment = "BPU" if rng.random() < 0.6 else "PU"
    row: dict[str, Any] = {
        "nik": nik,
        "full_name": f"{rng.choice(FIRST[sex])} {rng.choice(LAST)} (synthetic)",
        "birth_date": birth.isoformat(),
        "sex": sex,
        "region_code": village,
        "segment": segment,
        "occupation": rng.choice(OCCUPATIONS[segment]),
    }
    if segment == "BPU":
        row |= {"employer_id": None, "monthly_income": rng.randrange(1_000_000, 3_000_001, 50_000),
                "programs": rng.choice([["JKK", "JKM"], ["JKK", "JKM", "JHT"]])}
    else:
        row |= {"employer_id": rng.choice(employers),
                "monthly_income": rng.randrange(3_000_000, 8_000_001, 100_000),
                "programs": ["JKK", "JKM", "JHT", "JP"]}
    return row


def targets_csv() -> bytes:
    lines = ["code,year,ucj_target,source"]
    lines += [f"{code},{year},{percent},{source}" for code, year, percent, source in TARGETS]
    return ("\n".join(lines) + "\n").encode()


def pay_for_some(http: httpx.Client, contributions: str, ids: list[str],
                 rng: random.Random) -> int:
    """A government batch paying what each of these workers owes now (GET /v1/dues), once the
    contributions service has learnt them from the registration events."""
    lines = []
    for pid in ids:
        for _ in range(100):  # the events take a moment to arrive
            r = http.get(f"{contributions}/v1/dues/{pid}?months=1")
            if r.status_code != 404:
                break
            time.sleep(0.1)
        if r.status_code != 200:
            continue
        owed = r.json()
        lines.append({"payment_ref": f"DEMO-{rng.getrandbits(48):012x}", "participant_id": pid,
                      "first_period": owed["first_period"], "months": 1,
                      "amount": owed["amount"], "payer": "government", "funding_code": "SG"})
    if not lines:
        return 0
    r = http.post(f"{contributions}/v1/contributions/bulk", json={"contributions": lines})
    if r.status_code != 200:
        print(f"POST /v1/contributions/bulk: {r.status_code} {r.text[:300]}", file=sys.stderr)
        return 0
    return int(r.json()["accepted"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m deploy.local.demo")
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--seed", type=int, default=None, help="repeatable data (default: random)")
    args = ap.parse_args(argv)

    state = load_state(run_dir())
    services = state.get("services", {})
    registration = services.get("registration", "http://127.0.0.1:8001")
    coverage = services.get("coverage", "http://127.0.0.1:8004")
    key = state.get("api_key") or os.environ.get("UCJ_BOOTSTRAP_API_KEY") or DEFAULT_API_KEY
    auth = {"Authorization": f"Bearer {key}"}
    rng = random.Random(args.seed)

    with httpx.Client(headers=auth, timeout=60) as http:
        for code, (workforce, source) in WORKFORCE.items():
            r = http.put(f"{coverage}/v1/workforce/{code}",
                         json={"workforce": workforce, "year": 2024, "source": source})
            if r.status_code != 200:
                print(f"PUT /v1/workforce/{code}: {r.status_code} {r.text[:300]}", file=sys.stderr)
                return 1
        print(f"workforce set for {', '.join(WORKFORCE)}")
        r = http.post(f"{coverage}/v1/targets/import", content=targets_csv(),
                      headers={"content-type": "text/csv"})
        if r.status_code != 200:
            print(f"POST /v1/targets/import: {r.status_code} {r.text[:300]}", file=sys.stderr)
            return 1
        print(f"UCJ targets: {r.json()['imported']} loaded (coverage answers show the current "
              "year's)")

        employers = []
        for name, kind, region, declared in EMPLOYERS:
            r = http.post(f"{registration}/v1/employers", json={
                "name": name, "kind": kind, "region_code": region,
                "declared_workers": {"year": 2025, "count": declared, "source": "synthetic"}})
            if r.status_code != 201:
                print(f"POST /v1/employers: {r.status_code} {r.text[:300]}", file=sys.stderr)
                return 1
            employers.append(r.json()["employer_id"])
        print(f"employers: {len(employers)} registered")
        binjai, others = villages_of_province()
        today = date.today()
        rows = [synthetic_participant(rng.choice(binjai if i % 3 == 0 else others), rng, today,
                                      employers)
                for i in range(args.count)]
        accepted, rejected, ids = 0, [], []
        for start in range(0, len(rows), 100):
            r = http.post(f"{registration}/v1/participants/bulk",
                          json={"participants": rows[start : start + 100]})
            if r.status_code not in (200, 201, 207):
                print(f"POST /v1/participants/bulk: {r.status_code} {r.text[:300]}",
                      file=sys.stderr)
                return 1
            body = r.json()
            accepted += body.get("accepted", 0)
            rejected += body.get("rejected", [])
            ids += [result["participant_id"] for result in body.get("results", [])]
        in_binjai = sum(1 for row in rows if row["region_code"].startswith(BINJAI + "."))
        print(f"registrations: {accepted} accepted, {len(rejected)} rejected "
              f"({in_binjai} sent for Kota Binjai)")
        for rej in rejected[:5]:
            print(f"  rejected row {rej.get('index')}: {rej.get('errors')}")
        contributions = services.get("contributions", "http://127.0.0.1:8002")
        paid = pay_for_some(http, contributions, ids[::2], rng)
        print(f"contributions: {paid} workers paid up for this month (a synthetic city-budget "
              "batch), so they count as active")

        who = demo_who_pays.seed(http, registration, contributions, binjai + others, rng)
        print(f"who pays: Kota Tanjungbalai's programme {who.enrolled} enrolled, "
              f"{who.programme_paid} paid this month; {len(who.opds)} OPDs of Kabupaten Serdang "
              f"Bedagai, {who.opd_staff_paid} non-ASN staff of 12 of them paid; registrations "
              f"by channel {who.by_channel}")
        for problem in who.problems[:10]:
            print(f"  {problem}", file=sys.stderr)

    print("Coverage is counted asynchronously (outbox relay -> Kafka -> coverage worker); try:")
    print(f"  curl {coverage}/v1/coverage/regions/{BINJAI}")
    print(f"  curl '{coverage}/v1/coverage/regions?level=regency&parent=12'")
    print(f"  curl '{coverage}/v1/coverage/employers?region=12.18&kind=opd&covered=none'")
    print(f"  curl '{coverage}/v1/coverage/programmes?region=12.74'")
    print(f"  curl '{coverage}/v1/coverage/channels?region=12'")
    print(f"  dashboard: {coverage}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
