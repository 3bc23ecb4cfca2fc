"""The registration use cases (services/registration/handlers.py) over an in-memory
RegistrationUnit: registering one worker and a bulk (duplicate NIKs, Idempotency-Key replay and
reuse), changing a worker (ownership, the diff), reading (the PII audit), granting, looking a
NIK up. No Kafka, no PostgreSQL: the same flows on a real database are
tests/integration/test_registration_api.py and test_races.py.

Workers: Siti Aminah (BPU, born 5 August 1990, so her NIK's day is 05 + 40 = 45) with serials
0001, 0002, ...; registered on 15 January 2026.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import orjson
import pytest

from services.registration import domain, employers, handlers
from services.registration.handlers import (
    EmployerRecord,
    IdempotencyKey,
    KeyUse,
    Outcome,
    Participant,
    Reply,
)
from services.registration.schemas import ParticipantIn, validate_row
from shared.auth import ALL_SCOPES, Caller
from shared.problems import Problem

TODAY = date(2026, 1, 15)
PARTNER = "partner-a"
OTHER = "partner-b"
ROUTE = "/v1/participants"
MOVED_TO = "34.71.01.1001"  # Kricak, Kota Yogyakarta

A = Caller("key-a", frozenset({"participants:read", "participants:write"}), PARTNER)
B = Caller("key-b", frozenset({"participants:read", "participants:write"}), OTHER)
ADMIN = Caller("bootstrap", frozenset({ALL_SCOPES}), "bootstrap")


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    participant_id: uuid.UUID
    changed: tuple[str, ...] = ()


class FakeRegistrationUnit:
    """handlers.RegistrationUnit in memory, with the meaning of store.PgRegistrationUnit's SQL.
    One fake is the database across transactions: the tests read what it holds after each
    call."""

    def __init__(self) -> None:
        self.participants: dict[uuid.UUID, dict[str, Any]] = {}
        self.events: list[Event] = []
        self.keys: dict[tuple[str, str], tuple[bytes, Reply | None]] = {}
        self.grants: set[tuple[uuid.UUID, str]] = set()
        self.api_keys: dict[str, str] = {}  # key id -> its partner
        self.pii_reads: list[tuple[str, uuid.UUID, str]] = []
        self.registered_batches: list[int] = []  # the size of every register call
        self.employers: dict[uuid.UUID, dict[str, Any]] = {}
        self.employer_lookups: list[set[str]] = []  # the ids of every employer_kinds call
        self.employer_events: list[tuple[str, uuid.UUID, int]] = []  # (type, id, sequence)
        self._kpj_sequence = 0

    # --- RegistrationUnit ---
    async def register(self, rows: Sequence[ParticipantIn], *, owner: str,
                       today: date) -> list[Outcome]:
        self.registered_batches.append(len(rows))
        outcomes = []
        for row in rows:  # in order: a NIK earlier in the batch is live for the later rows
            live = self._live(row.nik)
            if live is not None:
                outcomes.append(Outcome(live, None, False))
                continue
            self._kpj_sequence += 1
            pid, kpj = uuid.uuid4(), domain.kpj_for(self._kpj_sequence)
            self.participants[pid] = {
                **row.model_dump(), "participant_id": pid, "kpj": kpj, "status": "registered",
                "version": 1, "registered_by": owner, "registered_on": today}
            self.events.append(Event("participant.registered", pid))
            outcomes.append(Outcome(pid, kpj, True))
        return outcomes

    async def participant(self, participant_id: uuid.UUID, *,
                          lock: bool = False) -> Participant | None:
        found = self.participants.get(participant_id)
        return dict(found) if found is not None else None

    async def is_granted(self, participant_id: uuid.UUID, partner_id: str) -> bool:
        return (participant_id, partner_id) in self.grants

    async def change(self, participant: Participant, changes: dict[str, Any]) -> Participant:
        pid = participant["participant_id"]
        stored = self.participants[pid]
        stored.update({k: list(v) if k == "programs" else v for k, v in changes.items()})
        stored["version"] += 1
        self.events.append(Event("participant.changed", pid, tuple(sorted(changes))))
        return dict(stored)

    async def claim_idempotency_key(self, owner: str, key: str,
                                    request_hash: bytes) -> KeyUse | None:
        earlier = self.keys.get((owner, key))
        if earlier is None:
            self.keys[(owner, key)] = (request_hash, None)
            return None
        first_hash, reply = earlier
        assert reply is not None, "a key is saved with its reply in the same transaction"
        return KeyUse(first_hash, reply)

    async def save_reply(self, owner: str, key: str, reply: Reply) -> None:
        self.keys[(owner, key)] = (self.keys[(owner, key)][0], reply)

    async def audit_pii_read(self, key_id: str, participant_id: uuid.UUID,
                             reason: str) -> None:
        self.pii_reads.append((key_id, participant_id, reason))

    async def partner_of(self, key_id: str) -> str:
        return self.api_keys.get(key_id, key_id)

    async def grant(self, participant_id: uuid.UUID, partner_id: str,
                    granted_by: str) -> None:
        self.grants.add((participant_id, partner_id))

    async def live_participant_by_nik(self, nik: str) -> uuid.UUID | None:
        return self._live(nik)

    async def employer_kinds(self, employer_ids: Collection[str]) -> dict[str, str]:
        self.employer_lookups.append(set(employer_ids))
        return {str(eid): e["kind"] for eid, e in self.employers.items()
                if str(eid) in employer_ids}

    async def add_employer(self, employer: employers.Employer, *,
                           owner: str) -> tuple[EmployerRecord | None, uuid.UUID | None]:
        same_npp = next((eid for eid, e in self.employers.items()
                         if employer.npp is not None and e["npp"] == employer.npp), None)
        if same_npp is not None:
            return None, same_npp
        eid = uuid.uuid4()
        self.employers[eid] = {
            "employer_id": eid, "name": employer.name, "kind": employer.kind,
            "region_code": employer.region_code, "npp": employer.npp,
            "declared": employer.declared, "version": 1, "registered_on": TODAY}
        self.employer_events.append(("employer.registered", eid, 1))
        return dict(self.employers[eid]), None

    async def employer(self, employer_id: uuid.UUID, *,
                       lock: bool = False) -> EmployerRecord | None:
        found = self.employers.get(employer_id)
        return dict(found) if found is not None else None

    async def change_declared(self, employer: EmployerRecord,
                              declared: tuple[employers.Declared, ...]) -> EmployerRecord:
        stored = self.employers[employer["employer_id"]]
        stored["declared"] = declared
        stored["version"] += 1
        self.employer_events.append(("employer.changed", stored["employer_id"],
                                     stored["version"]))
        return dict(stored)

    async def employers_page(self, *, region: str | None, kind: str | None, limit: int,
                             after: uuid.UUID | None) -> list[EmployerRecord]:
        chosen = sorted((e for e in self.employers.values()
                         if (region is None or employers.in_region(e["region_code"], region))
                         and (kind is None or e["kind"] == kind)
                         and (after is None or e["employer_id"] > after)),
                        key=lambda e: e["employer_id"])
        return [dict(e) for e in chosen[:limit]]

    # --- for the tests ---
    def with_employer(self, kind: str = "private", region_code: str = "12.75") -> str:
        """An employer registered directly in the fake; its id as participants name it."""
        eid = uuid.uuid4()
        self.employers[eid] = {"employer_id": eid, "name": f"PT {kind}", "kind": kind,
                               "region_code": region_code, "npp": None, "declared": (),
                               "version": 1, "registered_on": TODAY}
        return str(eid)

    def _live(self, nik: str) -> uuid.UUID | None:
        return next((pid for pid, p in self.participants.items()
                     if p["nik"] == nik and p["status"] != "terminated"), None)


@pytest.fixture
def unit() -> FakeRegistrationUnit:
    return FakeRegistrationUnit()


def siti(serial: int = 1, **changes: Any) -> dict[str, Any]:
    """The contract's example worker, with her own NIK serial."""
    return {"nik": f"12750145089{serial:05d}", "full_name": "Siti Aminah",
            "birth_date": "1990-08-05", "sex": "F", "region_code": "12.75.01.1001",
            "segment": "BPU", "employer_id": None, "occupation": "pedagang",
            "monthly_income": 1_000_000, "programs": ["JKK", "JKM"], **changes}


