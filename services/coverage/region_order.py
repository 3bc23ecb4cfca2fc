"""The order of a listing and its pages (pure): `sort` by ucj, gap_people, active, registered,
name or code, ascending or descending; regions without the figure last either way; ties by
code. A page's cursor is the sort key of its last region, so a page never repeats or skips a
region that stays where it was, even as other regions' counters move."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Literal

import orjson

from services.coverage.schemas import RegionCoverage
from shared.problems import validation_problem

Sort = Literal["code", "name", "ucj", "gap_people", "active", "registered"]
Order = Literal["asc", "desc"]


def sort_key(item: RegionCoverage, sort: Sort, order: Order) -> tuple[Any, ...]:
    code = item.region.code
    if sort == "code":
        value: Any = code
    elif sort == "name":
        value = item.region.name.casefold()
    else:
        value = getattr(item, sort)
    if value is None:
        return (True, 0, code)
    if order == "desc":
        value = -value if not isinstance(value, str) else [-ord(c) for c in value] + [1]
    return (False, value, code)


def page(items: Sequence[RegionCoverage], sort: Sort, order: Order, limit: int | None,
         cursor: str | None) -> tuple[list[RegionCoverage], str | None]:
    """The regions in order after `cursor`, at most `limit` (None: all), and the next cursor
    (None at the end)."""
    keyed = sorted(((_comparable(sort_key(i, sort, order)), i) for i in items),
                   key=lambda pair: pair[0])
    if cursor is not None:
        after = _position(cursor, sort, order)
        keyed = [(k, i) for k, i in keyed if k > after]
    if limit is None or len(keyed) <= limit:
        return [i for _, i in keyed], None
    shown = keyed[:limit]
    raw = orjson.dumps([sort, order, shown[-1][0]])
    return [i for _, i in shown], base64.urlsafe_b64encode(raw).decode()


def _comparable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_comparable(v) for v in value)
    return value


def _position(cursor: str, sort: Sort, order: Order) -> tuple[Any, ...]:
    try:
        given_sort, given_order, key = orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
        if (given_sort, given_order) != (sort, order) or not isinstance(key, list):
            raise ValueError
        return _comparable(key)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise validation_problem([{"field": "cursor", "message": (
            "not a cursor this listing gave (with the same sort and order)")}]) from None
