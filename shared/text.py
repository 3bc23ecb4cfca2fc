"""Text hygiene: what no text field of a request may hold, checked before it reaches a database.

PostgreSQL refuses NUL in text (a 500 if it gets that far), a lone surrogate cannot be encoded
as UTF-8, and other control characters in a name or a code are at best invisible and at worst
break the CSV files, logs and screens the text ends up in. So every text field refuses C0
controls (tab excepted), DEL, C1 controls and lone surrogates; a multi-line field also takes
line feed and carriage return. The request gets a 422 that names the field.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

CONTROL_CHARACTERS = "may not contain control characters"

# C0 controls but tab (and, for multi-line text, LF and CR), DEL, C1 controls, surrogates.
_SINGLE_LINE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff]")
_MULTI_LINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def control_character(text: str, *, multiline: bool = False) -> str | None:
    """The first character `text` may not hold, as "U+0000", or None when it is clean."""
    if text.isprintable():  # the common case, in C: no control, surrogate or odd space at all
        return None
    found = (_MULTI_LINE if multiline else _SINGLE_LINE).search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def refuse_controls(text: str, *, multiline: bool = False) -> str:
    """`text`, or a pydantic error (in a validator: a 422 naming the field). The message never
    echoes the text."""
    if control_character(text, multiline=multiline) is not None:
        # A custom error's message is exactly this, without pydantic's "Value error, " prefix.
        raise PydanticCustomError("control_character", CONTROL_CHARACTERS)
    return text


def _single_line(value: object) -> object:
    return refuse_controls(value) if isinstance(value, str) else value


def _multi_line(value: object) -> object:
    return refuse_controls(value, multiline=True) if isinstance(value, str) else value


# The validators to annotate a text field with, AFTER its constraints, so that they run first
# (a control character is reported as such, whatever the length) and pydantic keeps its own
# messages for the constraints: `Annotated[str, Field(max_length=200), NoControls]`. (Put
# before a Field, pydantic checks that Field's constraints generically, with other messages.)
# Anything not a string passes on to the type check.
NoControls = BeforeValidator(_single_line)
NoControlsMultiline = BeforeValidator(_multi_line)

CleanText = Annotated[str, NoControls]
CleanMultilineText = Annotated[str, NoControlsMultiline]