def checked(row: dict[str, Any]) -> ParticipantIn:
    participant, errors = validate_row(row, TODAY)
    assert participant is not None, errors
    return participant


def key(name: str, body: Any, route: str = ROUTE) -> IdempotencyKey:
    return IdempotencyKey.of(name, route, body)


async def register(unit: FakeRegistrationUnit, row: dict[str, Any], *, owner: str = PARTNER,
                   retry: IdempotencyKey | None = None) -> Reply:
    return await handlers.register_one(unit, checked(row), owner=owner, today=TODAY,
                                       retry=retry)


async def registered(unit: FakeRegistrationUnit, row: dict[str, Any], *,
                     owner: str = PARTNER) -> uuid.UUID:
    reply = await register(unit, row, owner=owner)
    assert reply.status == 201, reply.json()
    return uuid.UUID(reply.json()["participant_id"])


async def bulk(unit: FakeRegistrationUnit, rows: list[Any], *,
               retry: IdempotencyKey | None = None) -> Reply:
    return await handlers.register_bulk(unit, handlers.judge_rows(rows, TODAY), owner=PARTNER,
                                        today=TODAY, retry=retry)


async def change(unit: FakeRegistrationUnit, pid: uuid.UUID, body: object,
                 caller: Caller = A) -> Participant:
    return await handlers.change_participant(unit, caller, pid, body, today=TODAY)


