"""The fixtures API: exact records added to a namespace, under every rule the store keeps.

A test says "given this customer with this invoice of 1,000.00" in one call
(`POST /__sandbox/fixtures`), or a scenario file lists the same records under `fixtures:`. The
records keep the ids the caller gives (ids left out are drawn from the store's generator), and
are checked exactly as a state import is: the namespace's state is exported, the records are
added to it, and the whole is imported again (`sandbox.snapshot`), so a customer that does not
exist, allocations above an invoice's balance or a credit's total, a duplicate external id or id,
are refused with a 400 that names the fixture's own field, and nothing changes.

The forms are the API's own where it has one (a credit's `line_items` with an `amount` and a
`revenue_account_identifier` or `stable_name`, `allocations` of `invoice_id` and `amount`), with
the invoice's balance given as Layer shows it: `outstanding_balance` (the rest was paid otherwise).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta

from .jsontext import portable_problem
from .snapshot import StateError, StrictValidator, export_store, import_store, read_timestamp, record_problems, where_of
from .store import ARCHIVED, CUSTOMER_FIELDS, Store
from .timestamps import format_timestamp, parse_timestamp

INVOICE_TERMS_DAYS = 30  # an invoice's due date when none is given, as seeded invoices have
_ID = {"type": "string", "format": "uuid", "pattern": "^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$"}
_TEXT = {"type": ["string", "null"]}
_WHEN = {"type": ["string", "null"], "minLength": 1}
_CENTS = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
_POSITIVE = {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
_ACCOUNT = {"type": "object", "additionalProperties": False, "properties": {
    "type": {"enum": ["AccountId", "StableName"]}, "id": _ID, "stable_name": {"type": "string", "minLength": 1}}}

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "business": {"type": "integer", "minimum": 0, "description": "the business's position (0 = the first)"},
        "business_id": _ID,
        "business_name": {"type": "string", "minLength": 1},
        "ledger_accounts": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["stable_name", "name", "normality", "account_type", "account_subtype"],
            "properties": {"id": _ID, "stable_name": {"type": "string", "minLength": 1}, "name": {"type": "string"},
                           "account_number": _TEXT, "normality": {"enum": ["CREDIT", "DEBIT"]},
                           "account_type": {"type": "string", "minLength": 1},
                           "account_subtype": {"type": "string", "minLength": 1}}}},
        "customers": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "properties": {"id": _ID, "external_id": {"type": ["string", "null"], "minLength": 1},
                           "individual_name": _TEXT, "company_name": _TEXT, "email": _TEXT, "mobile_phone": _TEXT,
                           "office_phone": _TEXT, "address_string": _TEXT, "memo": _TEXT,
                           "status": {"enum": ["ACTIVE", "ARCHIVED"]}}}},
        "invoices": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["customer_id"],
            "anyOf": [{"required": ["total_amount"]}, {"required": ["line_items"]}],
            "properties": {
                "id": _ID, "customer_id": _ID, "external_id": {"type": ["string", "null"], "minLength": 1},
                "invoice_number": _TEXT, "recipient_name": _TEXT, "memo": _TEXT, "custom_payment_instructions": _TEXT,
                "sent_at": _WHEN, "due_at": _WHEN, "voided_at": _WHEN, "total_amount": _POSITIVE,
                "outstanding_balance": _CENTS, "additional_discount": _CENTS, "additional_sales_taxes_total": _CENTS,
                "line_items": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False, "required": ["unit_price"],
                    "properties": {"id": _ID, "external_id": {"type": ["string", "null"], "minLength": 1},
                                   "description": _TEXT, "memo": _TEXT, "unit_price": _CENTS,
                                   "quantity": {"type": "integer", "minimum": 1, "maximum": 10**6},
                                   "discount_amount": _CENTS, "sales_taxes_total": _CENTS,
                                   "account_identifier": _ACCOUNT}}}}}},
        "customer_credits": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["customer_id", "line_items"],
            "properties": {
                "id": _ID, "customer_id": _ID, "external_id": {"type": ["string", "null"], "minLength": 1},
                "memo": _TEXT, "reference_number": _TEXT, "sent_at": _WHEN, "created_at": _WHEN,
                "line_items": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "additionalProperties": False,
                    "required": ["amount", "revenue_account_identifier"],
                    "properties": {"amount": _POSITIVE, "memo": _TEXT, "revenue_account_identifier": _ACCOUNT}}},
                "allocations": {"type": "array", "items": {
                    "type": "object", "additionalProperties": False, "required": ["invoice_id", "amount"],
                    "properties": {"invoice_id": _ID, "amount": _POSITIVE}}}}}},
    },
}
_VALIDATOR = StrictValidator(SCHEMA)
KINDS = ("ledger_accounts", "customers", "invoices", "customer_credits")


class FixtureError(ValueError):
    """Fixtures refused; `problems` name the fixture's own fields (`invoices[0].customer_id: ...`)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
        self.problems = problems

    @property
    def field(self) -> str:
        return self.problems[0].split(":", 1)[0] if self.problems else "(root)"


