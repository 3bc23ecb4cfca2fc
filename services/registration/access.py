"""Who may see and change which worker, and how much of them.

- Ownership: a partner reads and changes only the workers it registered (with any of its keys,
  rotated or not: `registered_by` is the partner id), or those an admin granted it; to anyone
  else such a worker does not exist (404, handlers.visible). A key with every scope (the
  bootstrap key) sees all.
- Masking for all: every read shows the NIK masked and the name shortened. The full record only
  with the `participants:pii` scope *and* a reason (X-Access-Reason), and each such read is
  written to `pii_reads` in the same transaction that reads the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.auth import ALL_SCOPES, Caller
from shared.problems import Problem
from shared.text import control_character

PII_SCOPE = "participants:pii"
GRANT_SCOPE = "participants:grant"
REASON_HEADER = "X-Access-Reason"
MAX_REASON = 200


def is_admin(caller: Caller) -> bool:
    return ALL_SCOPES in caller.scopes


def owns(caller: Caller, participant: Mapping[str, Any]) -> bool:
    """Whether the caller sees the worker without a grant: an admin, or the partner that
    registered it."""
    return is_admin(caller) or participant["registered_by"] == caller.partner_id


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