# --- the fake itself --------------------------------------------------------------------------
def test_the_fake_implements_every_method_of_the_registration_unit() -> None:
    wanted = {name for name in vars(handlers.RegistrationUnit)
              if not name.startswith("_") and callable(getattr(handlers.RegistrationUnit, name))}
    assert wanted == {"register", "participant", "is_granted", "change",
                      "claim_idempotency_key", "save_reply", "audit_pii_read", "partner_of",
                      "grant", "live_participant_by_nik", "employer_kinds", "add_employer",
                      "employer", "change_declared", "employers_page"}
    assert all(callable(getattr(FakeRegistrationUnit, name, None)) for name in wanted)
    typed: handlers.RegistrationUnit = FakeRegistrationUnit()
    assert typed is not None


# --- registering one --------------------------------------------------------------------------
async def test_a_new_worker_is_registered_with_an_id_a_kpj_and_one_event(unit) -> None:
    reply = await register(unit, siti())
    assert reply.status == 201
    body = reply.json()
    pid = uuid.UUID(body["participant_id"])
    assert body == {"participant_id": str(pid), "kpj": domain.kpj_for(1),
                    "status": "registered"}
    assert domain.is_valid_kpj(body["kpj"])
    stored = unit.participants[pid]
    assert stored["registered_by"] == PARTNER and stored["registered_on"] == TODAY
    assert unit.events == [Event("participant.registered", pid)]
    assert unit.keys == {}  # no Idempotency-Key, nothing recorded


async def test_a_nik_with_a_live_membership_is_409_naming_the_existing_participant(unit) -> None:
    first = await registered(unit, siti())
    reply = await register(unit, siti(full_name="Siti A."), owner=OTHER)
    assert reply.status == 409
    assert reply.json() == {
        "type": "about:blank", "title": "Already registered", "status": 409,
        "detail": "a live membership with this NIK exists",
        "errors": [{"field": "nik", "message": "already registered"}],
        "participant_id": str(first)}
    assert list(unit.participants) == [first] and len(unit.events) == 1


async def test_a_nik_whose_membership_ended_registers_anew(unit) -> None:
    first = await registered(unit, siti())
    unit.participants[first]["status"] = "terminated"
    second = await registered(unit, siti())
    assert second != first and len(unit.events) == 2


# --- Idempotency-Key --------------------------------------------------------------------------
async def test_the_same_key_and_body_again_get_the_first_answer_and_register_nothing(
        unit) -> None:
    retry = key("req-001", siti())
    first = await register(unit, siti(), retry=retry)
    again = await register(unit, siti(), retry=retry)
    assert first.status == 201 and again == first  # byte for byte
    assert len(unit.participants) == 1 and len(unit.events) == 1
    assert unit.registered_batches == [1]  # the retry did no work


async def test_a_replayed_duplicate_is_still_the_409(unit) -> None:
    await registered(unit, siti())
    retry = key("req-dup", siti())
    first = await register(unit, siti(), retry=retry)
    assert first.status == 409
    assert await register(unit, siti(), retry=retry) == first
    assert unit.registered_batches == [1, 1]


async def test_the_same_key_with_another_body_is_422_and_registers_nothing(unit) -> None:
    await register(unit, siti(1), retry=key("req-002", siti(1)))
    with pytest.raises(Problem) as refused:
        await register(unit, siti(2), retry=key("req-002", siti(2)))
    assert refused.value.status == 422 and refused.value.title == "Idempotency-Key reused"
    assert len(unit.participants) == 1 and unit.registered_batches == [1]


