"""Keyset ("seek") pagination: a page costs the same at row 10 and at row 900,000.

A page is the rows after (or before) the last row the client saw, in a total order of
`keys` (the last key unique, e.g. the id). The cursor is those key values, opaque to the
client. The count is capped: counting a million rows would cost more than the page itself,
so above `COUNT_CAP` the list says "more than N".
"""

import base64
import json
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from mailhost.errors import Invalid

COUNT_CAP = 10_000


def encode_cursor(values: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


def decode_cursor(raw: str, types: list[type], *, field_name: str = "cursor") -> list:
    """The key values in a cursor, each of the type of its key; Invalid for anything else."""
    try:
        values = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != len(types) or not all(
        type(value) is kind and (kind is not str or "\x00" not in value)
        for value, kind in zip(values, types, strict=False)
    ):
        raise Invalid("That page cursor is not one this list gave out.", field=field_name)
    return values


_INTEGER_FIELDS = {"AutoField", "BigAutoField", "IntegerField", "BigIntegerField",
                   "PositiveIntegerField", "SmallIntegerField"}


def _key_types(model, keys: tuple[str, ...]) -> list[type]:
    types = []
    for key in keys:
        *path, name = key.split("__")
        owner = model
        for part in path:
            owner = owner._meta.get_field(part).related_model
        internal = owner._meta.get_field(name).get_internal_type()
        types.append(int if internal in _INTEGER_FIELDS else str)
    return types


def _value(obj, key: str):
    for part in key.split("__"):
        obj = getattr(obj, part)
    return obj


def _seek(keys: tuple[str, ...], values: list, *, forward: bool) -> Q:
    """Rows strictly after (forward) or before `values` in the order of `keys`:
    k1 > v1 OR (k1 = v1 AND k2 > v2) OR …, with k1 >= v1 first so an index can start there."""
    op = "gt" if forward else "lt"
    condition = Q()
    for i in range(len(keys)):
        equal = {keys[j]: values[j] for j in range(i)}
        condition |= Q(**equal, **{f"{keys[i]}__{op}": values[i]})
    return Q(**{f"{keys[0]}__{op}e": values[0]}) & condition


@dataclass
class KeysetPage:
    items: list
    count: int  # exact unless count_capped
    count_capped: bool
    next_cursor: str | None
    previous_cursor: str | None
    keys: tuple = field(default=(), repr=False)


def count_capped(queryset: QuerySet, cap: int | None = None) -> tuple[int, bool]:
    """(count, capped): counts at most cap + 1 rows."""
    cap = cap or COUNT_CAP
    count = queryset.order_by()[: cap + 1].count()
    return (cap, True) if count > cap else (count, False)


def keyset_page(
    queryset: QuerySet,
    keys: tuple[str, ...],
    *,
    limit: int,
    offset: int = 0,
    after: str | None = None,
    before: str | None = None,
    field_name: str = "cursor",
) -> KeysetPage:
    """One page of `queryset` in the order of `keys` (ascending; the last key unique): the
    rows after the cursor `after` (or before `before`), skipping `offset` of them (an offset
    costs what it skips: the cursor is the fast way on)."""
    page = queryset.order_by(*keys)
    cursor, forward = (before, False) if before and not after else (after, True)
    if cursor:
        types = _key_types(queryset.model, keys)
        values = decode_cursor(cursor, types, field_name=field_name)
        page = page.filter(_seek(keys, values, forward=forward))
    if not forward:
        page = page.reverse()
    rows = list(page[offset : offset + limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if not forward:
        rows.reverse()
    count, capped = count_capped(queryset)

    def cursor_of(obj) -> str:
        return encode_cursor([_value(obj, key) for key in keys])

    has_next = more if forward else bool(cursor)
    has_previous = bool(cursor or offset) if forward else more
    return KeysetPage(
        items=rows,
        count=count,
        count_capped=capped,
        next_cursor=cursor_of(rows[-1]) if rows and has_next else None,
        previous_cursor=cursor_of(rows[0]) if rows and has_previous else None,
        keys=keys,
    )
