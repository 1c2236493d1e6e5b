"""Plain model classes of the sandbox's state, and their Layer representations.

Nothing here knows HTTP: `to_api()` returns the unwrapped JSON-ready dict that Layer documents
for each object (the `{"data": ...}` envelope is added by `sandbox.envelope`). Timestamps are
kept in the wire format of `sandbox.timestamps`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(slots=True)
class LedgerAccount:
    id: str
    stable_name: str
    name: str
    account_number: str | None
    normality: str
    account_type: str
    account_type_display: str
    account_subtype: str
    account_subtype_display: str

    def to_api(self) -> dict:
        return {
            "id": {"type": "AccountId", "id": self.id},
            "name": self.name,
            "account_number": self.account_number,
            "stable_name": {"type": "StableName", "stable_name": self.stable_name},
            "normality": self.normality,
            "account_type": {"value": self.account_type, "display_name": self.account_type_display},
            "account_subtype": {
                "value": self.account_subtype,
                "display_name": self.account_subtype_display,
            },
        }


@dataclass(slots=True)
class Tag:
    id: str
    key: str
    value: str
    dimension_id: str
    definition_id: str
    dimension_display_name: str | None = None
    value_display_name: str | None = None
    archived_at: str | None = None

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "key": self.key,
            "dimension_display_name": self.dimension_display_name,
            "value": self.value,
            "value_display_name": self.value_display_name,
            "dimension_id": self.dimension_id,
            "definition_id": self.definition_id,
            "archived_at": self.archived_at,
        }


@dataclass(slots=True)
class Customer:
    id: str
    external_id: str | None
    individual_name: str | None
    company_name: str | None
    email: str | None
    mobile_phone: str | None
    office_phone: str | None
    address_string: str | None
    memo: str | None = None
    status: str = "ACTIVE"
    transaction_tags: Sequence[Tag] = field(default_factory=list)

    def to_api(self) -> dict:
        return {
            "type": "CustomerData",
            "id": self.id,
            "external_id": self.external_id,
            "individual_name": self.individual_name,
            "company_name": self.company_name,
            "email": self.email,
            "mobile_phone": self.mobile_phone,
            "office_phone": self.office_phone,
            "address_string": self.address_string,
            "memo": self.memo,
            "status": self.status,
            "transaction_tags": [tag.to_api() for tag in self.transaction_tags],
        }

    def export(self) -> dict:
        return {k: v for k, v in self.to_api().items() if k != "type"}

    def copy(self) -> Customer:
        return copy.copy(self)


@dataclass(slots=True)
class InvoiceLine:
    """One line of an invoice, as Layer's SDK decodes it (`InvoiceLineItemSchema`)."""

    id: str
    invoice_id: str
    description: str | None
    unit_price: int
    # A decimal number written as text, as the SDK's `Schema.BigDecimal` decodes it ("2", "1.5").
    quantity: str
    subtotal: int
    discount_amount: int = 0
    sales_taxes_total: int = 0
    external_id: str | None = None
    memo: str | None = None
    # The revenue account the line books to (an `AccountId` identifier), or None.
    account_id: str | None = None

    @property
    def total_amount(self) -> int:
        return self.subtotal - self.discount_amount + self.sales_taxes_total

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "external_id": self.external_id,
            "invoice_id": self.invoice_id,
            "account_identifier": None if self.account_id is None else {"type": "AccountId", "id": self.account_id},
            "description": self.description,
            "unit_price": self.unit_price,
            "quantity": self.quantity,
            "subtotal": self.subtotal,
            "discount_amount": self.discount_amount,
            "sales_taxes_total": self.sales_taxes_total,
            "total_amount": self.total_amount,
            "memo": self.memo,
            "transaction_tags": [],
        }

    def export(self) -> dict:
        return {k: v for k, v in self.to_api().items() if k not in ("total_amount", "transaction_tags")}