async def test_the_same_key_on_another_route_is_another_request(unit) -> None:
    await register(unit, siti(), retry=key("req-003", siti()))
    with pytest.raises(Problem) as refused:
        await register(unit, siti(), retry=key("req-003", siti(), route=ROUTE + "/bulk"))
    assert refused.value.status == 422


async def test_keys_belong_to_a_partner(unit) -> None:
    retry = key("req-004", siti())
    assert (await register(unit, siti(), retry=retry)).status == 201
    other = await register(unit, siti(), owner=OTHER, retry=retry)
    assert other.status == 409  # its own request, answered anew: the NIK is taken
    assert set(unit.keys) == {(PARTNER, "req-004"), (OTHER, "req-004")}


def test_a_request_is_known_by_its_body_not_the_order_of_its_fields() -> None:
    body = siti()
    assert key("k", body) == key("k", dict(reversed(list(body.items()))))
    assert key("k", body) != key("k", siti(2))


# --- registering a bulk -----------------------------------------------------------------------
async def test_bulk_rows_succeed_or_fail_on_their_own(unit) -> None:
    taken = await registered(unit, siti(9))
    rows: list[Any] = [siti(1), siti(9), "not an object", siti(2, segment="PU"), siti(1),
                       siti(3)]
    reply = await bulk(unit, rows)
    assert reply.status == 200
    body = reply.json()
    results = {r["index"]: uuid.UUID(r["participant_id"]) for r in body["results"]}
    assert body["accepted"] == 2 and sorted(results) == [0, 5]
    assert [r["index"] for r in body["rejected"]] == [1, 2, 3, 4]
    already, not_an_object, bad_segment, twice = body["rejected"]
    assert "employer_id" in {e["field"] for e in bad_segment["errors"]}
    assert not_an_object["errors"] == [
        {"field": "", "message": "a participant must be a JSON object"}]
    assert already == {"index": 1, "participant_id": str(taken),
                       "errors": [{"field": "nik", "message": "already registered"}]}
    assert twice["participant_id"] == str(results[0])  # the NIK of row 0, in the same batch
    assert unit.registered_batches == [1, 4]  # the bad rows never reach the store
    assert [e.participant_id for e in unit.events[1:]] == [results[0], results[5]]


async def test_a_bulk_of_bad_rows_only_registers_nothing(unit) -> None:
    reply = await bulk(unit, [siti(sex="X")])
    assert reply.json()["accepted"] == 0 and unit.participants == {}


async def test_a_bulk_again_with_its_key_gets_the_first_answer(unit) -> None:
    body = {"participants": [siti(1), siti(2)]}
    retry = key("bulk-1", body, ROUTE + "/bulk")
    first = await bulk(unit, body["participants"], retry=retry)
    assert await bulk(unit, body["participants"], retry=retry) == first
    assert first.json()["accepted"] == 2 and len(unit.participants) == 2
    assert unit.registered_batches == [2]


# --- reading ----------------------------------------------------------------------------------
async def test_a_partner_reads_its_own_worker_and_a_full_read_is_audited(unit) -> None:
    pid = await registered(unit, siti())
    found = await handlers.read_participant(unit, A, pid, reason=None)
    assert found["nik"] == siti()["nik"] and unit.pii_reads == []
    await handlers.read_participant(unit, A, pid, reason="court order 12/2026")
    assert unit.pii_reads == [("key-a", pid, "court order 12/2026")]


@pytest.mark.parametrize("pid", ["another partner's", "unknown"])
async def test_a_worker_another_partner_registered_does_not_exist(unit, pid) -> None:
    theirs = await registered(unit, siti())
    wanted = theirs if pid == "another partner's" else uuid.uuid4()
    with pytest.raises(Problem) as hidden:
        await handlers.read_participant(unit, B, wanted, reason="curious")
    assert hidden.value.status == 404 and hidden.value.detail == "no participant has this id"
    assert unit.pii_reads == []


async def test_an_admin_sees_every_worker(unit) -> None:
    pid = await registered(unit, siti())
    assert (await handlers.read_participant(unit, ADMIN, pid, reason=None))["kpj"]