def apply(store: Store, body: dict, now: Callable[[], str]) -> tuple[Store, dict]:
    """A new store: `store`'s state with the fixtures added, and what was added (ids per kind).
    FixtureError lists every problem; `store` itself is never changed."""
    if not isinstance(body, dict):
        raise FixtureError(["(root): the fixtures are a JSON object"])
    portable = portable_problem(body)
    if portable:
        raise FixtureError([f"(root): {portable}"])
    problems = sorted(f"{where_of(e)}: {e.message}" for e in _VALIDATOR.iter_errors(body))
    if problems:
        raise FixtureError(problems[:50])
    ids = store.ids.clone()  # drawn here; the new store's generator carries on from these draws
    document = export_store(store)
    businesses = document["businesses"]
    business, problems = _business(businesses, body, problems)
    if business is None:
        raise FixtureError(problems)
    offsets = {kind: len(business[kind]) for kind in KINDS}
    added: dict[str, list[str]] = {kind: [] for kind in KINDS}
    moment = now()
    existing = {kind: {item["id"] for item in business[kind]} for kind in KINDS}
    existing["invoice_lines"] = {line["id"] for i in business["invoices"] for line in i.get("line_items") or []}

    def new_id(item: dict, kind: str, where: str) -> str:
        given = item.get("id")
        if given is None:
            return ids.new()
        if given.lower() in existing[kind]:
            problems.append(f"{where}.id: a {kind.rstrip('s').replace('_', ' ')} {given} exists already "
                            "(fixtures add records; reset the namespace to start again)")
        existing[kind].add(given.lower())
        return given.lower()

    for n, account in enumerate(body.get("ledger_accounts") or []):
        record = {**account, "id": new_id(account, "ledger_accounts", f"ledger_accounts[{n}]"),
                  "account_number": account.get("account_number")}
        business["ledger_accounts"].append(record)
    for n, customer in enumerate(body.get("customers") or []):
        record = {name: customer.get(name) for name in CUSTOMER_FIELDS}
        record.update(id=new_id(customer, "customers", f"customers[{n}]"), status=customer.get("status", "ACTIVE"),
                      transaction_tags=[])
        business["customers"].append(record)
    accounts = {a["id"]: a for a in business["ledger_accounts"]}
    by_stable_name = {a["stable_name"]: a["id"] for a in business["ledger_accounts"]}

    def account_id(identifier: dict | None, where: str) -> str | None:
        if identifier is None:
            return None
        if identifier.get("id") is not None:
            if identifier["id"].lower() not in accounts:
                problems.append(f"{where}: no ledger account {identifier['id']} in this business")
            return identifier["id"].lower()
        found = by_stable_name.get(identifier.get("stable_name"))
        if found is None:
            problems.append(f"{where}: no ledger account with stable name {identifier.get('stable_name')!r} "
                            "in this business")
        return found

    for n, invoice in enumerate(body.get("invoices") or []):
        at = f"invoices[{n}]"
        invoice_id = new_id(invoice, "invoices", at)
        lines = []
        for m, line in enumerate(invoice.get("line_items") or []):
            quantity = line.get("quantity", 1)
            lines.append({
                "id": new_id(line, "invoice_lines", f"{at}.line_items[{m}]") if "id" in line else ids.new(),
                "external_id": line.get("external_id"), "invoice_id": invoice_id,
                "description": line.get("description"), "memo": line.get("memo"), "unit_price": line["unit_price"],
                "quantity": str(quantity), "subtotal": line["unit_price"] * quantity,
                "discount_amount": line.get("discount_amount", 0), "sales_taxes_total": line.get("sales_taxes_total", 0),
                "account_identifier": (None if line.get("account_identifier") is None else {
                    "type": "AccountId", "id": account_id(line["account_identifier"],
                                                          f"{at}.line_items[{m}].account_identifier")}),
            })
        extra = invoice.get("additional_sales_taxes_total", 0) - invoice.get("additional_discount", 0)
        total = invoice.get("total_amount")
        if total is None:
            total = sum(l["subtotal"] - l["discount_amount"] + l["sales_taxes_total"] for l in lines) + extra
        if not lines:
            lines = [{"id": ids.new(), "external_id": None, "invoice_id": invoice_id, "description": None,
                      "memo": None, "unit_price": total - extra, "quantity": "1", "subtotal": total - extra,
                      "discount_amount": 0, "sales_taxes_total": 0, "account_identifier": None}]
        outstanding = invoice.get("outstanding_balance", total)
        if outstanding > total:
            problems.append(f"{at}.outstanding_balance: {outstanding} exceeds the total {total}")
        sent_at = read_timestamp(invoice.get("sent_at", moment), f"{at}.sent_at", problems)
        due_at = invoice.get("due_at")
        if due_at is None and "due_at" not in invoice and sent_at is not None:
            try:
                due_at = format_timestamp(parse_timestamp(sent_at) + timedelta(days=INVOICE_TERMS_DAYS))
            except (OverflowError, ValueError):
                problems.append(f"{at}.sent_at: {INVOICE_TERMS_DAYS} days later (the default due_at) is past the "
                                "last date a timestamp can hold; give due_at")
        record = {
            "id": invoice_id, "customer_id": invoice["customer_id"].lower(), "external_id": invoice.get("external_id"),
            "invoice_number": invoice.get("invoice_number"), "sent_at": sent_at,
            "due_at": read_timestamp(due_at, f"{at}.due_at", problems), "paid_at": None,
            "voided_at": read_timestamp(invoice.get("voided_at"), f"{at}.voided_at", problems), "imported_at": None,
            "updated_at": sent_at, "recipient_name": invoice.get("recipient_name"), "memo": invoice.get("memo"),
            "custom_payment_instructions": invoice.get("custom_payment_instructions"), "line_items": lines,
            "additional_discount": invoice.get("additional_discount", 0),
            "additional_sales_taxes_total": invoice.get("additional_sales_taxes_total", 0),
            "total_amount": total, "paid_amount": max(total - outstanding, 0),
        }
        business["invoices"].append(record)
    for n, credit in enumerate(body.get("customer_credits") or []):
        at = f"customer_credits[{n}]"
        credit_id = new_id(credit, "customer_credits", at)
        created = read_timestamp(credit.get("created_at", moment), f"{at}.created_at", problems)
        business["customer_credits"].append({
            "id": credit_id, "external_id": credit.get("external_id"),
            "customer": {"id": credit["customer_id"].lower()},
            "line_items": [{"id": ids.new(), "amount": line["amount"], "memo": line.get("memo"), "metadata": None,
                            "reference_number": None, "transaction_tags": [],
                            "ledger_account": {"id": {"id": account_id(
                                line["revenue_account_identifier"], f"{at}.line_items[{m}].revenue_account_identifier")
                                or "00000000-0000-4000-8000-000000000000"}}}
                           for m, line in enumerate(credit["line_items"])],
            "allocations": [{"id": ids.new(), "customer_credit_id": credit_id, "invoice_id": a["invoice_id"].lower(),
                             "amount": a["amount"]} for a in credit.get("allocations") or []],
            "created_at": created, "updated_at": created, "deleted_at": None,
            "sent_at": read_timestamp(credit.get("sent_at"), f"{at}.sent_at", problems), "memo": credit.get("memo"),
            "metadata": None, "reference_number": credit.get("reference_number"), "transaction_tags": [],
        })
    problems += _unique_and_open(business, offsets)
    for kind in KINDS:  # each added record against the import's schema: the rest was exported so
        for n, record in enumerate(business[kind][offsets[kind]:]):
            problems += record_problems(kind, record, f"{kind}[{n}]")
    if problems:
        raise FixtureError(problems[:50])
    for kind in KINDS:
        added[kind] = [item["id"] for item in business[kind][offsets[kind]:]]
    version, internal, gauss = ids.state()
    document["id_generator"] = [version, list(internal), gauss]
    try:
        new_store = import_store(document, clock=store.clock, shape_checked=True)
    except StateError as exc:
        raise FixtureError(_in_fixture_terms(exc.problems, businesses.index(business), offsets)) from None
    return new_store, {"business_id": business["id"], **added}


