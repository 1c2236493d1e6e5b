"""Handlers of the API's operations: parse, call the store, shape the response.

They hold no lock: each store operation is atomic on its own, and the memory store sees one
request at a time (Flask runs on the event loop's thread, `sandbox.inline_wsgi`), so nothing
changes a record between the call and the shaping of its answer.

connexion calls them with the path, query and body values of the request (already checked
against openapi.yaml by `sandbox.pipeline`, which also made sure the namespace exists and the
bearer token may call the route). `operations` maps Layer's operationIds, which are not Python
import paths, to these methods; a missing handler fails at start-up.
"""

from __future__ import annotations

import flask
from werkzeug.datastructures import Headers

from . import envelope
from .auth import MAX_SESSION_DURATION, TOKEN_LIFETIME, Authenticator, check_scope, token_answer
from .errors import ApiError, OAuthError
from .runtime import NAMESPACE_HEADER, Sandbox
from .store import CreditFilters, InvalidInput, InvoiceFilters, timestamp_input


def _reference_filter(reference_number: str | None, reference_numbers: str | None) -> frozenset | None:
    wanted = None
    if reference_numbers is not None:
        wanted = frozenset(part.strip() for part in reference_numbers.split(",") if part.strip())
        if not wanted:
            raise InvalidInput("reference_numbers lists no reference number", field="reference_numbers")
    if reference_number is not None:
        wanted = frozenset([reference_number]) if wanted is None else wanted & {reference_number}
    return wanted