# --- changing ---------------------------------------------------------------------------------
async def test_a_change_writes_and_names_only_the_fields_that_change(unit) -> None:
    pid = await registered(unit, siti())
    changed = await change(unit, pid, {"region_code": MOVED_TO, "monthly_income": 1_000_000,
                                       "programs": ["JKK", "JKM"]})
    assert changed["region_code"] == MOVED_TO and changed["version"] == 2
    assert unit.events[-1] == Event("participant.changed", pid, ("region_code",))
    assert unit.participants[pid]["region_code"] == MOVED_TO


async def test_a_change_to_the_same_values_writes_nothing(unit) -> None:
    pid = await registered(unit, siti())
    same = await change(unit, pid, {"region_code": "12.75.01.1001", "employer_id": None})
    assert same == unit.participants[pid] and same["version"] == 1
    assert len(unit.events) == 1


async def test_taking_up_a_programme_is_a_change_of_programmes(unit) -> None:
    pid = await registered(unit, siti())
    changed = await change(unit, pid, {"programs": ["JKK", "JKM", "JHT"]})
    assert changed["programs"] == ["JKK", "JKM", "JHT"]
    assert unit.events[-1].changed == ("programs",)


async def test_another_partner_cannot_change_a_worker_it_does_not_see(unit) -> None:
    pid = await registered(unit, siti())
    with pytest.raises(Problem) as hidden:
        await change(unit, pid, {"region_code": MOVED_TO}, caller=B)
    assert hidden.value.status == 404
    assert unit.participants[pid]["region_code"] == "12.75.01.1001" and len(unit.events) == 1


async def test_a_change_that_breaks_the_rules_is_422_and_writes_nothing(unit) -> None:
    pid = await registered(unit, siti())
    with pytest.raises(Problem) as refused:
        await change(unit, pid, {"segment": "PU"})  # PU needs an employer
    assert refused.value.status == 422
    assert refused.value.errors[0]["field"] == "employer_id"
    assert unit.participants[pid]["version"] == 1 and len(unit.events) == 1


async def test_an_ended_membership_cannot_be_changed(unit) -> None:
    pid = await registered(unit, siti())
    unit.participants[pid]["status"] = "terminated"
    with pytest.raises(Problem) as refused:
        await change(unit, pid, {"region_code": MOVED_TO})
    assert refused.value.status == 409 and len(unit.events) == 1


# --- granting ---------------------------------------------------------------------------------
async def test_a_grant_lets_the_partner_of_the_key_read_and_change_the_worker(unit) -> None:
    pid = await registered(unit, siti())
    unit.api_keys["key-b2"] = OTHER  # a key of partner B (rotated or not)
    grantor = Caller("key-a", frozenset({"participants:grant"}), PARTNER)
    assert await handlers.grant_access(unit, grantor, pid, "key-b2") == OTHER
    assert unit.grants == {(pid, OTHER)}
    assert (await handlers.read_participant(unit, B, pid, reason=None))["participant_id"] == pid
    assert (await change(unit, pid, {"region_code": MOVED_TO}, caller=B))["version"] == 2


async def test_a_grant_naming_an_unknown_key_goes_to_that_id(unit) -> None:
    pid = await registered(unit, siti())
    assert await handlers.grant_access(unit, ADMIN, pid, "not-yet-known") == "not-yet-known"


async def test_a_worker_one_does_not_see_cannot_be_granted(unit) -> None:
    pid = await registered(unit, siti())
    with pytest.raises(Problem) as hidden:
        await handlers.grant_access(unit, B, pid, "key-b")
    assert hidden.value.status == 404 and unit.grants == set()


# --- lookup -----------------------------------------------------------------------------------
async def test_a_nik_gives_the_id_of_its_live_membership(unit) -> None:
    pid = await registered(unit, siti())
    assert await handlers.lookup(unit, siti()["nik"]) == pid


@pytest.mark.parametrize("ended", [False, True])
async def test_a_nik_without_a_live_membership_is_404(unit, ended) -> None:
    if ended:
        pid = await registered(unit, siti())
        unit.participants[pid]["status"] = "terminated"
    with pytest.raises(Problem) as missing:
        await handlers.lookup(unit, siti()["nik"])
    assert missing.value.status == 404


def test_replies_are_json_bytes() -> None:
    assert Reply(201, orjson.dumps({"a": 1})).json() == {"a": 1}


# --- employers (issue 11) ---------------------------------------------------------------------
def wage_earner(serial: int, employer_id: str | None, segment: str = "PU") -> dict[str, Any]:
    return siti(serial, segment=segment, employer_id=employer_id, monthly_income=4_000_000)


