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



@dataclass(slots=True)
class Invoice:
    """An invoice, as far as credits need one: whose it is and how much is still open."""

    id: str
    customer_id: str
    invoice_number: str
    sent_at: str
    total_amount: int
    # Sum of the allocations that live credits apply to this invoice.
    credited_amount: int = 0

    @property
    def outstanding_balance(self) -> int:
        return self.total_amount - self.credited_amount

    def clone(self) -> Invoice:
        return copy.copy(self)


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