def _unique_and_open(business: dict, offsets: dict[str, int]) -> list[str]:
    """What an import would tell of the whole business, told of the fixture that causes it: an
    external id taken already, and allocations above what is left of an invoice."""
    problems = []
    for kind, field, live in (("customers", "external_id", lambda c: True),
                              ("customer_credits", "external_id", lambda c: c.get("deleted_at") is None),
                              ("ledger_accounts", "stable_name", lambda a: True)):
        taken = Counter(item[field] for item in business[kind][:offsets[kind]]
                        if item.get(field) is not None and live(item))
        for n, item in enumerate(business[kind][offsets[kind]:]):
            value = item.get(field)
            if value is not None:
                if taken[value]:
                    problems.append(f"{kind}[{n}].{field}: {value!r} is used already in this business")
                taken[value] += 1
    archived = {c["id"] for c in business["customers"] if c.get("status") == ARCHIVED}
    voided = {i["id"] for i in business["invoices"] if i.get("voided_at") is not None}
    left = {i["id"]: i["total_amount"] - i.get("paid_amount", 0) for i in business["invoices"]}
    for credit in business["customer_credits"][:offsets["customer_credits"]]:
        if credit.get("deleted_at") is None:
            for allocation in credit.get("allocations") or []:
                if allocation["invoice_id"] in left:
                    left[allocation["invoice_id"]] -= allocation["amount"]
    for n, credit in enumerate(business["customer_credits"][offsets["customer_credits"]:]):
        if credit["customer"]["id"] in archived:  # as the API refuses a new credit for one
            problems.append(f"customer_credits[{n}].customer_id: customer {credit['customer']['id']} is archived "
                            "and takes no new customer credits")
        for m, allocation in enumerate(credit["allocations"]):
            invoice_id = allocation["invoice_id"]
            if invoice_id in voided:
                problems.append(f"customer_credits[{n}].allocations[{m}].invoice_id: invoice {invoice_id} is "
                                "voided and takes no credit")
                continue
            if invoice_id not in left:
                problems.append(f"customer_credits[{n}].allocations[{m}].invoice_id: no invoice {invoice_id} "
                                "in this business")
                continue
            if allocation["amount"] > left[invoice_id]:
                problems.append(f"customer_credits[{n}].allocations[{m}].amount: {allocation['amount']} exceeds "
                                f"invoice {invoice_id}'s outstanding balance ({left[invoice_id]})")
            left[invoice_id] -= allocation["amount"]
    return problems


