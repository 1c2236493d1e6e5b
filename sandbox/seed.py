"""Deterministic seed data: businesses, customers, invoices, ledger accounts and credits.

One integer seed drives one Faker instance and the store's id generator, and every timestamp is
counted back from the fixture's fixed `epoch`, so the same seed and fixture give byte-identical
state on any machine at any time. What gets seeded (counts, locale, the chart of accounts) comes
from a fixture file in `fixtures/`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from faker import Faker

from sandbox.models import (
    Allocation,
    Business,
    Customer,
    CustomerCredit,
    Invoice,
    LedgerAccount,
    LineItem,
    Tag,
)
from sandbox.store import IdSource, Store
from sandbox.timestamps import format_timestamp, parse_timestamp

TAG_VOCABULARY = {
    "department": ("Department", ["sales", "support", "marketing"]),
    "region": ("Region", ["west", "east", "central"]),
    "channel": ("Channel", ["online", "retail"]),
}
MEMOS = [
    "Returned goods",
    "Damaged in shipping",
    "Goodwill credit",
    "Pricing adjustment",
    "Service outage credit",
    "Duplicate charge refund",
]


@dataclass(frozen=True)
class Fixture:
    """A parsed fixture file: what to seed and the static data it refers to."""

    path: Path
    locale: str
    epoch: datetime
    history_days: int
    accounts: list[list[str]]
    type_display_names: dict[str, str]
    subtype_display_names: dict[str, str]
    credit_line_accounts: list[str]
    businesses: int
    per_business: dict

    @classmethod
    def load(cls, path: Path) -> "Fixture":
        spec = yaml.safe_load(path.read_text())
        chart = yaml.safe_load((path.parent / spec["chart_of_accounts"]).read_text())
        return cls(
            path=path,
            locale=spec["locale"],
            epoch=parse_timestamp(spec["epoch"]),
            history_days=int(spec["history_days"]),
            accounts=chart["accounts"],
            type_display_names=chart["type_display_names"],
            subtype_display_names=chart["subtype_display_names"],
            credit_line_accounts=chart["credit_line_accounts"],
            businesses=int(spec["businesses"]),
            per_business=spec["per_business"],
        )


class _Seeder:
    def __init__(self, fixture: Fixture, seed: int) -> None:
        self.fixture = fixture
        self.fake = Faker(fixture.locale)
        self.fake.seed_instance(seed)
        self.ids = IdSource(seed)

    def moment(self, earliest_days: float = None) -> datetime:
        """A moment in the fixture's history window, at whole-second precision."""
        span = self.fixture.history_days * 86400
        low = 0 if earliest_days is None else int(earliest_days * 86400)
        return self.fixture.epoch - timedelta(seconds=self.fake.random_int(low, span))

    def business(self) -> Business:
        business = Business(id=self.ids.new(), name=self.fake.company())
        for row in self.fixture.accounts:
            stable_name, name, number, normality, account_type, subtype = row
            account = LedgerAccount(
                id=self.ids.new(),
                stable_name=stable_name,
                name=name,
                account_number=number,
                normality=normality,
                account_type=account_type,
                account_type_display=self.fixture.type_display_names[account_type],
                account_subtype=subtype,
                account_subtype_display=self.fixture.subtype_display_names[subtype],
            )
            business.ledger_accounts[account.id] = account
        counts = self.fixture.per_business
        for position in range(counts["customers"]):
            customer = self.customer(with_external_id=position >= counts["customers_without_external_id"])
            business.customers[customer.id] = customer
        customers = list(business.customers.values())
        for number in range(counts["invoices"]):
            invoice = Invoice(
                id=self.ids.new(),
                customer_id=self.fake.random_element(customers).id,
                invoice_number=f"INV-{1001 + number}",
                sent_at=format_timestamp(self.moment()),
                total_amount=self.fake.random_int(20, 2000) * 100,
            )
            business.invoices[invoice.id] = invoice
        for number in range(counts["credits"]):
            credit = self.credit(business, customers, number)
            business.credits[credit.id] = credit
        return business

    def customer(self, with_external_id: bool) -> Customer:
        is_company = self.fake.boolean(60)
        return Customer(
            id=self.ids.new(),
            external_id=f"cus_{self.fake.bothify('########')}" if with_external_id else None,
            individual_name=self.fake.name(),
            company_name=self.fake.company() if is_company else None,
            email=self.fake.email(),
            mobile_phone=self.fake.numerify("+1-###-###-####"),
            office_phone=self.fake.numerify("+1-###-###-####") if is_company else None,
            address_string=self.fake.address().replace("\n", ", "),
            memo=None,
            status="ACTIVE",
        )

    def tags(self, business: Business, count: int) -> list[Tag]:
        tags = []
        for key in self.fake.random_elements(sorted(TAG_VOCABULARY), length=count, unique=True):
            display, values = TAG_VOCABULARY[key]
            value = self.fake.random_element(values)
            dimension_id = business.tag_dimensions.setdefault(key, self.ids.new())
            definition_id = business.tag_definitions.setdefault((key, value), self.ids.new())
            tags.append(Tag(self.ids.new(), key, value, dimension_id, definition_id, display, value.title()))
        return tags

    def credit(self, business: Business, customers: list[Customer], number: int) -> CustomerCredit:
        counts = self.fixture.per_business
        accounts = [business.account_by_stable_name(name) for name in self.fixture.credit_line_accounts]
        customer = self.fake.random_element(customers)
        created = self.moment(earliest_days=1)
        updated = created + timedelta(seconds=self.fake.random_int(0, 86400))
        rich = self.fake.random.random() < counts["tagged_share"]
        credit_id = self.ids.new()
        lines = [
            LineItem(
                id=self.ids.new(),
                ledger_account=self.fake.random_element(accounts),
                amount=self.fake.random_int(5, 500) * 100,
                memo=self.fake.random_element(MEMOS) if rich else None,
                metadata={"sku": self.fake.bothify("SKU-####")} if rich else None,
                reference_number=None,
                transaction_tags=self.tags(business, 1) if rich else [],
            )
            for _ in range(self.fake.random_int(1, 3))
        ]
        credit = CustomerCredit(
            id=credit_id,
            business_id=business.id,
            customer=customer,
            line_items=lines,
            created_at=format_timestamp(created),
            updated_at=format_timestamp(updated),
            external_id=f"credit-{number + 1:05d}" if self.fake.boolean(75) else None,
            sent_at=format_timestamp(created + timedelta(hours=1)) if self.fake.boolean(80) else None,
            transaction_tags=self.tags(business, 2) if rich else [],
            memo=self.fake.random_element(MEMOS) if rich else None,
            metadata={"source": "seed", "batch": number // 10} if rich else None,
            reference_number=f"CR-{number + 1:05d}" if rich else None,
        )
        if self.fake.random.random() < counts["allocated_share"]:
            credit.allocations = self.allocations(business, credit)
        return credit

    def allocations(self, business: Business, credit: CustomerCredit) -> list[Allocation]:
        remaining = credit.total_amount
        allocations = []
        open_invoices = [
            invoice for invoice in business.invoices.values()
            if invoice.customer_id == credit.customer.id and invoice.outstanding_balance > 0
        ]
        for invoice in open_invoices[: self.fake.random_int(1, 2)]:
            amount = min(remaining, invoice.outstanding_balance, self.fake.random_int(1, 100) * 100)
            if amount <= 0:
                break
            # The seeder tracks balances itself; the store recomputes them from the credits.
            invoice.credited_amount += amount
            remaining -= amount
            allocations.append(Allocation(self.ids.new(), credit.id, invoice.id, amount))
        return allocations


def build_store(fixture_path: Path, seed: int, clock=None) -> Store:
    """A fresh store holding the fixture's data for this seed."""
    seeder = _Seeder(Fixture.load(fixture_path), seed)
    businesses = [seeder.business() for _ in range(seeder.fixture.businesses)]
    kwargs = {} if clock is None else {"clock": clock}
    return Store(businesses, seeder.ids, **kwargs)