async def test_a_wage_earner_names_a_registered_employer(unit) -> None:
    factory = unit.with_employer("private")
    pid = await registered(unit, wage_earner(1, factory))
    assert unit.participants[pid]["employer_id"] == factory
    assert unit.employer_lookups == [{factory}]


async def test_a_wage_earner_naming_an_unknown_employer_is_422_and_writes_nothing(unit) -> None:
    with pytest.raises(Problem) as refused:
        await register(unit, wage_earner(1, str(uuid.uuid4())))
    assert refused.value.status == 422
    assert [e["field"] for e in refused.value.errors] == ["employer_id"]
    assert unit.participants == {} and unit.events == []


async def test_an_unknown_employer_with_an_idempotency_key_records_nothing(unit) -> None:
    row = wage_earner(1, str(uuid.uuid4()))
    with pytest.raises(Problem):
        await register(unit, row, retry=key("emp-1", row))
    # The fake keeps what a rolled-back transaction would drop: the key's claim, no reply.
    assert unit.participants == {} and unit.events == []


async def test_a_construction_worker_of_a_city_agency_is_refused(unit) -> None:
    agency = unit.with_employer("opd")
    with pytest.raises(Problem) as refused:
        await register(unit, wage_earner(1, agency, segment="JAKON"))
    assert refused.value.errors[0]["field"] == "employer_id"
    assert "opd" in refused.value.errors[0]["message"]


async def test_non_civil_servant_staff_of_a_city_agency_register_as_its_wage_earners(unit) -> None:
    agency = unit.with_employer("opd")
    assert await registered(unit, wage_earner(1, agency))


async def test_a_bulk_looks_every_employer_up_at_once_and_refuses_rows_on_their_own(unit) -> None:
    factory, agency = unit.with_employer("private"), unit.with_employer("opd")
    ghost = str(uuid.uuid4())
    rows = [wage_earner(1, factory), wage_earner(2, ghost), wage_earner(3, agency, "JAKON"),
            wage_earner(4, agency), siti(5), wage_earner(6, factory, "JAKON")]
    body = (await bulk(unit, rows)).json()
    assert [r["index"] for r in body["results"]] == [0, 3, 4, 5]
    assert [(r["index"], [e["field"] for e in r["errors"]]) for r in body["rejected"]] == [
        (1, ["employer_id"]), (2, ["employer_id"])]
    assert unit.employer_lookups == [{factory, ghost, agency}]  # one lookup
    assert unit.registered_batches == [4]  # refused rows never reach the store


async def test_a_bulk_naming_no_employer_looks_nothing_up(unit) -> None:
    await bulk(unit, [siti(1), siti(2)])
    assert unit.employer_lookups == []


async def test_a_patch_to_an_unknown_or_wrong_kind_of_employer_is_refused(unit) -> None:
    factory, village = unit.with_employer("private"), unit.with_employer("village_gov")
    pid = await registered(unit, wage_earner(1, factory))
    for body in ({"employer_id": str(uuid.uuid4())},
                 {"segment": "JAKON", "employer_id": village}):
        with pytest.raises(Problem) as refused:
            await change(unit, pid, body)
        assert refused.value.status == 422 and refused.value.errors[0]["field"] == "employer_id"
    await change(unit, pid, {"employer_id": village})  # PU may work for a village government
    with pytest.raises(Problem):
        await change(unit, pid, {"segment": "JAKON"})  # ... JAKON may not
    assert unit.participants[pid]["employer_id"] == village
    assert unit.participants[pid]["segment"] == "PU"


async def test_the_channel_is_kept_with_the_worker(unit) -> None:
    pid = await registered(unit, siti(1, channel="agent", agent_id="perisai-007"))
    stored = unit.participants[pid]
    assert (stored["channel"], stored["agent_id"], stored["office_village"]) == (
        "agent", "perisai-007", None)
    assert handlers.registration_of(stored).channel == "agent"


DINAS = employers.Employer("Dinas Kebersihan Kota Binjai", "opd", "12.75", "NPP-1275-001",
                           (employers.Declared(2025, 310, "SK Walikota"),))