class Handlers:
    def __init__(self, sandbox: Sandbox, auth: Authenticator) -> None:
        self.sandbox = sandbox
        self.auth = auth

    @property
    def namespace(self):
        """The request's namespace."""
        return self.sandbox.namespace(flask.request.headers.get(NAMESPACE_HEADER))

    @property
    def store(self):
        """The store of the request's namespace."""
        return self.namespace.store

    @property
    def operations(self) -> dict:
        return {
            "oauth2.token.post": self.issue_token,
            "whoami.get": self.whoami,
            "business.auth-token.post": self.business_token,
            "business.auth-token.get": self.business_token,
            "business.customers.get": self.list_customers,
            "business.customers.post": self.create_customer,
            "business.customers.get_one": self.fetch_customer,
            "business.customers.patch": self.update_customer,
            "business.customers.archive.post": self.archive_customer,
            "business.invoices.get": self.list_invoices,
            "business.invoices.get_one": self.fetch_invoice,
            "business.invoices.customer-credits.get": self.list_credits,
            "business.invoices.customer-credits.post": self.create_credit,
            "business.invoices.customer-credits.get_one": self.fetch_credit,
            "business.invoices.customer-credits.patch": self.update_credit,
            "business.invoices.customer-credits.delete": self.delete_credit,
        }

    # ------------------------------------------------------------------ auth

    def issue_token(self, body: dict | None = None, **form):
        """Layer's authorization server: client credentials in, a one-hour bearer token out."""
        fields = body if body is not None else form
        repeated = [name for name in ("grant_type", "scope", "client_id") if len(flask.request.form.getlist(name)) > 1]
        if repeated:  # RFC 6749 (3.2): a parameter is sent once
            raise OAuthError("invalid_request", f"{repeated[0]} is given more than once")
        headers = Headers(flask.request.headers)
        client = self.auth.authenticate_client(headers, fields.get("client_id"))
        grant_type = fields.get("grant_type")
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required (client_credentials)")
        if grant_type != "client_credentials":
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported; "
                                                       "use client_credentials")
        check_scope(fields.get("scope"))
        token = self.auth.issue(client, self.namespace.name, TOKEN_LIFETIME)
        return token_answer(token, TOKEN_LIFETIME), 200, {"Cache-Control": "no-store", "Pragma": "no-cache"}

    def whoami(self):
        client = self.auth.client_of(Headers(flask.request.headers))
        return envelope.data({"type": "whoami", "clientName": client.name, "clientId": client.id}), 200

    def business_token(self, business_id: str, body: dict | None = None, session_duration: int | None = None):
        """A token for this business only, for a browser: minted with the backend's token."""
        duration = (body or {}).get("session_duration", session_duration)
        duration = TOKEN_LIFETIME if duration is None else duration
        if not 1 <= duration <= MAX_SESSION_DURATION:  # the contract says so too; kept for the unchecked path
            raise InvalidInput(f"session_duration must be 1 to {MAX_SESSION_DURATION} seconds", field="session_duration")
        headers = Headers(flask.request.headers)
        if self.auth.scoped(headers):  # else a browser's short token could mint itself a day-long one
            raise ApiError(401, "A business-scoped token cannot mint tokens; ask with a client token",
                           headers={"WWW-Authenticate": 'Bearer realm="layer-sandbox"'})
        namespace = self.namespace
        business = namespace.store.business(business_id)  # a business this namespace holds
        token = self.auth.issue(self.auth.client_of(headers), namespace.name, duration, business.id)
        return token_answer(token, duration), 200, {"Cache-Control": "no-store"}

    # ------------------------------------------------------------------ customers

    def list_customers(self, business_id: str, q: str | None = None, cursor: str | None = None,
                       limit: int = 100, identity_status: str | None = None):
        result = self.store.list_customers(business_id, q=q, identity=identity_status, limit=limit, cursor=cursor)
        return envelope.page(result, sorted_by=False), 200

    def create_customer(self, business_id: str, body: dict):
        customer, created = self.store.create_customer(business_id, body)
        return envelope.item(customer), 201 if created else 200

    def fetch_customer(self, business_id: str, customer_id: str):
        return envelope.item(self.store.customer(business_id, customer_id)), 200

    def update_customer(self, business_id: str, customer_id: str, body: dict):
        return envelope.item(self.store.update_customer(business_id, customer_id, body)), 200

    def archive_customer(self, business_id: str, customer_id: str):
        return envelope.item(self.store.archive_customer(business_id, customer_id)), 200

    # ------------------------------------------------------------------ invoices

    def list_invoices(
        self,
        business_id: str,
        status: list[str] | None = None,
        q: str | None = None,
        due_at_start: str | None = None,
        due_at_end: str | None = None,
        sort_by: str = "sent_at",
        sort_order: str = "ASC",
        cursor: str | None = None,
        limit: int = 100,
        show_total_count: bool = False,
        show_sales_receipts: bool | None = None,
    ):
        filters = InvoiceFilters(
            statuses=frozenset(status) if status else None,
            due_at_start=timestamp_input(due_at_start, "due_at_start"),
            due_at_end=timestamp_input(due_at_end, "due_at_end"),
            q=q,
        )
        store = self.store
        result = store.list_invoices(business_id, filters, sort_order=sort_order, limit=limit, cursor=cursor,
                                     with_total=show_total_count)
        customers = store.customers_of(business_id, {invoice.customer_id for invoice in result.items})
        return envelope.page(result, shape=lambda invoice: invoice.to_api(customers.get(invoice.customer_id))), 200

    def fetch_invoice(self, business_id: str, invoice_id: str):
        store = self.store
        invoice = store.invoice(business_id, invoice_id)
        customer = store.customers_of(business_id, [invoice.customer_id]).get(invoice.customer_id)
        return {"data": invoice.to_api(customer)}, 200

    # ------------------------------------------------------------------ customer credits

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
        result = self.store.list_credits(
            business_id, filters, sort_by=sort_by, sort_order=sort_order, limit=limit,
            cursor=cursor, with_total=show_total_count,
        )
        return envelope.page(result), 200

    def create_credit(self, business_id: str, body: dict):
        credit, created = self.store.create_credit(business_id, body)
        return envelope.item(credit), 201 if created else 200

    def fetch_credit(self, business_id: str, customer_credit_id: str):
        return envelope.item(self.store.credit(business_id, customer_credit_id)), 200

    def update_credit(self, business_id: str, customer_credit_id: str, body: dict):
        return envelope.item(self.store.update_credit(business_id, customer_credit_id, body)), 200

    def delete_credit(self, business_id: str, customer_credit_id: str):
        return envelope.item(self.store.delete_credit(business_id, customer_credit_id)), 200
