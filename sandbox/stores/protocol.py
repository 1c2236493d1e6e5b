"""The store's boundary: what the rest of the sandbox may ask of a namespace's data.

Handlers parse a request, call one of these, and shape the answer; they never look inside a
store. Every refusal is a `StoreError` naming the field concerned, and the HTTP layer
(`sandbox.errors`) alone decides its status: a `NotFound` is a 404, a `RuleViolation` a 422, an
`InvalidInput` a 400. tests/test_store_protocol.py holds the memory store to this protocol,
signature by signature, and the handlers to calling nothing else.

Handlers hold no lock: each operation is atomic on its own (the Redis store's writes are Redis
transactions), and the memory store sees one request at a time (`sandbox.inline_wsgi`). A store
that cannot be reached raises `StoreUnavailable`, which the HTTP layer answers with a 503.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # the model classes: plain data, shared by every store
    from ..models import Business, Customer, CustomerCredit, Invoice
    from ..pagination import Page
    from .memory import CreditFilters, InvoiceFilters


class StoreError(Exception):
    """A request the store refuses; `field` names the offending input where there is one."""

    def __init__(self, message: str, *, field: str | None = None, **meta: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.meta = meta


class NotFound(StoreError):
    """A business, credit, customer, invoice or ledger account that does not exist here."""


class RuleViolation(StoreError):
    """A well-formed request that breaks one of Layer's business rules."""


class InvalidInput(StoreError):
    """An input the store cannot interpret (for example a cursor it did not issue)."""


class StoreUnavailable(Exception):
    """The store cannot be reached (Redis down, loading, out of memory, read-only): answered with
    Layer's 503 and `Retry-After`, nothing changed. Not a StoreError, which would be a 400.
    `in_doubt`: a write whose commit was sent when Redis went away, and Redis did not come back in
    time to say whether it was applied (the one 503 that may have changed something)."""

    def __init__(self, message: str, *, in_doubt: bool = False) -> None:
        super().__init__(message)
        self.in_doubt = in_doubt


class StoreStartError(Exception):
    """A store that cannot be used at start (Redis unreachable, too old, another layout): the CLI
    prints its one line and exits 1."""


class StoreBusy(StoreUnavailable):
    """A write that kept losing the race for its namespace until `--store-timeout`: also a 503."""


@runtime_checkable
class CreditStore(Protocol):
    """One namespace's businesses, customers, invoices, ledger accounts and credits.

    Ids from clients are matched case-insensitively (they are UUIDs); records come back as the
    model classes of `sandbox.models`; lists come back as a `Page` with a keyset cursor that only
    the list that issued it takes. Writes check every rule before they change anything.
    """

    # ---------------------------------------------------------------- reads

    def business(self, business_id: str) -> Business:
        """The business, or NotFound (field businessId)."""

    def credit(self, business_id: str, credit_id: str) -> CustomerCredit:
        """A live credit of the business; deleted ones and other businesses' are NotFound."""

    def customer(self, business_id: str, customer_id: str) -> Customer:
        """A customer of the business, archived ones included."""

    def invoice(self, business_id: str, invoice_id: str) -> Invoice:
        """An invoice of the business, its balance and status as allocations leave them."""

    def customers_of(self, business_id: str, customer_ids: Iterable[str]) -> dict[str, Customer]:
        """Those of the customers that exist, by id (an invoice is answered with its customer)."""

    def all_businesses(self) -> list[Business]:
        """Every business with all its records, for the control routes' summaries (the Redis
        store reads the whole namespace for it)."""

    def list_credits(self, business_id: str, filters: CreditFilters, *, sort_by: str = "created_at",
                     sort_order: str = "ASC", limit: int = 100, cursor: str | None = None,
                     with_total: bool = False) -> Page:
        """Live credits matching the filters, in keyset pages of the chosen order."""

    def list_customers(self, business_id: str, *, q: str | None = None, identity: str | None = None,
                       limit: int = 100, cursor: str | None = None) -> Page:
        """Active customers in the order they were made (archived ones left out)."""

    def list_invoices(self, business_id: str, filters: InvoiceFilters, *, sort_order: str = "ASC",
                      limit: int = 100, cursor: str | None = None, with_total: bool = False) -> Page:
        """Invoices by `sent_at`, in keyset pages."""

    # ---------------------------------------------------------------- writes

    def create_customer(self, business_id: str, params: dict) -> tuple[Customer, bool]:
        """A new customer (True), or the one with the same `external_id` updated (False)."""

    def update_customer(self, business_id: str, customer_id: str, params: dict) -> Customer:
        """The given members set (a null clears one), the others kept."""

    def archive_customer(self, business_id: str, customer_id: str) -> Customer:
        """Status ARCHIVED: out of the list, still fetched by id, no new credits."""

    def create_credit(self, business_id: str, params: dict) -> tuple[CustomerCredit, bool]:
        """A new credit (True), or the live one with the same `external_id` updated (False);
        allocations within the credit's total and each invoice's outstanding balance."""

    def update_credit(self, business_id: str, credit_id: str, params: dict) -> CustomerCredit:
        """The given members changed, under the same rules as a create."""

    def delete_credit(self, business_id: str, credit_id: str) -> CustomerCredit:
        """Soft delete: `deleted_at` stamped, allocations freed, out of every list."""
