"""Request models of the contributions API: types and lengths here, the rules in payments.py."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from services.contributions.payments import Payer
from shared.problems import errors_of
from shared.text import NoControls

MAX_BULK_LINES = 10_000

# Every text field refuses control characters first (shared/text.py), with one message.
PaymentRef = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$"), NoControls
]


class PaymentIn(BaseModel):
    """POST /v1/contributions, and each line of POST /v1/contributions/bulk."""

    model_config = ConfigDict(extra="forbid", strict=True)

    payment_ref: PaymentRef
    participant_id: uuid.UUID = Field(json_schema_extra={"format": "uuid"})
    first_period: Annotated[str, Field(max_length=7, examples=["2026-11"]), NoControls]
    months: int
    amount: int
    payer: Payer
    # Government and CSR payers name how the money is funded (DOMAIN.md): SG, SD, SA, SL, SC, SB.
    funding_code: Annotated[str, Field(max_length=2), NoControls] | None = None

    _digest: bytes = PrivateAttr(default=b"")

    def request_hash(self) -> bytes:
        """What makes two requests with one payment_ref the same request: the line as sent,
        keys sorted (set by parse_line; computed from the fields otherwise)."""
        if not self._digest:
            self._digest = _digest(self.model_dump(mode="json"))
        return self._digest


def _digest(line: dict[str, Any]) -> bytes:
    return hashlib.sha256(orjson.dumps(line, option=orjson.OPT_SORT_KEYS)).digest()


def parse_line(raw: Any) -> tuple[PaymentIn | None, list[dict[str, str]]]:
    if not isinstance(raw, dict):
        return None, [{"field": "", "message": "a contribution must be a JSON object"}]
    try:
        if isinstance(raw.get("participant_id"), str):
            # JSON has no UUID type: accept the string form under strict validation.
            raw = {**raw, "participant_id": _uuid(raw["participant_id"])}
        line = PaymentIn.model_validate(raw)
        line._digest = _digest({**raw, "participant_id": str(line.participant_id)})
        return line, []
    except ValidationError as exc:
        return None, errors_of(exc)
    except ValueError:
        return None, [{"field": "participant_id", "message": "must be a UUID"}]


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)

