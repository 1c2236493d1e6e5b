"""The in-memory store and the business rules of customer credits (the embedded default).

This is the sandbox's backend in moto's sense: plain Python, no HTTP and no connexion. Handlers
hand it the parsed request fields (named as in Layer's API) and get model objects back; every
rule violation is raised as a `StoreError` that names the field concerned, and the HTTP layer
(`sandbox.errors`) decides the status. Each write checks every rule before it changes anything,
so a rejected request never leaves a half-applied change.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from ..models import (
    Allocation,
    Business,
    Customer,
    CustomerCredit,
    Invoice,
    LedgerAccount,
    LineItem,
    Tag,
)
from ..pagination import CreditIndexes, Cursor, InvalidCursor, Key, Page, SortedIndex, page_of, paginate
from ..timestamps import format_timestamp, normalize_timestamp
from .protocol import InvalidInput, NotFound, RuleViolation, StoreError  # noqa: F401 - StoreError: re-exported

METADATA_LIMIT_BYTES = 1024
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
# Metadata goes back out in every response that holds its credit, and the API's responses are
# written with orjson (sandbox.jsontext), which writes integers of at most 64 bits and nests at
# most 255 levels (a page's envelope takes six). A write the sandbox could not answer would be
# stored, logged and then answered 500, and so would every later list of its namespace, restart
# after restart: so what it cannot send back is refused when written, and when imported.
METADATA_DEPTH_LIMIT = 64


def metadata_problem(metadata) -> str | None:
    """Why a metadata value cannot be kept ("is ...": too large, too deep, an integer beyond
    64 bits), or None. The one check of writes (`Store`) and of imports (`sandbox.snapshot`)."""
    if metadata is None:
        return None
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > METADATA_LIMIT_BYTES:
        return f"is {size} bytes of JSON; the limit is {METADATA_LIMIT_BYTES}"
    pending = [(metadata, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, int) and not isinstance(item, bool) and not INT64_MIN <= item <= INT64_MAX:
            return f"holds the integer {item}, outside the signed 64-bit range"
        if isinstance(item, (dict, list)):
            if depth > METADATA_DEPTH_LIMIT:
                return f"nests more than {METADATA_DEPTH_LIMIT} levels of objects and arrays"
            pending.extend((value, depth + 1) for value in (item.values() if isinstance(item, dict) else item))
    return None


class IdSource:
    """Every id the store hands out comes from one seeded generator, so runs repeat exactly."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)
        # How many ids this source has handed out: a state file's log records it instead of the
        # generator's 2.5 KB state, and replays the generator that far (sandbox.persistence).
        self.drawn = 0

    def new(self) -> str:
        self.drawn += 1
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def skip(self, count: int) -> None:
        """Move on as if `count` more ids had been handed out."""
        for _ in range(count):
            self.new()

    def clone(self) -> IdSource:
        """A generator that hands out the same ids from here on as this one."""
        copy = IdSource(0)
        copy._random.setstate(self._random.getstate())
        copy.drawn = self.drawn
        return copy

    def state(self) -> tuple:
        return self._random.getstate()

    def set_state(self, state: tuple) -> None:
        self._random.setstate(state)


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CreditFilters:
    """List filters; `None` means "no constraint". Timestamps are fixed-width UTC strings."""

    customer_id: str | None = None
    sent_at_start: str | None = None
    sent_at_end: str | None = None
    reference_numbers: frozenset[str] | None = None
    memo: str | None = None
    memo_contains: str | None = None

    def predicate(self) -> Callable[[CustomerCredit], bool] | None:
        """A test for the filters other than the customer (which picks an index instead)."""
        checks: list[Callable[[CustomerCredit], bool]] = []
        if self.sent_at_start is not None:
            start = self.sent_at_start
            checks.append(lambda c: c.sent_at is not None and c.sent_at >= start)
        if self.sent_at_end is not None:
            end = self.sent_at_end
            checks.append(lambda c: c.sent_at is not None and c.sent_at < end)
        if self.reference_numbers is not None:
            wanted = self.reference_numbers
            checks.append(lambda c: c.reference_number in wanted)
        if self.memo is not None:
            memo = self.memo
            checks.append(lambda c: c.memo == memo)
        if self.memo_contains is not None:
            needle = self.memo_contains.casefold()
            checks.append(lambda c: c.memo is not None and needle in c.memo.casefold())
        if not checks:
            return None
        return lambda credit: all(check(credit) for check in checks)


