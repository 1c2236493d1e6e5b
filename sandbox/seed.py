"""Deterministic seed data: businesses, customers, invoices, ledger accounts and credits.

One integer seed drives the store's id generator, a random stream for everything that is not text
(counts, amounts, times, choices, external ids) and a Faker instance for the text (names,
companies, emails, addresses); every timestamp is counted back from the scenario's fixed `epoch`.
So the same seed and scenario give byte-identical state on any machine at any time with the same
Faker release, and the same ids, amounts and times with any Faker release (only the text follows
Faker's word lists). What gets seeded (counts, locale, the chart of accounts,
allocated and deleted credits) comes from a scenario file in `fixtures/scenarios/`, checked key by
key as it is read (`sandbox.scenariofile`): a typo is an error naming the key and the file.
"""

from __future__ import annotations

import functools
import hashlib
import random
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from faker import Faker

from . import fixtures, scenariofile
from .models import (
    Allocation,
    Business,
    Customer,
    CustomerCredit,
    Invoice,
    InvoiceLine,
    LedgerAccount,
    LineItem,
    Tag,
)
from .resources import SCENARIOS_DIR, load_yaml
from .store import IdSource, Store
from .timestamps import format_timestamp, parse_timestamp

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


PRODUCTS = ["Consulting hours", "Annual subscription", "Installation", "Support plan", "Hardware kit",
            "Training session", "Shipping and handling", "Maintenance visit"]


def _stream_seed(seed: int, purpose: str) -> int:
    return int.from_bytes(hashlib.sha256(f"layer-sandbox:{seed}:{purpose}".encode()).digest()[:8], "big")


class ScenarioError(ValueError):
    """A scenario that does not exist, cannot be read, or holds an unknown key or a wrong value."""


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def scenario_names() -> list[str]:
    return sorted(path.stem for path in SCENARIOS_DIR.glob("*.yaml"))


def resolve_scenario(name_or_path: str | Path) -> Path:
    """A scenario name (`paging`) or a path to a scenario file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate.resolve()
    named = SCENARIOS_DIR / f"{name_or_path}.yaml"
    if isinstance(name_or_path, str) and "/" not in name_or_path and named.is_file():
        return named
    raise ScenarioError(f"no scenario {str(name_or_path)!r}; known: {', '.join(scenario_names())} (or a path to a .yaml file)")


def _read(path: Path, seen: tuple = ()) -> dict:
    if path in seen:
        raise ScenarioError(f"scenario {path.name} extends itself")
    try:
        spec = load_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from None
    if not isinstance(spec, dict):
        raise ScenarioError(f"scenario {path} is not a mapping")
    problems = scenariofile.problems(spec)  # this file's own keys, before any merge
    if problems:
        raise ScenarioError(f"scenario {path}: {'; '.join(problems)}")
    if isinstance(spec.get("chart_of_accounts"), str):  # relative to the file that names it
        spec["chart_of_accounts"] = str((path.parent / spec["chart_of_accounts"]).resolve())
    parent = spec.pop("extends", None)
    if parent is None:
        return spec
    try:
        parent_path = resolve_scenario(parent) if "/" not in parent else (path.parent / parent).resolve()
    except ScenarioError as exc:
        raise ScenarioError(f"scenario {path}: extends: {exc}") from None
    base = _read(parent_path, seen + (path,))
    base.pop("description", None)
    return _merge(base, spec)


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario file: what to seed and the static data it refers to."""

    name: str
    path: Path
    description: str
    locale: str
    epoch: datetime
    history_days: int
    accounts: list[list[str]]
    type_display_names: dict[str, str]
    subtype_display_names: dict[str, str]
    credit_line_accounts: list[str]
    businesses: list[dict]
    # Exact records added after seeding (sandbox.fixtures), in order.
    fixtures: tuple = ()

    @functools.cached_property
    def content(self) -> str:
        """Everything the scenario seeds, as one text: what its templates are kept by (a file edited
        while the sandbox runs and loaded again is another template). Made once per scenario."""
        return repr(self)

    @classmethod
    def load(cls, name_or_path: str | Path) -> Scenario:
        path = resolve_scenario(name_or_path)
        spec = _read(path)
        problems = scenariofile.incomplete(spec)
        if problems:
            raise ScenarioError(f"scenario {path}: {'; '.join(problems)} (given neither by the file nor by any file it extends)")
        try:
            chart = load_yaml(spec["chart_of_accounts"])
            per_business = spec["per_business"]
            count = spec["businesses"]
            overrides = [{}] * count if isinstance(count, int) else list(count)
            scenario = cls(
                name=path.stem,
                path=path,
                description=spec.get("description", ""),
                locale=spec["locale"],
                epoch=parse_timestamp(spec["epoch"]),
                history_days=int(spec["history_days"]),
                accounts=chart["accounts"],
                type_display_names=chart["type_display_names"],
                subtype_display_names=chart["subtype_display_names"],
                credit_line_accounts=chart["credit_line_accounts"],
                businesses=[_merge(per_business, override or {}) for override in overrides],
                fixtures=tuple(spec.get("fixtures") or ()),
            )
        except (KeyError, TypeError, ValueError, OSError, yaml.YAMLError) as exc:
            raise ScenarioError(f"scenario {path} is incomplete or malformed: {exc!r}") from None
        problems = scenariofile.unseedable(scenario.businesses)
        if problems:
            raise ScenarioError(f"scenario {path}: {'; '.join(problems)}")
        return scenario