async def test_an_employer_is_registered_with_its_event(unit) -> None:
    reply = await handlers.register_employer(unit, DINAS, owner=PARTNER, retry=None)
    assert reply.status == 201
    body = reply.json()
    eid = uuid.UUID(body["employer_id"])
    assert body == {"employer_id": str(eid), "name": DINAS.name, "kind": "opd",
                    "region_code": "12.75", "npp": "NPP-1275-001",
                    "declared_workers": [{"year": 2025, "count": 310, "source": "SK Walikota"}],
                    "registered_on": "2026-01-15"}
    assert unit.employer_events == [("employer.registered", eid, 1)]


async def test_an_npp_already_registered_is_409_naming_the_employer(unit) -> None:
    first = (await handlers.register_employer(unit, DINAS, owner=PARTNER, retry=None)).json()
    again = await handlers.register_employer(unit, DINAS, owner=OTHER, retry=None)
    assert again.status == 409 and again.json()["employer_id"] == first["employer_id"]
    assert len(unit.employers) == 1 and len(unit.employer_events) == 1


async def test_an_employer_registered_twice_with_one_idempotency_key_is_registered_once(
        unit) -> None:
    retry = key("emp-1", {"name": DINAS.name}, "/v1/employers")
    first = await handlers.register_employer(unit, DINAS, owner=PARTNER, retry=retry)
    second = await handlers.register_employer(unit, DINAS, owner=PARTNER, retry=retry)
    assert first == second and len(unit.employers) == 1


async def test_declared_workers_add_a_year_or_replace_it_each_with_an_event(unit) -> None:
    eid = uuid.UUID(unit.with_employer("opd"))
    await handlers.declare_workers(unit, eid, employers.Declared(2025, 310))
    await handlers.declare_workers(unit, eid, employers.Declared(2024, 290))
    now = await handlers.declare_workers(unit, eid, employers.Declared(2025, 320, "revisi"))
    assert now["declared"] == (employers.Declared(2024, 290),
                               employers.Declared(2025, 320, "revisi"))
    assert [e[2] for e in unit.employer_events] == [2, 3, 4]  # sequence = version


async def test_the_same_declared_figure_again_changes_nothing(unit) -> None:
    eid = uuid.UUID(unit.with_employer("opd"))
    await handlers.declare_workers(unit, eid, employers.Declared(2025, 310))
    await handlers.declare_workers(unit, eid, employers.Declared(2025, 310))
    assert len(unit.employer_events) == 1


async def test_an_unknown_employer_is_404(unit) -> None:
    for call in (handlers.read_employer(unit, uuid.uuid4()),
                 handlers.declare_workers(unit, uuid.uuid4(), employers.Declared(2025, 1))):
        with pytest.raises(Problem) as missing:
            await call
        assert missing.value.status == 404


async def test_employers_are_listed_by_region_and_kind_a_page_at_a_time(unit) -> None:
    from shared.regions import directory

    binjai = [unit.with_employer("private", "12.75.01.1001") for _ in range(3)]
    unit.with_employer("opd", "12.75")
    unit.with_employer("private", "12.71")
    limit, after = handlers.employers_query("12.75", "private", "2", None, regions=directory())
    first = await handlers.list_employers(unit, region="12.75", kind="private", limit=limit,
                                          after=after)
    assert len(first["items"]) == 2 and first["next_cursor"] is not None
    rest = await handlers.list_employers(unit, region="12.75", kind="private", limit=2,
                                         after=uuid.UUID(first["next_cursor"]))
    assert rest["next_cursor"] is None
    seen = [e["employer_id"] for e in first["items"] + rest["items"]]
    assert sorted(seen) == sorted(binjai)
    everyone = await handlers.list_employers(unit, region="ID", kind=None, limit=100,
                                             after=None)
    assert len(everyone["items"]) == 5


@pytest.mark.parametrize("query, field", [
    ({"region": "99"}, "region"), ({"region": "12.75.01.1001.1"}, "region"),
    ({"kind": "ngo"}, "kind"), ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
    ({"limit": "ten"}, "limit"), ({"limit": "9" * 5000}, "limit"), ({"cursor": "x"}, "cursor"),
])
def test_a_bad_list_query_is_422_naming_the_parameter(query, field) -> None:
    from shared.regions import directory

    args = {"region": None, "kind": None, "limit": None, "cursor": None, **query}
    with pytest.raises(Problem) as refused:
        handlers.employers_query(args["region"], args["kind"], args["limit"], args["cursor"],
                                 regions=directory())
    assert refused.value.status == 422
    assert [e["field"] for e in refused.value.errors] == [field]
