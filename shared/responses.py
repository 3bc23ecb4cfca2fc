"""Small pieces every HTTP service answers with: a JSON (or problem) response, and an id from a
path that is a UUID or a 404."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import Response

from shared.problems import PROBLEM_JSON, Problem


def json_response(status: int, body: Any) -> Response:
    media = PROBLEM_JSON if status >= 400 else "application/json"
    return Response(orjson.dumps(body), status_code=status, media_type=media)


def id_or_404(value: str, what: str = "participant") -> uuid.UUID:
    """A path id: a UUID, or 404 (an id that cannot exist is not found, not malformed)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Problem(404, "Not found", f"no {what} has this id (not a UUID)") from None
