"""Who may see and change which worker, and how much of them (SQL for grants and the audit).

- Ownership: a partner reads and changes only the workers it registered (with any of its keys,
  rotated or not: `registered_by` is the partner id), or those an admin granted it; to anyone
  else such a worker does not exist (404). A key with every scope (the bootstrap key) sees all.
- Masking for all: every read shows the NIK masked and the name shortened. The full record only
  with the `participants:pii` scope *and* a reason (X-Access-Reason), and each such read is
  written to `pii_reads` in the same transaction that reads the record.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from shared.auth import ALL_SCOPES, Caller
from shared.problems import Problem
from shared.text import control_character

PII_SCOPE = "participants:pii"
GRANT_SCOPE = "participants:grant"
REASON_HEADER = "X-Access-Reason"
MAX_REASON = 200


def is_admin(caller: Caller) -> bool:
    return ALL_SCOPES in caller.scopes


async def may_see(conn: asyncpg.Connection | asyncpg.Pool, caller: Caller,
                  record: Any) -> bool:
    if is_admin(caller) or record["registered_by"] == caller.partner_id:
        return True
    return bool(await conn.fetchval(
        "SELECT 1 FROM participant_grants WHERE participant_id = $1 AND key_id = $2",
        record["participant_id"], caller.partner_id))


def pii_reason(caller: Caller, header: str | None) -> str | None:
    """The reason for a full read, or None for a masked one. A reason without the scope, or a
    malformed reason, is refused: the caller asked for something it must not get silently."""
    if header is None:
        return None
    if not caller.may(PII_SCOPE):
        raise Problem(403, "Forbidden", f"{REASON_HEADER} asks for the full record, which needs "
                      f"the scope {PII_SCOPE!r}")
    reason = header.strip()
    if not reason or len(reason) > MAX_REASON or control_character(reason) is not None:
        raise Problem(400, "Bad request", f"{REASON_HEADER} must say why, in 1 to "
                      f"{MAX_REASON} printable characters")
    return reason


async def audit_pii_read(conn: asyncpg.Connection, caller: Caller, participant_id: Any,
                         reason: str) -> None:
    await conn.execute("INSERT INTO pii_reads (key_id, participant_id, reason)"
                       " VALUES ($1, $2, $3)", caller.key_id, participant_id, reason)


async def partner_of(conn: asyncpg.Connection, key_id: str) -> str:
    """The partner a key belongs to (what a grant names); a key id this service does not know
    (yet) is taken as a partner id as it is."""
    found = await conn.fetchval("SELECT partner_id::text FROM api_keys WHERE id::text = $1",
                                key_id)
    return found or key_id


async def grant(conn: asyncpg.Connection, participant_id: Any, key_id: str,
                granted_by: str) -> None:
    await conn.execute(
        "INSERT INTO participant_grants (participant_id, key_id, granted_by)"
        " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", participant_id, key_id, granted_by)


async def live_participant_by_nik(conn: asyncpg.Pool | asyncpg.Connection, nik: str
                                  ) -> Any | None:
    return await conn.fetchval(
        "SELECT id FROM participants WHERE nik = $1 AND status <> 'terminated'", nik)
