"""The one place that knows Layer's wire envelope: `{"data": ...}`, plus `meta` on lists."""

from __future__ import annotations

from collections.abc import Callable

from .pagination import Page


def _api(record) -> dict:
    return record.to_api()


def item(record, shape: Callable = _api) -> dict:
    return {"data": shape(record)}


def page(result: Page, shape: Callable = _api, sorted_by: bool = True) -> dict:
    """A page of records. `sorted_by`: the pagination names its sort (credits, invoices), as the
    lists that take `sort_by` do; the customer list takes none and names none."""
    pagination = {"cursor": result.next_cursor, "has_more": result.has_more}
    if sorted_by:
        pagination.update(sort_by=result.sort_by, sort_order=result.sort_order)
    pagination["total_count"] = result.total_count
    return {"data": [shape(record) for record in result.items], "meta": {"pagination": pagination}}


def data(payload) -> dict:
    """The envelope for the sandbox's own control routes, which follow Layer's conventions too."""
    return {"data": payload}
