"""Sorted indexes and keyset cursors for listing credits.

Each business keeps, per sort field, one sorted list of keys over all its live credits and one
per customer. A key is `(is_null, value, id)`: values are strings (timestamps are fixed-width
UTC text, see `sandbox.models`), nulls sort last in ascending order, and the id breaks ties, so
every key is unique. A page starts by bisecting to the position after the cursor's key, so its
cost depends on the page size (and, with filters, on how far the scan must go), not on the
number of credits; and because the cursor names a key rather than an offset, walking the pages
never skips or repeats a credit when others are created or deleted in between.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sandbox.models import CustomerCredit

SORT_FIELDS = ("created_at", "updated_at", "sent_at", "reference_number")
SORT_ORDERS = ("ASC", "DESC")

Key = tuple[int, str, str]


def sort_key(credit: CustomerCredit, sort_by: str) -> Key:
    value = getattr(credit, sort_by)
    return (1, "", credit.id) if value is None else (0, value, credit.id)


class InvalidCursor(ValueError):
    """The cursor is not one this sandbox issued for this sort."""


@dataclass(frozen=True, slots=True)
class Cursor:
    sort_by: str
    sort_order: str
    after: Key

    def encode(self) -> str:
        raw = json.dumps([1, self.sort_by, self.sort_order, list(self.after)], separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            version, sort_by, sort_order, after = json.loads(raw)
            flag, value, credit_id = after
        except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, RecursionError):
            raise InvalidCursor("is not a cursor this sandbox issued") from None
        if (
            type(version) is not int
            or version != 1
            or sort_by not in SORT_FIELDS
            or sort_order not in SORT_ORDERS
            or type(flag) is not int
            or flag not in (0, 1)
            or not isinstance(value, str)
            or not isinstance(credit_id, str)
        ):
            raise InvalidCursor("is not a cursor this sandbox issued")
        return cls(sort_by, sort_order, (flag, value, credit_id))


class SortedIndex:
    """Keys of live credits in one order; insert and remove are a bisect and a list shift."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: list[Key] = []

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Key) -> None:
        bisect.insort(self._keys, key)

    def discard(self, key: Key) -> None:
        position = bisect.bisect_left(self._keys, key)
        if position < len(self._keys) and self._keys[position] == key:
            del self._keys[position]

    def ids_after(self, after: Key | None, descending: bool) -> Iterator[str]:
        """Ids in index order, starting just past `after` (from the start when None)."""
        keys = self._keys
        if descending:
            position = len(keys) - 1 if after is None else bisect.bisect_left(keys, after) - 1
            while position >= 0:
                yield keys[position][2]
                position -= 1
        else:
            position = 0 if after is None else bisect.bisect_right(keys, after)
            while position < len(keys):
                yield keys[position][2]
                position += 1


class CreditIndexes:
    """The sorted indexes of one business: per sort field, all live credits and per customer."""

    def __init__(self) -> None:
        self._all = {field: SortedIndex() for field in SORT_FIELDS}
        self._by_customer: dict[str, dict[str, SortedIndex]] = {}
        self._keys: dict[str, tuple[str, tuple[Key, ...]]] = {}

    def add(self, credit: CustomerCredit) -> None:
        keys = tuple(sort_key(credit, field) for field in SORT_FIELDS)
        customer_indexes = self._by_customer.setdefault(
            credit.customer.id, {field: SortedIndex() for field in SORT_FIELDS}
        )
        for field, key in zip(SORT_FIELDS, keys):
            self._all[field].add(key)
            customer_indexes[field].add(key)
        self._keys[credit.id] = (credit.customer.id, keys)

    def discard(self, credit_id: str) -> None:
        entry = self._keys.pop(credit_id, None)
        if entry is None:
            return
        customer_id, keys = entry
        for field, key in zip(SORT_FIELDS, keys):
            self._all[field].discard(key)
            self._by_customer[customer_id][field].discard(key)

    def count(self, customer_id: str | None = None) -> int:
        return len(self.index(SORT_FIELDS[0], customer_id))

    def index(self, sort_by: str, customer_id: str | None = None) -> SortedIndex:
        if customer_id is None:
            return self._all[sort_by]
        return self._by_customer.get(customer_id, {}).get(sort_by) or SortedIndex()


@dataclass(frozen=True, slots=True)
class Page:
    items: list[CustomerCredit]
    next_cursor: str | None
    has_more: bool
    sort_by: str
    sort_order: str
    total_count: int | None


def paginate(
    indexes: CreditIndexes,
    credits: dict[str, CustomerCredit],
    *,
    sort_by: str,
    sort_order: str,
    limit: int,
    cursor: str | None,
    customer_id: str | None,
    matches: Callable[[CustomerCredit], bool] | None,
    with_total: bool,
) -> Page:
    """One page of live credits in the requested order, after `cursor`, that pass `matches`."""
    after = None
    if cursor is not None:
        decoded = Cursor.decode(cursor)
        if (decoded.sort_by, decoded.sort_order) != (sort_by, sort_order):
            raise InvalidCursor(
                f"was issued for sort_by={decoded.sort_by}&sort_order={decoded.sort_order}, "
                f"not sort_by={sort_by}&sort_order={sort_order}"
            )
        after = decoded.after
    index = indexes.index(sort_by, customer_id)
    descending = sort_order == "DESC"
    items: list[CustomerCredit] = []
    has_more = False
    for credit_id in index.ids_after(after, descending):
        credit = credits[credit_id]
        if matches is not None and not matches(credit):
            continue
        if len(items) == limit:
            has_more = True
            break
        items.append(credit)
    next_cursor = (
        Cursor(sort_by, sort_order, sort_key(items[-1], sort_by)).encode() if has_more else None
    )
    total = None
    if with_total:
        if matches is None:
            total = len(index)
        else:
            total = sum(1 for credit_id in index.ids_after(None, False) if matches(credits[credit_id]))
    return Page(items, next_cursor, has_more, sort_by, sort_order, total)