# Invoice statuses the sandbox sends (Layer's SDK knows these and a few it never derives here).
SAVED, PARTIALLY_PAID, PAID, VOIDED = "SAVED", "PARTIALLY_PAID", "PAID", "VOIDED"


@dataclass(slots=True)
class Invoice:
    """An invoice: read-only over the API, its balance and status follow the credits applied.

    `outstanding_balance` is the total less what was paid by other means (`paid_amount`, payments
    the sandbox does not model) less what live credits apply (`credited_amount`, kept by the
    store); the status follows it: SAVED while nothing is paid, PARTIALLY_PAID in between, PAID
    at zero, VOIDED once voided whatever the balance."""

    id: str
    customer_id: str
    invoice_number: str | None
    sent_at: str | None
    total_amount: int
    # Sum of the allocations that live credits apply to this invoice.
    credited_amount: int = 0
    business_id: str = ""
    external_id: str | None = None
    due_at: str | None = None
    paid_at: str | None = None
    voided_at: str | None = None
    imported_at: str | None = None
    updated_at: str | None = None
    recipient_name: str | None = None
    memo: str | None = None
    custom_payment_instructions: str | None = None
    line_items: Sequence[InvoiceLine] = ()
    additional_discount: int = 0
    additional_sales_taxes_total: int = 0
    paid_amount: int = 0

    @property
    def outstanding_balance(self) -> int:
        return self.total_amount - self.paid_amount - self.credited_amount

    @property
    def subtotal(self) -> int:
        return sum(line.total_amount for line in self.line_items)

    @property
    def status(self) -> str:
        if self.voided_at is not None:
            return VOIDED
        outstanding = self.outstanding_balance
        if outstanding <= 0:
            return PAID
        return PARTIALLY_PAID if outstanding < self.total_amount else SAVED

    @property
    def open(self) -> bool:
        """Whether credits may still be applied to it."""
        return self.voided_at is None

    def settle(self, now: str) -> None:
        """Stamp a change of balance: `updated_at`, and `paid_at` when it reaches zero."""
        self.updated_at = now if self.updated_at is None or now > self.updated_at else self.updated_at
        if self.outstanding_balance > 0:
            self.paid_at = None
        elif self.paid_at is None:
            self.paid_at = self.updated_at

    def clone(self) -> Invoice:
        return copy.copy(self)

    def to_api(self, customer: Customer | None) -> dict:
        return {
            "type": "Invoice",
            "id": self.id,
            "business_id": self.business_id,
            "external_id": self.external_id,
            "status": self.status,
            "sent_at": self.sent_at,
            "due_at": self.due_at,
            "paid_at": self.paid_at,
            "voided_at": self.voided_at,
            "imported_at": self.imported_at,
            "updated_at": self.updated_at,
            "invoice_number": self.invoice_number,
            "recipient_name": self.recipient_name,
            "customer": None if customer is None else customer.to_api(),
            "line_items": [line.to_api() for line in self.line_items],
            "subtotal": self.subtotal,
            "additional_discount": self.additional_discount,
            "additional_sales_taxes_total": self.additional_sales_taxes_total,
            "total_amount": self.total_amount,
            "outstanding_balance": self.outstanding_balance,
            "memo": self.memo,
            "custom_payment_instructions": self.custom_payment_instructions,
        }

    def export(self) -> dict:
        """What a state export keeps: the stored fields (balance and status follow from them)."""
        return {
            "id": self.id, "customer_id": self.customer_id, "external_id": self.external_id,
            "invoice_number": self.invoice_number, "sent_at": self.sent_at, "due_at": self.due_at,
            "paid_at": self.paid_at, "voided_at": self.voided_at, "imported_at": self.imported_at,
            "updated_at": self.updated_at, "recipient_name": self.recipient_name, "memo": self.memo,
            "custom_payment_instructions": self.custom_payment_instructions,
            "line_items": [line.export() for line in self.line_items],
            "additional_discount": self.additional_discount,
            "additional_sales_taxes_total": self.additional_sales_taxes_total,
            "total_amount": self.total_amount, "paid_amount": self.paid_amount,
        }


