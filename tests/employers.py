"""Employers for tests that register PU or JAKON workers: since issue 11 a worker names an
employer registered through POST /v1/employers (its id), not a made-up one."""

from __future__ import annotations

import itertools
from typing import Any

_serial = itertools.count(1)


def employer_body(kind: str = "private", region_code: str = "12.75", **overrides: Any
                  ) -> dict[str, Any]:
    """A valid employer (a new name each time; no NPP unless given)."""
    body: dict[str, Any] = {"name": f"PT Uji Coba {next(_serial)}", "kind": kind,
                            "region_code": region_code}
    body.update(overrides)
    return body


async def new_employer(client: Any, headers: dict[str, str], kind: str = "private",
                       region_code: str = "12.75", **overrides: Any) -> str:
    """Register an employer on the registration service (an httpx.AsyncClient on it, or on
    the stack with a base_url); its id."""
    response = await client.post("/v1/employers",
                                 json=employer_body(kind, region_code, **overrides),
                                 headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["employer_id"])


def new_employer_sync(client: Any, headers: dict[str, str], kind: str = "private",
                      region_code: str = "12.75", **overrides: Any) -> str:
    """new_employer for a synchronous httpx.Client (the e2e tests, the demo's style)."""
    response = client.post("/v1/employers", json=employer_body(kind, region_code, **overrides),
                           headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["employer_id"])