# One Faker per locale, made once: making one finds and loads its providers (~70 ms), which every
# new namespace and every reset paid. Reseeding gives it the same state as a fresh one, and the
# lock keeps two builds from drawing from it at once.
_FAKERS: dict[str, Faker] = {}
# Untagged seeded credits and lines share one empty, unchangeable tag list (the store replaces
# tag lists, never appends to them): 56 bytes saved per credit and line.
NO_TAGS: tuple = ()
_FAKERS_LOCK = threading.Lock()


def _faker(locale: str, seed: int) -> Faker:
    fake = _FAKERS.get(locale)
    if fake is None:
        fake = _FAKERS[locale] = Faker(locale)
    fake.seed_instance(seed)
    return fake


class _Seeder:
    def __init__(self, scenario: Scenario, seed: int) -> None:
        self.scenario = scenario
        # Two streams: Faker writes the text (names, companies, emails, addresses), which differs
        # between Faker releases; `rng` draws everything else (counts, amounts, times, choices,
        # external ids), so ids and numbers are the same with any Faker for the same seed.
        self.fake = _faker(scenario.locale, seed)
        self.rng = random.Random(f"layer-sandbox:{seed}")
        self.ids = IdSource(seed)
        # Invoice details (due dates, line items, external ids) draw from streams of their own, so
        # that adding them left every other seeded value, and every other id, as it was.
        self.invoice_rng = random.Random(_stream_seed(seed, "invoices"))
        self.invoice_ids = IdSource(_stream_seed(seed, "invoice-lines"))
        self._batches: dict[int, dict] = {}

    def moment(self, earliest_days: float = None) -> datetime:
        """A moment in the scenario's history window, at whole-second precision."""
        span = self.scenario.history_days * 86400
        low = 0 if earliest_days is None else int(earliest_days * 86400)
        return self.scenario.epoch - timedelta(seconds=self.rng.randint(low, span))

    def phone(self) -> str:
        digits = f"{self.rng.randrange(10**10):010d}"
        return f"+1-{digits[:3]}-{digits[3:6]}-{digits[6:]}"

    def business(self, counts: dict) -> Business:
        business = Business(id=self.ids.new(), name=self.fake.company())
        for row in self.scenario.accounts:
            stable_name, name, number, normality, account_type, subtype = row
            account = LedgerAccount(
                id=self.ids.new(),
                stable_name=stable_name,
                name=name,
                account_number=number,
                normality=normality,
                account_type=account_type,
                account_type_display=self.scenario.type_display_names[account_type],
                account_subtype=subtype,
                account_subtype_display=self.scenario.subtype_display_names[subtype],
            )
            business.ledger_accounts[account.id] = account
        for position in range(counts["customers"]):
            customer = self.customer(with_external_id=position >= counts["customers_without_external_id"])
            business.customers[customer.id] = customer
        customers = list(business.customers.values())
        for number in range(counts["invoices"]):
            invoice = Invoice(
                id=self.ids.new(),
                customer_id=self.rng.choice(customers).id,
                invoice_number=f"INV-{1001 + number}",
                sent_at=format_timestamp(self.moment()),
                total_amount=self.rng.randint(20, 2000) * 100,
            )
            self.detail_invoice(business, invoice, number)
            business.invoices[invoice.id] = invoice
        for number in range(counts["credits"]):
            credit = self.credit(business, customers, number, counts)
            business.credits[credit.id] = credit
        credits = list(business.credits.values())
        for credit in self.rng.sample(credits, min(counts["deleted"], len(credits))):
            credit.deleted_at = credit.updated_at = format_timestamp(
                parse_timestamp(credit.updated_at) + timedelta(seconds=self.rng.randint(60, 86400)))
        return business

    def detail_invoice(self, business: Business, invoice: Invoice, number: int) -> None:
        """Due date, recipient, external id and line items (summing to the total) of a seeded invoice."""
        rng = self.invoice_rng
        sent = parse_timestamp(invoice.sent_at)
        customer = business.customers[invoice.customer_id]
        invoice.business_id = business.id
        invoice.due_at = format_timestamp(sent + timedelta(days=fixtures.INVOICE_TERMS_DAYS))
        invoice.updated_at = invoice.sent_at
        invoice.recipient_name = customer.company_name or customer.individual_name
        invoice.external_id = f"inv-{number + 1:05d}" if rng.random() < 0.5 else None
        account = business.account_by_stable_name(self.scenario.credit_line_accounts[0])
        hundreds = invoice.total_amount // 100
        count = min(rng.randint(1, 3), hundreds)
        cuts = sorted(rng.sample(range(1, hundreds), count - 1)) if count > 1 else []
        lines = []
        for low, high in zip([0, *cuts], [*cuts, hundreds]):
            subtotal = (high - low) * 100
            quantity = rng.choice([q for q in (1, 2, 4, 5) if subtotal % q == 0])
            lines.append(InvoiceLine(
                id=self.invoice_ids.new(), invoice_id=invoice.id, description=rng.choice(PRODUCTS),
                unit_price=subtotal // quantity, quantity=str(quantity), subtotal=subtotal,
                account_id=account.id if account is not None else None,
            ))
        invoice.line_items = tuple(lines)

    def customer(self, with_external_id: bool) -> Customer:
        is_company = self.rng.random() < 0.6
        return Customer(
            id=self.ids.new(),
            external_id=f"cus_{self.rng.randrange(10**8):08d}" if with_external_id else None,
            individual_name=self.fake.name(),
            company_name=self.fake.company() if is_company else None,
            email=self.fake.email(),
            mobile_phone=self.phone(),
            office_phone=self.phone() if is_company else None,
            address_string=self.fake.address().replace("\n", ", "),
            memo=None,
            status="ACTIVE",
        )

    def batch_metadata(self, batch: int) -> dict:
        """The seed's metadata of a batch of ten credits: one dict for the ten. The store never
        changes a metadata dict in place (an update replaces it), so sharing it is safe and
        saves ~200 bytes a seeded credit."""
        found = self._batches.get(batch)
        if found is None:
            found = self._batches[batch] = {"source": "seed", "batch": batch}
        return found

    def tags(self, business: Business, count: int) -> tuple[Tag, ...]:
        tags = []
        for key in self.rng.sample(sorted(TAG_VOCABULARY), count):
            display, values = TAG_VOCABULARY[key]
            value = self.rng.choice(values)
            dimension_id = business.tag_dimensions.setdefault(key, self.ids.new())
            definition_id = business.tag_definitions.setdefault((key, value), self.ids.new())
            tags.append(Tag(self.ids.new(), key, value, dimension_id, definition_id, display, sys.intern(value.title())))
        return tuple(tags)

    def credit(self, business: Business, customers: list[Customer], number: int, counts: dict) -> CustomerCredit:
        accounts = [business.account_by_stable_name(name) for name in self.scenario.credit_line_accounts]
        customer = self.rng.choice(customers)
        created = self.moment(earliest_days=1)
        updated = created + timedelta(seconds=self.rng.randint(0, 86400))
        rich = self.rng.random() < counts["tagged_share"]
        credit_id = self.ids.new()
        lines = [
            LineItem(
                id=self.ids.new(),
                ledger_account=self.rng.choice(accounts),
                amount=self.rng.randint(5, 500) * 100,
                memo=self.rng.choice(MEMOS) if rich else None,
                metadata={"sku": f"SKU-{self.rng.randrange(10**4):04d}"} if rich else None,
                reference_number=None,
                transaction_tags=self.tags(business, 1) if rich else NO_TAGS,
            )
            for _ in range(self.rng.randint(1, 3))
        ]
        credit = CustomerCredit(
            id=credit_id,
            business_id=business.id,
            customer=customer,
            line_items=lines,
            created_at=format_timestamp(created),
            updated_at=format_timestamp(updated),
            external_id=f"credit-{number + 1:05d}" if self.rng.random() < 0.75 else None,
            sent_at=format_timestamp(created + timedelta(hours=1)) if self.rng.random() < 0.8 else None,
            transaction_tags=self.tags(business, 2) if rich else NO_TAGS,
            memo=self.rng.choice(MEMOS) if rich else None,
            metadata=self.batch_metadata(number // 10) if rich else None,
            reference_number=f"CR-{number + 1:05d}" if rich else None,
        )
        draw = self.rng.random()
        shares = counts["allocations"]
        if draw < shares.get("full", 0):
            self.allocate_fully(business, credit)
        elif draw < shares.get("full", 0) + shares.get("partial", 0):
            self.allocate_partly(business, credit)
        return credit

    def open_invoices(self, business: Business, credit: CustomerCredit) -> list[Invoice]:
        return [
            invoice for invoice in business.invoices.values()
            if invoice.customer_id == credit.customer.id and invoice.outstanding_balance > 1
        ]

    def allocate(self, credit: CustomerCredit, invoice: Invoice, amount: int) -> None:
        # The seeder tracks balances itself; the store recomputes them from the credits (and
        # paid_at from the balance).
        invoice.credited_amount += amount
        invoice.updated_at = max(invoice.updated_at or credit.updated_at, credit.updated_at)
        credit.allocations = (*credit.allocations, Allocation(self.ids.new(), credit.id, invoice.id, amount))

    def allocate_partly(self, business: Business, credit: CustomerCredit) -> None:
        """One or two allocations that leave part of the credit unapplied."""
        remaining = credit.total_amount - 1
        for invoice in self.open_invoices(business, credit)[: self.rng.randint(1, 2)]:
            amount = min(remaining, invoice.outstanding_balance, self.rng.randint(1, 100) * 100)
            if amount <= 0:
                break
            self.allocate(credit, invoice, amount)
            remaining -= amount

    def allocate_fully(self, business: Business, credit: CustomerCredit) -> None:
        """Apply the whole credit to one open invoice, shrinking the credit to fit if needed."""
        invoices = self.open_invoices(business, credit)
        if not invoices:
            return
        invoice = max(invoices, key=lambda i: i.outstanding_balance)
        if credit.total_amount > invoice.outstanding_balance:
            credit.line_items = credit.line_items[:1]
            credit.line_items[0].amount = min(credit.line_items[0].amount, invoice.outstanding_balance)
        self.allocate(credit, invoice, credit.total_amount)


def build_store(scenario: Scenario, seed: int) -> Store:
    """A fresh store holding the scenario's data for this seed (a template: see Templates)."""
    with _FAKERS_LOCK:
        seeder = _Seeder(scenario, seed)
        businesses = [seeder.business(counts) for counts in scenario.businesses]
    store = Store(businesses, seeder.ids)
    # Records the fixtures leave undated are stamped at the scenario's epoch: no wall clock.
    epoch = format_timestamp(scenario.epoch)
    for position, body in enumerate(scenario.fixtures):
        try:
            store, _ = fixtures.apply(store, body, lambda: epoch)
        except fixtures.FixtureError as exc:
            raise ScenarioError(f"scenario {scenario.path}: fixtures[{position}]: {exc}") from None
    return store


class Templates:
    """Seeded stores kept once per scenario and seed; every namespace, reset and scenario load
    gets a clone of one (`Store.clone`) instead of running Faker again: ~0.1 ms instead of
    ~15 ms for the default scenario, which is what makes a fresh namespace per test cheap.

    A clone is byte for byte what seeding would make (tested). The templates are never handed
    out, so nothing writes to them. They are bounded by the credits they hold (a scenario of
    100,000 credits is ~200 MB): past `max_credits`, the least recently used are forgotten (the
    newest is always kept), and seeded again if asked for."""

    def __init__(self, max_credits: int = 250_000) -> None:
        self.max_credits = max_credits
        self._stores: OrderedDict[str, tuple[Store, int]] = OrderedDict()
        self._lock = threading.Lock()

    def store(self, scenario: Scenario, seed: int, clock=None) -> Store:
        key = f"{seed}:{scenario.content}"
        with self._lock:
            found = self._stores.get(key)
            if found is not None:
                self._stores.move_to_end(key)
        if found is None:
            template = build_store(scenario, seed)
            found = (template, sum(len(business.credits) for business in template.businesses.values()))
            with self._lock:
                self._stores[key] = found
                while len(self._stores) > 1 and sum(credits for _, credits in self._stores.values()) > self.max_credits:
                    self._stores.popitem(last=False)
        return found[0].clone(clock)