@dataclass(slots=True)
class LineItem:
    id: str
    ledger_account: LedgerAccount
    amount: int
    memo: str | None = None
    metadata: dict | None = None
    reference_number: str | None = None
    transaction_tags: Sequence[Tag] = field(default_factory=list)

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "ledger_account": self.ledger_account.to_api(),
            "amount": self.amount,
            "memo": self.memo,
            "metadata": self.metadata,
            "reference_number": self.reference_number,
            "transaction_tags": [tag.to_api() for tag in self.transaction_tags],
        }


@dataclass(slots=True)
class Allocation:
    id: str
    customer_credit_id: str
    invoice_id: str
    amount: int

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "customer_credit_id": self.customer_credit_id,
            "invoice_id": self.invoice_id,
            "amount": self.amount,
        }


@dataclass(slots=True)
class CustomerCredit:
    id: str
    business_id: str
    customer: Customer
    line_items: list[LineItem]
    created_at: str
    updated_at: str
    external_id: str | None = None
    sent_at: str | None = None
    # Most credits have none: they share one empty tuple (every change assigns a new sequence).
    allocations: Sequence[Allocation] = ()
    deleted_at: str | None = None
    transaction_tags: Sequence[Tag] = field(default_factory=list)
    memo: str | None = None
    metadata: dict | None = None
    reference_number: str | None = None

    @property
    def total_amount(self) -> int:
        return sum(line.amount for line in self.line_items)

    def copy(self) -> CustomerCredit:
        """A copy whose own fields a write may change (see Store._own). Line items, allocations
        and tags are shared: nothing changes them once a credit holds them (a write assigns new
        sequences)."""
        return copy.copy(self)

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "external_id": self.external_id,
            "customer": self.customer.to_api(),
            "sent_at": self.sent_at,
            "line_items": [line.to_api() for line in self.line_items],
            "allocations": [allocation.to_api() for allocation in self.allocations],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "deleted_at": self.deleted_at,
            "transaction_tags": [tag.to_api() for tag in self.transaction_tags],
            "memo": self.memo,
            "metadata": self.metadata,
            "reference_number": self.reference_number,
        }


@dataclass(slots=True)
class Business:
    """One business and everything that belongs to it; the store keeps one per business id."""

    id: str
    name: str
    customers: dict[str, Customer] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    ledger_accounts: dict[str, LedgerAccount] = field(default_factory=dict)
    credits: dict[str, CustomerCredit] = field(default_factory=dict)
    # key -> dimension id, (key, value) -> definition id: Layer's tag dimensions and values.
    tag_dimensions: dict[str, str] = field(default_factory=dict)
    tag_definitions: dict[tuple[str, str], str] = field(default_factory=dict)

    def clone(self) -> Business:
        """A copy for a new namespace of an already-seeded scenario (Store.clone), made in time
        proportional to the number of records, not to their size: customers, ledger accounts and
        credits are shared with this business, since no store changes a record in place once
        another store may hold it (a write to a credit works on a copy of its own, Store._own);
        invoices are copied, since their credited amount follows each store's allocations."""
        return Business(
            self.id, self.name, dict(self.customers),
            {iid: invoice.clone() for iid, invoice in self.invoices.items()},
            dict(self.ledger_accounts), dict(self.credits),
            dict(self.tag_dimensions), dict(self.tag_definitions),
        )

    def account_by_stable_name(self, stable_name: str) -> LedgerAccount | None:
        for account in self.ledger_accounts.values():
            if account.stable_name == stable_name:
                return account
        return None

    def customer_by_external_id(self, external_id: str) -> Customer | None:
        for customer in self.customers.values():
            if customer.external_id == external_id:
                return customer
        return None
