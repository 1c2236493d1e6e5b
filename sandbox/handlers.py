"""Handlers of the five customer-credit operations: parse, call the store, shape the response.

connexion calls them with the path, query and body values of the request (already checked
against openapi.yaml by `sandbox.pipeline`, which also made sure the namespace exists). `OPERATIONS` maps Layer's operationIds, which are
not Python import paths, to these methods; a missing handler fails at start-up.
"""

from __future__ import annotations

import flask

from . import envelope
from .runtime import NAMESPACE_HEADER, Sandbox
from .store import CreditFilters, InvalidInput, timestamp_input


def _reference_filter(reference_number: str | None, reference_numbers: str | None) -> frozenset | None:
    wanted = None
    if reference_numbers is not None:
        wanted = frozenset(part.strip() for part in reference_numbers.split(",") if part.strip())
        if not wanted:
            raise InvalidInput("reference_numbers lists no reference number", field="reference_numbers")
    if reference_number is not None:
        wanted = frozenset([reference_number]) if wanted is None else wanted & {reference_number}
    return wanted


class CreditHandlers:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    @property
    def store(self):
        """The store of the request's namespace."""
        return self.sandbox.namespace(flask.request.headers.get(NAMESPACE_HEADER)).store

    @property
    def operations(self) -> dict:
        return {
            "business.invoices.customer-credits.get": self.list_credits,
            "business.invoices.customer-credits.post": self.create_credit,
            "business.invoices.customer-credits.get_one": self.fetch_credit,
            "business.invoices.customer-credits.patch": self.update_credit,
            "business.invoices.customer-credits.delete": self.delete_credit,
        }

    def list_credits(
        self,
        business_id: str,
        customer_id: str | None = None,
        sent_at_start: str | None = None,
        sent_at_end: str | None = None,
        reference_number: str | None = None,
        reference_numbers: str | None = None,
        memo: str | None = None,
        memo_contains: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        sort_by: str = "created_at",
        sort_order: str = "ASC",
        show_total_count: bool = False,
    ):
        filters = CreditFilters(
            customer_id=customer_id,
            sent_at_start=timestamp_input(sent_at_start, "sent_at_start"),
            sent_at_end=timestamp_input(sent_at_end, "sent_at_end"),
            reference_numbers=_reference_filter(reference_number, reference_numbers),
            memo=memo,
            memo_contains=memo_contains,
        )
        store = self.store
        with store.lock:  # shape the page before another request can change its credits
            result = store.list_credits(
                business_id, filters, sort_by=sort_by, sort_order=sort_order, limit=limit,
                cursor=cursor, with_total=show_total_count,
            )
            return envelope.page(result), 200

    def create_credit(self, business_id: str, body: dict):
        store = self.store
        with store.lock:
            credit, created = store.create_credit(business_id, body)
            return envelope.item(credit), 201 if created else 200

    def fetch_credit(self, business_id: str, customer_credit_id: str):
        store = self.store
        with store.lock:
            return envelope.item(store.credit(business_id, customer_credit_id)), 200

    def update_credit(self, business_id: str, customer_credit_id: str, body: dict):
        store = self.store
        with store.lock:
            return envelope.item(store.update_credit(business_id, customer_credit_id, body)), 200

    def delete_credit(self, business_id: str, customer_credit_id: str):
        store = self.store
        with store.lock:
            return envelope.item(store.delete_credit(business_id, customer_credit_id)), 200