# The members of a customer a client writes (Layer's SDK: `UpsertCustomerSchema`); each nullable.
CUSTOMER_FIELDS = ("external_id", "individual_name", "company_name", "email", "mobile_phone",
                   "office_phone", "address_string", "memo")
ARCHIVED = "ARCHIVED"


def _customer_matches(q: str | None) -> Callable[[Customer], bool] | None:
    """The `q` search of the customer list: a case-insensitive substring of a name, the email or
    the external id."""
    if q is None:
        return None
    needle = q.casefold()
    return lambda c: any(value is not None and needle in value.casefold() for value in (
        c.individual_name, c.company_name, c.email, c.external_id))


def customer_listed(q: str | None, identity: str | None) -> Callable[[Customer], bool]:
    """Whether the customer list shows a customer: active, matching `q`, and with a name
    (IDENTIFIED) or without one (UNIDENTIFIED) when `identity` asks."""
    matches = _customer_matches(q)

    def listed(customer: Customer) -> bool:
        if customer.status == ARCHIVED or (matches is not None and not matches(customer)):
            return False
        if identity is None:
            return True
        named = customer.individual_name is not None or customer.company_name is not None
        return named == (identity == "IDENTIFIED")
    return listed


@dataclass(frozen=True, slots=True)
class InvoiceFilters:
    """Invoice list filters; `None` means "no constraint". Timestamps are fixed-width UTC strings."""

    statuses: frozenset[str] | None = None
    due_at_start: str | None = None
    due_at_end: str | None = None
    q: str | None = None

    def predicate(self, customers: dict[str, Customer]) -> Callable[[Invoice], bool] | None:
        checks: list[Callable[[Invoice], bool]] = []
        if self.statuses is not None:
            statuses = self.statuses
            checks.append(lambda i: i.status in statuses)
        if self.due_at_start is not None:
            start = self.due_at_start
            checks.append(lambda i: i.due_at is not None and i.due_at >= start)
        if self.due_at_end is not None:
            end = self.due_at_end
            checks.append(lambda i: i.due_at is not None and i.due_at < end)
        if self.q is not None:
            needle = self.q.casefold()

            def found(invoice: Invoice) -> bool:
                customer = customers.get(invoice.customer_id)
                texts = (invoice.invoice_number, invoice.recipient_name, invoice.external_id, invoice.memo,
                         *((customer.individual_name, customer.company_name) if customer else ()))
                return any(text is not None and needle in text.casefold() for text in texts)
            checks.append(found)
        if not checks:
            return None
        return lambda invoice: all(check(invoice) for check in checks)


def invoice_key(invoice: Invoice) -> Key:
    """Invoices list by `sent_at` (unsent last when ascending), ties broken by id."""
    return (1, "", invoice.id) if invoice.sent_at is None else (0, invoice.sent_at, invoice.id)


def timestamp_input(value: str | None, field: str) -> str | None:
    """A client's date or date-time in the wire format; InvalidInput naming `field` if it is none."""
    if value is None:
        return None
    try:
        return normalize_timestamp(value)
    except ValueError:
        raise InvalidInput(f"{field} {value!r} is not a valid date or date-time", field=field) from None


