"""The one place that knows Layer's wire envelope: `{"data": ...}`, plus `meta` on lists."""

from __future__ import annotations

from .models import CustomerCredit
from .pagination import Page


def item(credit: CustomerCredit) -> dict:
    return {"data": credit.to_api()}


def page(result: Page) -> dict:
    return {
        "data": [credit.to_api() for credit in result.items],
        "meta": {
            "pagination": {
                "cursor": result.next_cursor,
                "has_more": result.has_more,
                "sort_by": result.sort_by,
                "sort_order": result.sort_order,
                "total_count": result.total_count,
            }
        },
    }


def data(payload) -> dict:
    """The envelope for the sandbox's own control routes, which follow Layer's conventions too."""
    return {"data": payload}
