"""The coverage API serves the claims the workers count: `claims.<PROGRAM>.<status>` and
`claims.<PROGRAM>.benefit_paid` village counters, written straight into its database, summed up
the levels into every region answer's `claims`, one entry per programme."""

from __future__ import annotations

import pytest

from tests.integration.conftest import AUTH
from tests.integration.test_coverage_api import eventually, publish

pytestmark = pytest.mark.integration

PROGRAMS = ["JKK", "JKM", "JHT", "JP", "JKP"]
NONE = {"submitted": 0, "approved": 0, "rejected": 0, "benefit_paid": 0}


async def test_a_region_without_claims_shows_every_programme_at_zero(coverage):
    client, _ = coverage
    body = (await client.get("/v1/coverage/regions/12.75")).json()
    assert body["claims"] == {program: NONE for program in PROGRAMS}


async def test_claims_are_summed_over_partitions_and_up_every_level(coverage):
    client, settings = coverage
    await publish(settings, 0, "12.75", {"registered": 3, "inactive": 3,
                                         "claims.JKM.submitted": 1, "claims.JKM.approved": 2,
                                         "claims.JKM.benefit_paid": 84_000_000})
    await publish(settings, 9, "12.75", {"claims.JKM.approved": 1,
                                         "claims.JKM.benefit_paid": 42_000_000,
                                         "claims.JHT.rejected": 1})
    await publish(settings, 4, "12.71", {"claims.JKK.submitted": 2})
    binjai = await eventually(client, "/v1/coverage/regions/12.75",
                              lambda b: b["claims"]["JHT"]["rejected"] == 1)
    assert binjai["claims"]["JKM"] == {"submitted": 1, "approved": 3, "rejected": 0,
                                       "benefit_paid": 126_000_000}
    assert binjai["claims"]["JKK"] == binjai["claims"]["JP"] == binjai["claims"]["JKP"] == NONE
    assert binjai["registered"] == 3  # claims are no participants
    north_sumatra = await eventually(client, "/v1/coverage/regions/12",
                                     lambda b: b["claims"]["JKK"]["submitted"] == 2)
    nation = (await client.get("/v1/coverage/regions/ID")).json()
    for region in (north_sumatra, nation):
        assert region["claims"]["JKM"] == binjai["claims"]["JKM"]
        assert region["claims"]["JHT"] == {**NONE, "rejected": 1}
        assert region["claims"]["JKK"] == {**NONE, "submitted": 2}
    regencies = (await client.get("/v1/coverage/regions?level=regency&parent=12")).json()
    by_code = {item["region"]["code"]: item["claims"] for item in regencies["items"]}
    assert by_code["12.75"] == binjai["claims"]
    assert by_code["12.71"]["JKK"] == {**NONE, "submitted": 2}
    assert by_code["12.01"] == {program: NONE for program in PROGRAMS}


async def test_a_decision_moves_a_claim_from_submitted_and_adds_its_benefit(coverage):
    client, settings = coverage
    await publish(settings, 3, "12.76", {"claims.JP.submitted": 1})
    await eventually(client, "/v1/coverage/regions/12.76",
                     lambda b: b["claims"]["JP"]["submitted"] == 1)
    await publish(settings, 3, "12.76", {"claims.JP.submitted": 0, "claims.JP.approved": 1,
                                         "claims.JP.benefit_paid": 1_200_000})
    body = await eventually(client, "/v1/coverage/regions/12.76",
                            lambda b: b["claims"]["JP"]["approved"] == 1)
    assert body["claims"]["JP"] == {"submitted": 0, "approved": 1, "rejected": 0,
                                    "benefit_paid": 1_200_000}


async def test_the_workforce_answer_has_the_claims_and_the_self_check_leaves_them_aside(
        coverage):
    client, settings = coverage
    await publish(settings, 5, "12.77", {"registered": 1, "inactive": 1,
                                         "claims.JKK.submitted": 1})
    await eventually(client, "/v1/coverage/regions/12.77",
                     lambda b: b["claims"]["JKK"]["submitted"] == 1)
    response = await client.put("/v1/workforce/12.77", headers=AUTH, json={
        "workforce": 120000, "year": 2024, "source": "BPS Sakernas"})
    assert response.status_code == 200, response.text
    assert response.json()["claims"]["JKK"] == {**NONE, "submitted": 1}
    assert "target" not in response.json()
    check = await client.get("/v1/admin/reconcile", headers=AUTH)
    assert check.status_code == 200, check.text
    assert check.json()["served_drift_rows"] == 0, check.json()["served_drift"]


async def test_the_openapi_document_describes_the_claims(coverage):
    client, _ = coverage
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    assert "claims" in schemas["RegionCoverage"]["required"]
    assert set(schemas["ProgrammeClaims"]["required"]) == {"submitted", "approved", "rejected",
                                                           "benefit_paid"}
