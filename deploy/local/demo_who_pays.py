"""The demo's "who pays and who is missing" (issue 11), over HTTP only, for a running stack:

- Kota Tanjungbalai budgets contributions for 690 informal (BPU) workers this year: a funded
  programme (APBD, funding code SG) of quota 690, its 690 workers registered by the city
  (channel `pemda`) and enrolled, half of them (345) paid this month from its budget.
- Kabupaten Serdang Bedagai has 35 regional agencies (OPD) with the non-ASN staff they declare;
  904 of those staff, in 12 of the OPDs, are registered (channel `employer`, wage earners of
  their OPD) and paid: the other 23 OPDs have none covered.
- A few PERISAI agents and village offices register workers door to door (channels `agent` and
  `village_office`); the agents collect their first month's dues.

Used by deploy/local/demo.py and by tests/e2e/test_who_pays_demo.py, which checks the figures
through the coverage API.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import httpx

TANJUNGBALAI = "12.74"
SERDANG_BEDAGAI = "12.18"
PROGRAMME_QUOTA = 690
PROGRAMME_PAID = 345
BPU_MONTHLY = 16_800  # JKK 1% of Rp 1,000,000 + JKM Rp 6,800 (DOMAIN.md)
OPD_NAMES = [
    "Dinas Pendidikan", "Dinas Kesehatan", "Dinas Pekerjaan Umum dan Penataan Ruang",
    "Dinas Perumahan dan Kawasan Permukiman", "Satuan Polisi Pamong Praja", "Dinas Sosial",
    "Dinas Tenaga Kerja", "Dinas Pemberdayaan Perempuan dan Perlindungan Anak",
    "Dinas Ketahanan Pangan", "Dinas Lingkungan Hidup", "Dinas Kependudukan dan Pencatatan Sipil",
    "Dinas Pemberdayaan Masyarakat dan Desa", "Dinas Pengendalian Penduduk dan KB",
    "Dinas Perhubungan", "Dinas Komunikasi dan Informatika", "Dinas Koperasi dan UKM",
    "Dinas Penanaman Modal dan PTSP", "Dinas Kepemudaan dan Olahraga", "Dinas Pariwisata",
    "Dinas Perpustakaan dan Kearsipan", "Dinas Perikanan", "Dinas Pertanian",
    "Dinas Perdagangan dan Perindustrian", "Badan Perencanaan Pembangunan Daerah",
    "Badan Pengelolaan Keuangan dan Aset Daerah", "Badan Pendapatan Daerah",
    "Badan Kepegawaian dan Pengembangan SDM", "Badan Penanggulangan Bencana Daerah",
    "Badan Kesatuan Bangsa dan Politik", "Inspektorat", "Sekretariat Daerah",
    "Sekretariat DPRD", "RSUD Sultan Sulaiman", "Dinas Pemadam Kebakaran",
    "Dinas Kebudayaan",
]
# Covered non-ASN staff of the first 12 OPDs: 904 in all (the regency the issue cites).
OPD_COVERED = [180, 152, 110, 85, 74, 66, 58, 49, 41, 35, 30, 24]
AGENTS = ["PERISAI-SB-001", "PERISAI-SB-002", "PERISAI-TB-001"]


@dataclass
class WhoPays:
    programme_id: str | None = None
    enrolled: int = 0
    programme_paid: int = 0
    opds: list[str] = field(default_factory=list)
    opd_staff_paid: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def villages_of(code: str, villages: list[str]) -> list[str]:
    return [v for v in villages if v.startswith(code + ".")]


def worker(village: str, rng: random.Random, today: date, **fields: Any) -> dict[str, Any]:
    """A synthetic worker with a valid synthetic NIK (never a real person's)."""
    sex = rng.choice("MF")
    birth = today - timedelta(days=rng.randint(20 * 365, 50 * 365))
    day = birth.day + (40 if sex == "F" else 0)
    district = "".join(village.split(".")[:3])
    nik = f"{district}{day:02d}{birth.month:02d}{birth.year % 100:02d}{rng.randint(1, 9999):04d}"
    row = {"nik": nik, "full_name": f"Pekerja Demo {rng.randint(1, 10**6)} (synthetic)",
           "birth_date": birth.isoformat(), "sex": sex, "region_code": village,
           "segment": "BPU", "employer_id": None, "occupation": "pedagang",
           "monthly_income": 1_000_000, "programs": ["JKK", "JKM"]}
    return row | fields


LEARNING_SECONDS = 60.0  # how long a worker registered a moment ago may take to get there


def not_learnt_yet(rejected: dict[str, Any]) -> bool:
    """Whether a bulk answer's refused row was refused only because contributions has not
    learnt the worker yet (its registration is on the way): worth sending again."""
    return [e.get("message") for e in rejected.get("errors", [])] == [
        "no participant has this id"]


def post_in_chunks(http: httpx.Client, url: str, key: str, rows: list[dict[str, Any]],
                   size: int, result: WhoPays, what: str) -> list[tuple[int, dict[str, Any]]]:
    """POST `{key: rows}` in chunks of `size`: (the chunk's first index, its answer) of each
    chunk taken; a refused chunk is noted in the problems."""
    answers = []
    for start in range(0, len(rows), size):
        r = http.post(url, json={key: rows[start:start + size]})
        if r.status_code != 200:
            result.problems.append(f"POST {what}: {r.status_code} {r.text[:200]}")
            continue
        answers.append((start, r.json()))
    return answers


def post_until_learnt(http: httpx.Client, url: str, key: str, rows: list[dict[str, Any]],
                      size: int, result: WhoPays, what: str) -> int:
    """POST the rows in chunks; rows refused only because contributions has not learnt their
    worker yet go again a moment later (their events are on the way). How many were taken."""
    taken, deadline = 0, time.monotonic() + LEARNING_SECONDS
    while rows:
        again = []
        for start, body in post_in_chunks(http, url, key, rows, size, result, what):
            taken += int(body["accepted"])
            for rejected in body["rejected"]:
                if not_learnt_yet(rejected):
                    again.append(rows[start + rejected["index"]])
                elif len(result.problems) < 10:
                    result.problems.append(f"{what} refused: {rejected['errors']}")
        if again and time.monotonic() > deadline:
            result.problems.append(f"{what}: {len(again)} workers never reached contributions")
            break
        if again:
            time.sleep(0.3)
        rows = again
    return taken


def register(http: httpx.Client, registration: str, rows: list[dict[str, Any]],
             result: WhoPays) -> dict[int, str]:
    """The participant id of each row registered, by the row's index."""
    ids: dict[int, str] = {}
    for start, body in post_in_chunks(http, f"{registration}/v1/participants/bulk",
                                      "participants", rows, 500, result,
                                      "/v1/participants/bulk"):
        for rejected in body["rejected"][:3]:
            result.problems.append(f"registration refused: {rejected['errors']}")
        for x in body["results"]:
            ids[start + x["index"]] = x["participant_id"]
            channel = rows[start + x["index"]].get("channel", "partner_api")
            result.by_channel[channel] = result.by_channel.get(channel, 0) + 1
    return ids


def dues(http: httpx.Client, contributions: str, pid: str, wait: float = LEARNING_SECONDS
         ) -> dict[str, Any] | None:
    """What the worker owes for one month, once contributions has learnt the worker."""
    deadline = time.monotonic() + wait
    while True:
        r = http.get(f"{contributions}/v1/dues/{pid}?months=1")
        if r.status_code == 200:
            return r.json()
        if r.status_code not in (404, 503) or time.monotonic() > deadline:
            return None
        time.sleep(0.2)


def pay(http: httpx.Client, contributions: str, ids: list[str], rng: random.Random,
        result: WhoPays, **line: Any) -> int:
    """One bulk payment of each worker's next month. The workers are alike (one segment,
    income and set of programmes, registered the same day): the first one's dues are theirs."""
    if not ids:
        return 0
    owed = dues(http, contributions, ids[0])
    if owed is None:
        result.problems.append(f"no dues for a worker ({ids[0][:8]}…)")
        return 0
    lines = [{"payment_ref": f"DEMO-{rng.getrandbits(48):012x}", "participant_id": pid,
              "first_period": owed["first_period"], "months": 1, "amount": owed["amount"],
              **line} for pid in ids]
    return post_until_learnt(http, f"{contributions}/v1/contributions/bulk", "contributions",
                             lines, 1000, result, "/v1/contributions/bulk")


def seed(http: httpx.Client, registration: str, contributions: str, villages: list[str],
         rng: random.Random, today: date | None = None) -> WhoPays:
    today = today or date.today()
    result = WhoPays()
    programme_workers(http, registration, contributions, villages, rng, today, result)
    opd_staff(http, registration, contributions, villages, rng, today, result)
    door_to_door(http, registration, contributions, villages, rng, today, result)
    return result


def programme_workers(http: httpx.Client, registration: str, contributions: str,
                      villages: list[str], rng: random.Random, today: date,
                      result: WhoPays) -> None:
    """Kota Tanjungbalai's city-budget programme: 690 places, all taken, half paid."""
    r = http.post(f"{contributions}/v1/programmes", json={
        "name": f"Perlindungan Pekerja Rentan Kota Tanjungbalai {today.year} (APBD, demo)",
        "funder_region": TANJUNGBALAI, "year": today.year, "quota": PROGRAMME_QUOTA,
        "budget_rupiah": PROGRAMME_QUOTA * BPU_MONTHLY * 12, "funding_code": "SG",
        "programs": ["JKK", "JKM"], "months": 12, "first_period": f"{today.year}-01"})
    if r.status_code != 201:
        result.problems.append(f"POST /v1/programmes: {r.status_code} {r.text[:200]}")
        return
    result.programme_id = r.json()["programme_id"]
    places = villages_of(TANJUNGBALAI, villages)
    ids = list(register(http, registration, [
        worker(rng.choice(places), rng, today, channel="pemda")
        for _ in range(PROGRAMME_QUOTA)], result).values())
    result.enrolled = post_until_learnt(
        http, f"{contributions}/v1/programmes/{result.programme_id}/enrolments", "enrolments",
        [{"participant_id": pid} for pid in ids], 1000, result, "enrolments")
    result.programme_paid = pay(http, contributions, ids[:PROGRAMME_PAID], rng, result,
                                payer="government", funding_code="SG",
                                programme_id=result.programme_id)


def opd_staff(http: httpx.Client, registration: str, contributions: str, villages: list[str],
              rng: random.Random, today: date, result: WhoPays) -> None:
    """Serdang Bedagai's 35 OPDs; 904 non-ASN staff of 12 of them registered and paid."""
    for n, name in enumerate(OPD_NAMES):
        declared = OPD_COVERED[n] + rng.randint(0, 40) if n < len(OPD_COVERED) \
            else rng.randint(5, 60)
        r = http.post(f"{registration}/v1/employers", json={
            "name": f"{name} Kabupaten Serdang Bedagai (demo)", "kind": "opd",
            "region_code": SERDANG_BEDAGAI,
            "declared_workers": {"year": today.year, "count": declared,
                                 "source": "BKD, data non-ASN (demo)"}})
        if r.status_code != 201:
            result.problems.append(f"POST /v1/employers: {r.status_code} {r.text[:200]}")
            return
        result.opds.append(r.json()["employer_id"])
    places = villages_of(SERDANG_BEDAGAI, villages)
    rows = [worker(rng.choice(places), rng, today, segment="PU", employer_id=opd,
                   occupation="tenaga non-ASN", monthly_income=2_800_000,
                   programs=["JKK", "JKM"], channel="employer")
            for opd, staff in zip(result.opds, OPD_COVERED, strict=False)
            for _ in range(staff)]
    ids = list(register(http, registration, rows, result).values())
    result.opd_staff_paid = pay(http, contributions, ids, rng, result, payer="employer")


def door_to_door(http: httpx.Client, registration: str, contributions: str,
                 villages: list[str], rng: random.Random, today: date, result: WhoPays) -> None:
    """PERISAI agents and village offices (lurah, kepling) register informal workers; the
    agents collect the first month of those they registered."""
    places = villages_of(SERDANG_BEDAGAI, villages) + villages_of(TANJUNGBALAI, villages)
    by_agent = [worker(rng.choice(places), rng, today, channel="agent", agent_id=agent)
                for agent in AGENTS for _ in range(rng.randint(8, 20))]
    offices = []
    for _ in range(25):
        village = rng.choice(places)
        offices.append(worker(village, rng, today, channel="village_office",
                              office_village=village))
    partners = [worker(rng.choice(places), rng, today) for _ in range(20)]
    agent_ids = register(http, registration, by_agent, result)
    register(http, registration, offices + partners, result)
    agent_of = {pid: by_agent[index]["agent_id"] for index, pid in agent_ids.items()}
    for agent in AGENTS:
        theirs = [pid for pid, a in agent_of.items() if a == agent]
        pay(http, contributions, theirs[: len(theirs) * 2 // 3], rng, result, payer="self",
            agent_id=agent)