class Store:
    """All businesses of one namespace, guarded by one lock: the memory implementation of
    `sandbox.stores.protocol.CreditStore`.

    Ids are lower-case UUIDs; ids from clients are looked up case-insensitively, as UUIDs are.
    """

    def __init__(
        self,
        businesses: Iterable[Business],
        ids: IdSource,
        clock: Callable[[], datetime] = system_clock,
        *,
        _indexed_like: Store | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.ids = ids
        self.clock = clock
        # Called, under the lock, with the business and what a write has just changed (keyword
        # `credit` and `invoices`, or `customer`): how --state-file logs every write before it
        # is acknowledged (sandbox.runtime).
        self.on_write: Callable[..., None] | None = None
        self.businesses: dict[str, Business] = {b.id: b for b in businesses}
        self._indexes: dict[str, CreditIndexes] = {}
        self._external_ids: dict[str, dict[str, str]] = {}
        # Per business: customer ids in the order they were made (the customer list's order;
        # customers are archived, never removed), and invoices by sent_at (made on first list).
        self._customer_order: dict[str, list[str]] = {}
        self._invoice_orders: dict[str, SortedIndex] = {}
        # Invoices the write under way re-applied allocations to, with their credited amount
        # before it: those whose amount moved are stamped and reported by _wrote.
        self._touched: dict[str, tuple[Invoice, int]] = {}
        if _indexed_like is not None:  # a clone: same credits, so the same orders and balances
            for business in self.businesses.values():
                self._indexes[business.id] = _indexed_like._indexes[business.id].clone(business.credits)
                self._external_ids[business.id] = dict(_indexed_like._external_ids[business.id])
                self._customer_order[business.id] = list(_indexed_like._customer_order[business.id])
            return
        for business in self.businesses.values():
            live = [credit for credit in business.credits.values() if not credit.is_deleted]
            self._indexes[business.id] = CreditIndexes(business.credits, live)
            self._external_ids[business.id] = {}
            self._customer_order[business.id] = list(business.customers)
            for invoice in business.invoices.values():
                invoice.credited_amount = 0
                invoice.business_id = business.id
            for credit in live:
                self._index(business, credit, sorted_already=True)
            for invoice in business.invoices.values():  # paid_at as the balances now say
                if invoice.outstanding_balance > 0:
                    invoice.paid_at = None
                elif invoice.paid_at is None:
                    invoice.paid_at = invoice.updated_at or invoice.sent_at
        self._touched.clear()

    def clone(self, clock: Callable[[], datetime] | None = None) -> Store:
        """A store holding a copy of this one's data and id generator, on its own clock: the same
        bytes as the seeding that made this one, at a small fraction of its cost (its indexes
        are copied, not sorted again)."""
        with self.lock:
            businesses = [business.clone() for business in self.businesses.values()]
            return Store(businesses, self.ids.clone(), clock or self.clock, _indexed_like=self)

    # ----------------------------------------------------------------------------- reads

    def business(self, business_id: str) -> Business:
        business = self.businesses.get(business_id.lower())
        if business is None:
            raise NotFound(f"Business {business_id} not found", field="businessId",
                           resource="business", id=business_id)
        return business

    def credit(self, business_id: str, credit_id: str) -> CustomerCredit:
        """A live credit of this business; deleted ones and other businesses' ones are 'not found'."""
        with self.lock:
            business_id = business_id.lower()
            business = self.business(business_id)
            credit = business.credits.get(credit_id.lower())
            if credit is None or credit.is_deleted:
                raise NotFound(f"Customer credit {credit_id} not found", field="customerCreditId",
                               resource="customer_credit", id=credit_id)
            return credit

    def list_credits(
        self,
        business_id: str,
        filters: CreditFilters,
        *,
        sort_by: str = "created_at",
        sort_order: str = "ASC",
        limit: int = 100,
        cursor: str | None = None,
        with_total: bool = False,
    ) -> Page:
        with self.lock:
            business_id = business_id.lower()
            business = self.business(business_id)
            if filters.customer_id is not None and filters.customer_id.lower() not in business.customers:
                raise NotFound(f"Customer {filters.customer_id} not found", field="customer_id",
                               resource="customer", id=filters.customer_id)
            try:
                return paginate(
                    self._indexes[business_id],
                    business.credits,
                    sort_by=sort_by,
                    sort_order=sort_order,
                    limit=limit,
                    cursor=cursor,
                    customer_id=filters.customer_id.lower() if filters.customer_id else None,
                    matches=filters.predicate(),
                    with_total=with_total,
                )
            except InvalidCursor as exc:
                raise InvalidInput(f"cursor {exc}", field="cursor") from None

    def customer(self, business_id: str, customer_id: str) -> Customer:
        """A customer of this business, archived ones included (Layer still fetches them)."""
        with self.lock:
            customer = self.business(business_id).customers.get(customer_id.lower())
            if customer is None:
                raise NotFound(f"Customer {customer_id} not found", field="customerId",
                               resource="customer", id=customer_id)
            return customer

    def list_customers(self, business_id: str, *, q: str | None = None, identity: str | None = None,
                       limit: int = 100, cursor: str | None = None) -> Page:
        """Active customers in the order they were made; archived ones are left out, as Layer
        leaves them out of its list. `identity`: IDENTIFIED lists only customers with a name
        (individual or company), UNIDENTIFIED only those without (Layer's SDK always asks for
        IDENTIFIED)."""
        with self.lock:
            business_id = business_id.lower()
            business = self.business(business_id)
            order = self._customer_order[business_id]
            start = 0
            if cursor is not None:
                try:
                    decoded = Cursor.decode(cursor, "customers")
                    _, position, after_id = decoded.after
                    start = int(position) + 1
                    if ((decoded.sort_by, decoded.sort_order) != ("created_at", "ASC") or not 0 < start <= len(order)
                            or order[start - 1] != after_id):
                        raise InvalidCursor("is not a cursor this sandbox issued for this list")
                except InvalidCursor as exc:
                    raise InvalidInput(f"cursor {exc}", field="cursor") from None
                except ValueError:
                    raise InvalidInput("cursor is not a cursor this sandbox issued for this list",
                                       field="cursor") from None
            listed = customer_listed(q, identity)

            items: list[Customer] = []
            has_more, last = False, start - 1
            for position in range(start, len(order)):
                customer = business.customers[order[position]]
                if not listed(customer):
                    continue
                if len(items) == limit:
                    has_more = True
                    break
                items.append(customer)
                last = position
            next_cursor = Cursor("created_at", "ASC", (0, str(last), order[last]), "customers").encode() if has_more else None
            return Page(items, next_cursor, has_more, "created_at", "ASC", None)

    def customers_of(self, business_id: str, customer_ids: Iterable[str]) -> dict[str, Customer]:
        with self.lock:
            customers = self.business(business_id).customers
            return {cid: customers[cid] for cid in customer_ids if cid in customers}

    def all_businesses(self) -> list[Business]:
        with self.lock:
            return list(self.businesses.values())

    def invoice(self, business_id: str, invoice_id: str) -> Invoice:
        with self.lock:
            invoice = self.business(business_id).invoices.get(invoice_id.lower())
            if invoice is None:
                raise NotFound(f"Invoice {invoice_id} not found", field="invoiceId",
                               resource="invoice", id=invoice_id)
            return invoice

    def list_invoices(self, business_id: str, filters: InvoiceFilters, *, sort_order: str = "ASC",
                      limit: int = 100, cursor: str | None = None, with_total: bool = False) -> Page:
        """Invoices by `sent_at` (the one sort Layer's SDK asks for), keyset-paginated."""
        with self.lock:
            business_id = business_id.lower()
            business = self.business(business_id)
            index = self._invoice_orders.get(business_id)
            if index is None:
                invoices = business.invoices
                ordered = sorted(invoices.values(), key=invoice_key)
                index = self._invoice_orders[business_id] = SortedIndex(
                    lambda invoice_id: invoice_key(invoices[invoice_id]), [i.id for i in ordered])
            try:
                return page_of(index, business.invoices, invoice_key, kind="invoices", sort_by="sent_at", sort_order=sort_order,
                               limit=limit, cursor=cursor, matches=filters.predicate(business.customers),
                               with_total=with_total)
            except InvalidCursor as exc:
                raise InvalidInput(f"cursor {exc}", field="cursor") from None

    # ----------------------------------------------------------------------------- customers

    def create_customer(self, business_id: str, params: dict) -> tuple[Customer, bool]:
        """Create a customer, or update the one with the same `external_id` (Layer's upsert, as
        for credits: archived customers included). Returns it and whether it was made."""
        with self.lock:
            business = self.business(business_id)
            external_id = params.get("external_id")
            existing = business.customer_by_external_id(external_id) if external_id is not None else None
            if existing is not None:
                return self._change_customer(business, existing, params), False
            customer_id = self.ids.new()
            while customer_id in business.customers:
                customer_id = self.ids.new()
            customer = Customer(id=customer_id, **{name: params.get(name) for name in CUSTOMER_FIELDS})
            business.customers[customer.id] = customer
            self._customer_order[business.id].append(customer.id)
            self._wrote_customer(business, customer)
            return customer, True

    def update_customer(self, business_id: str, customer_id: str, params: dict) -> Customer:
        """Set the given members (a null clears one); the others are kept."""
        with self.lock:
            customer = self.customer(business_id, customer_id)
            business = self.business(business_id)
            external_id = params.get("external_id")
            if external_id is not None and external_id != customer.external_id:
                owner = business.customer_by_external_id(external_id)
                if owner is not None:
                    raise RuleViolation(f"external_id {external_id!r} is already used by customer {owner.id}",
                                        field="external_id")
            return self._change_customer(business, customer, params)

    def archive_customer(self, business_id: str, customer_id: str) -> Customer:
        """Status ARCHIVED: left out of the list, still fetched by id; takes no new credits."""
        with self.lock:
            customer = self.customer(business_id, customer_id)
            if customer.status == ARCHIVED:
                return customer
            return self._change_customer(self.business(business_id), customer, {}, status=ARCHIVED)

    def _change_customer(self, business: Business, customer: Customer, params: dict,
                         status: str | None = None) -> Customer:
        """A new customer record with the changes, in place of the old one everywhere it shows
        (credits embed their customer): records another store may share are never changed."""
        changed = customer.copy()
        for name in CUSTOMER_FIELDS:
            if name in params:
                setattr(changed, name, params[name])
        if status is not None:
            changed.status = status
        if changed == customer:
            return customer
        business.customers[changed.id] = changed
        for credit in self._credits_of_customer(business, changed.id):
            self._own(business, credit).customer = changed
        self._wrote_customer(business, changed)
        return changed

    def _credits_of_customer(self, business: Business, customer_id: str) -> list[CustomerCredit]:
        """Every credit of the customer, deleted ones included (each embeds its customer)."""
        return [credit for credit in business.credits.values() if credit.customer.id == customer_id]

    def _wrote_customer(self, business: Business, customer: Customer) -> None:
        if self.on_write is not None:
            self.on_write(business, customer=customer)

    # ----------------------------------------------------------------------------- writes

    def create_credit(self, business_id: str, params: dict) -> tuple[CustomerCredit, bool]:
        """Create a credit, or update the live one with the same `external_id` (Layer's upsert).

        Returns the credit and whether it was created.
        """
        with self.lock:
            business_id = business_id.lower()
            business = self.business(business_id)
            external_id = params.get("external_id")
            existing_id = self._external_ids[business_id].get(external_id) if external_id else None
            if existing_id is not None:
                return self._update(business, business.credits[existing_id], params), False
            return self._create(business, params), True

    def update_credit(self, business_id: str, credit_id: str, params: dict) -> CustomerCredit:
        with self.lock:
            business_id = business_id.lower()
            credit = self.credit(business_id, credit_id)
            return self._update(self.businesses[business_id], credit, params)

    def delete_credit(self, business_id: str, credit_id: str) -> CustomerCredit:
        """Soft delete: stamp `deleted_at`, free its allocations, drop it from lists."""
        with self.lock:
            business_id = business_id.lower()
            credit = self.credit(business_id, credit_id)
            business = self.businesses[business_id]
            self._unindex(business, credit)
            credit = self._own(business, credit)
            now = self._stamp(credit)
            credit.deleted_at = now
            credit.updated_at = now
            self._wrote(business, credit)
            return credit

    # ----------------------------------------------------------------------------- rules

    def _create(self, business: Business, params: dict) -> CustomerCredit:
        customer = self._resolve_customer(business, params, current=None)
        credit_id = self.ids.new()
        while credit_id in business.credits:  # an imported id generator may replay old ids
            credit_id = self.ids.new()
        lines = self._build_lines(business, params["line_items"])
        allocations = self._build_allocations(
            business, credit_id, params.get("allocations") or [], customer, lines, own=()
        )
        self._check_metadata(params.get("metadata"), "metadata")
        sent_at = timestamp_input(params.get("sent_at"), "sent_at")
        # Every rule holds: from here on nothing can fail.
        self._tag_lines(business, lines, params["line_items"])
        tags = self._build_tags(business, params.get("tags") or [])
        now = self._now()
        credit = CustomerCredit(
            id=credit_id,
            business_id=business.id,
            customer=customer,
            line_items=lines,
            created_at=now,
            updated_at=now,
            external_id=params.get("external_id"),
            sent_at=sent_at,
            allocations=allocations,
            transaction_tags=tags,
            memo=params.get("memo"),
            metadata=params.get("metadata"),
            reference_number=params.get("reference_number"),
        )
        business.credits[credit.id] = credit
        self._index(business, credit)
        self._wrote(business, credit)
        return credit

    def _update(self, business: Business, credit: CustomerCredit, params: dict) -> CustomerCredit:
        # Work out every new value first; assign only when all rules hold.
        changes: dict = {}
        if "customer_id" in params or "customer_external_id" in params:
            changes["customer"] = self._resolve_customer(business, params, current=credit.customer)
        customer = changes.get("customer", credit.customer)
        if "external_id" in params and params["external_id"] != credit.external_id:
            owner = self._external_ids[business.id].get(params["external_id"])
            if owner is not None and owner != credit.id:
                raise RuleViolation(
                    f"external_id {params['external_id']!r} is already used by customer credit {owner}",
                    field="external_id",
                )
            changes["external_id"] = params["external_id"]
        if "line_items" in params:
            changes["line_items"] = self._build_lines(business, params["line_items"])
        lines = changes.get("line_items", credit.line_items)
        if "allocations" in params or "line_items" in params or "customer" in changes:
            requested = (
                params["allocations"]
                if "allocations" in params
                else [{"invoice_id": a.invoice_id, "amount": a.amount} for a in credit.allocations]
            )
            changes["allocations"] = self._build_allocations(
                business, credit.id, requested or [], customer, lines, own=credit.allocations,
                field="allocations" if "allocations" in params else "line_items",
            )
        if "metadata" in params:
            self._check_metadata(params["metadata"], "metadata")
            changes["metadata"] = params["metadata"]
        if "sent_at" in params:
            changes["sent_at"] = timestamp_input(params["sent_at"], "sent_at")
        for name in ("memo", "reference_number"):
            if name in params:
                changes[name] = params[name]
        if not params:
            return credit
        # Every rule holds: from here on nothing can fail.
        if "line_items" in changes:
            self._tag_lines(business, changes["line_items"], params["line_items"])
        if "tags" in params:
            changes["transaction_tags"] = self._build_tags(business, params["tags"] or [])
        self._unindex(business, credit)
        if "allocations" in changes:
            # Keep the ids of allocations whose invoice did not change, as Layer keeps rows.
            previous = {a.invoice_id: a.id for a in credit.allocations}
            for allocation in changes["allocations"]:
                allocation.id = previous.pop(allocation.invoice_id, allocation.id)
        credit = self._own(business, credit)
        for name, value in changes.items():
            setattr(credit, name, value)
        credit.updated_at = self._stamp(credit)
        self._index(business, credit)
        self._wrote(business, credit)
        return credit

    def _resolve_customer(self, business: Business, params: dict, current: Customer | None) -> Customer:
        by_id = params.get("customer_id")
        by_external = params.get("customer_external_id")
        if by_id is None and by_external is None:
            if current is not None:
                return current
            raise RuleViolation("customer_id or customer_external_id is required", field="customer_id")
        customer = None
        if by_id is not None:
            customer = business.customers.get(by_id.lower())
            if customer is None:
                raise NotFound(f"Customer {by_id} not found", field="customer_id",
                               resource="customer", id=by_id)
        if by_external is not None:
            match = business.customer_by_external_id(by_external)
            if match is None:
                raise NotFound(f"Customer with external_id {by_external!r} not found",
                               field="customer_external_id", resource="customer")
            if customer is not None and customer.id != match.id:
                raise RuleViolation(
                    "customer_id and customer_external_id name different customers",
                    field="customer_external_id",
                )
            customer = match
        if customer.status == ARCHIVED and (current is None or customer.id != current.id):
            raise RuleViolation(f"Customer {customer.id} is archived and takes no new customer credits",
                                field="customer_external_id" if by_id is None else "customer_id")
        return customer

    def _resolve_account(self, business: Business, identifier: dict, field: str) -> LedgerAccount:
        if identifier["type"] == "AccountId":
            account = business.ledger_accounts.get(identifier["id"].lower())
            if account is None:
                raise NotFound(f"Ledger account {identifier['id']} not found", field=field,
                               resource="ledger_account", id=identifier["id"])
            return account
        account = business.account_by_stable_name(identifier["stable_name"])
        if account is None:
            raise NotFound(
                f"No ledger account with stable name {identifier['stable_name']!r} in this business",
                field=field, resource="ledger_account",
            )
        return account

    def _build_lines(self, business: Business, requested: list[dict]) -> list[LineItem]:
        lines = []
        for position, line in enumerate(requested):
            where = f"line_items[{position}]"
            self._check_metadata(line.get("metadata"), f"{where}.metadata")
            lines.append(
                LineItem(
                    id=self.ids.new(),
                    ledger_account=self._resolve_account(
                        business, line["revenue_account_identifier"], f"{where}.revenue_account_identifier"
                    ),
                    amount=line["amount"],
                    memo=line.get("memo"),
                    metadata=line.get("metadata"),
                    reference_number=line.get("reference_number"),
                )
            )
        if sum(line.amount for line in lines) > INT64_MAX:
            raise RuleViolation("the line items' total exceeds the int64 range", field="line_items")
        return lines

    def _build_allocations(
        self,
        business: Business,
        credit_id: str,
        requested: list[dict],
        customer: Customer,
        lines: list[LineItem],
        own: Iterable[Allocation],
        field: str = "allocations",
    ) -> list[Allocation]:
        """Allocations to open invoices of this customer, within the credit's total.

        `own` are the credit's current allocations, whose amounts count as open again.
        """
        total = sum(line.amount for line in lines)
        released: dict[str, int] = {}
        for allocation in own:
            released[allocation.invoice_id] = released.get(allocation.invoice_id, 0) + allocation.amount
        per_invoice: dict[str, int] = {}
        allocations = []
        for position, item in enumerate(requested):
            where = f"allocations[{position}].invoice_id"
            invoice = business.invoices.get(item["invoice_id"].lower())
            if invoice is None:
                raise NotFound(f"Invoice {item['invoice_id']} not found", field=where,
                               resource="invoice", id=item["invoice_id"])
            if invoice.customer_id != customer.id:
                raise RuleViolation(
                    f"Invoice {invoice.id} belongs to another customer than the credit's", field=where
                )
            if not invoice.open and invoice.id not in released:
                raise RuleViolation(f"Invoice {invoice.id} is voided and takes no credit", field=where)
            per_invoice[invoice.id] = per_invoice.get(invoice.id, 0) + item["amount"]
            open_amount = invoice.outstanding_balance + released.get(invoice.id, 0)
            if per_invoice[invoice.id] > open_amount:
                raise RuleViolation(
                    f"Allocations to invoice {invoice.id} ({per_invoice[invoice.id]}) exceed its "
                    f"outstanding balance ({open_amount})",
                    field=f"allocations[{position}].amount",
                )
            allocations.append(Allocation(self.ids.new(), credit_id, invoice.id, item["amount"]))
        allocated = sum(per_invoice.values())
        if allocated > total:
            raise RuleViolation(
                f"Allocations total {allocated} exceeds the credit's total {total}", field=field
            )
        return allocations

    def _tag_lines(self, business: Business, lines: list[LineItem], requested: list[dict]) -> None:
        for line, item in zip(lines, requested):
            line.transaction_tags = self._build_tags(business, item.get("tags") or [])

    def _build_tags(self, business: Business, requested: list[dict]) -> list[Tag]:
        """Tags for the requested key/value pairs; a new key or value gets its dimension or
        definition id on first use, as Layer creates tag dimensions and values on the fly."""
        tags = []
        for item in requested:
            key, value = item["key"], item["value"]
            dimension_id = business.tag_dimensions.get(key)
            if dimension_id is None:
                dimension_id = business.tag_dimensions[key] = self.ids.new()
            definition_id = business.tag_definitions.get((key, value))
            if definition_id is None:
                definition_id = business.tag_definitions[(key, value)] = self.ids.new()
            tags.append(
                Tag(
                    id=self.ids.new(),
                    key=key,
                    value=value,
                    dimension_id=dimension_id,
                    definition_id=definition_id,
                    dimension_display_name=item.get("dimension_display_name"),
                    value_display_name=item.get("value_display_name"),
                )
            )
        return tags

    @staticmethod
    def _check_metadata(metadata: dict | None, field: str) -> None:
        problem = metadata_problem(metadata)
        if problem is not None:
            raise RuleViolation(f"{field} {problem}", field=field)

    # ----------------------------------------------------------------------------- bookkeeping

    def _index(self, business: Business, credit: CustomerCredit, sorted_already: bool = False) -> None:
        if not sorted_already:
            self._indexes[business.id].add(credit)
        if credit.external_id is not None:
            self._external_ids[business.id][credit.external_id] = credit.id
        for allocation in credit.allocations:
            invoice = business.invoices[allocation.invoice_id]
            self._touched.setdefault(invoice.id, (invoice, invoice.credited_amount))
            invoice.credited_amount += allocation.amount

    def _unindex(self, business: Business, credit: CustomerCredit) -> None:
        self._indexes[business.id].discard(credit)
        if credit.external_id is not None:
            self._external_ids[business.id].pop(credit.external_id, None)
        for allocation in credit.allocations:
            invoice = business.invoices[allocation.invoice_id]
            self._touched.setdefault(invoice.id, (invoice, invoice.credited_amount))
            invoice.credited_amount -= allocation.amount

    @staticmethod
    def _own(business: Business, credit: CustomerCredit) -> CustomerCredit:
        """The credit as this store's own copy, about to be changed: stores cloned from one
        template share its credits (Store.clone), so a write never changes one in place. The copy
        keeps the credit's id, and so its place in the indexes (which hold ids)."""
        mine = credit.copy()
        business.credits[mine.id] = mine
        return mine

    def _wrote(self, business: Business, credit: CustomerCredit) -> None:
        """A credit write is done: the invoices whose balance it moved are stamped (updated_at,
        paid_at), and the credit and those invoices reported to `on_write`."""
        touched = [invoice for invoice, before in self._touched.values() if invoice.credited_amount != before]
        self._touched.clear()
        if touched:
            now = credit.updated_at
            for invoice in touched:
                invoice.settle(now)
        if self.on_write is not None:
            self.on_write(business, credit=credit, invoices=touched)

    def _now(self) -> str:
        return format_timestamp(self.clock())

    def _stamp(self, credit: CustomerCredit) -> str:
        """The time a write to an existing credit (an update or a delete) is stamped with: the
        clock's, or the credit's own latest stamp when the clock reads earlier.

        The clock may be frozen in the past or moved back (`POST /__sandbox/clock`), but a record's
        stamps never run backwards: Layer stamps each write on its own clock, so its data always
        has created_at <= updated_at <= deleted_at, and an import (a state file at start, `PUT
        /__sandbox/state`) refuses a credit that breaks that order, as it should for a hand-written
        document. Stamping a write on a credit from 2025 with a clock frozen in 2020 at the clock's
        time would leave an export, and a --state-file, that the sandbox itself refuses to load.
        Every stamp of an existing credit goes through here; fixed-width stamps sort as text.
        """
        return max(self._now(), credit.created_at, credit.updated_at)



MemoryStore = Store  # its name beside the protocol; `Store` for the code that predates it