def _business(businesses: list[dict], body: dict, problems: list[str]) -> tuple[dict | None, list[str]]:
    """The export's business the fixtures go to (made when `business_id` names a new one)."""
    if "business" in body and "business_id" in body:
        return None, ["business: give business (a position) or business_id, not both"]
    if "business_id" in body:
        wanted = body["business_id"].lower()
        found = next((b for b in businesses if b["id"] == wanted), None)
        if found is None:  # a new business, empty until the fixtures fill it
            found = {"id": wanted, "name": body.get("business_name") or "Fixture business", "ledger_accounts": [],
                     "customers": [], "invoices": [], "tag_dimensions": {}, "tag_definitions": [],
                     "customer_credits": []}
            businesses.append(found)
        return found, problems
    position = body.get("business", 0)
    if position >= len(businesses):
        return None, [f"business: there are {len(businesses)} businesses; {position} is not one of their positions"]
    return businesses[position], problems


def _in_fixture_terms(problems: list[str], position: int, offsets: dict[str, int]) -> list[str]:
    """An import's problems (`businesses[0].invoices[12].customer_id: ...`) as the fixture's own
    fields (`invoices[0].customer_id: ...`), where they concern a record the fixtures added."""
    told = []
    prefix = f"businesses[{position}]"
    for problem in problems:
        where, _, what = problem.partition(": ")
        text = problem
        if where.startswith(prefix + "."):
            rest = where[len(prefix) + 1:]
            kind, _, tail = rest.partition("[")
            if kind in offsets and tail:
                index, _, remainder = tail.partition("]")
                if index.isdigit() and int(index) >= offsets[kind]:
                    if kind == "customer_credits":  # named as the fixture names them
                        remainder = remainder.replace(".customer.id", ".customer_id").replace(
                            ".updated_at", ".created_at")
                    text = f"{kind}[{int(index) - offsets[kind]}]{remainder}: {what}"
            elif not tail:
                text = f"(root): {what}"
        told.append(text)
    return told

