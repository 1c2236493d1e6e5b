"""Export a store as one JSON document, and build a store back from such a document.

An import is all or nothing: the document is checked first against a JSON schema (shape and
types) and then against every rule the store keeps (references, allocations within totals and
invoice balances, unique external ids among live credits, ...). Any problem rejects the whole
document with the list of problems; the caller keeps its old store until a new one is complete.
Credits are written in Layer's own representation, so an export doubles as a readable fixture.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import jsonschema

from .clock import MAX_OFFSET
from .jsontext import portable_problem
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
from .store import INT64_MAX, IdSource, Store, metadata_problem
from .timestamps import normalize_timestamp

FORMAT = "layer-sandbox/state-v1"


class StateError(ValueError):
    """A state document that cannot be imported; `problems` lists every reason found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:5]) + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""))
        self.problems = problems


# ------------------------------------------------------------------------------ export

def _tag(tag: Tag) -> dict:
    return tag.to_api()


def export_store(store: Store) -> dict:
    with store.lock:
        return {
            "format": FORMAT,
            "id_generator": _random_state(store.ids),
            "businesses": [_export_business(b) for b in store.businesses.values()],
        }


def _random_state(ids: IdSource) -> list:
    version, internal, gauss = ids.state()
    return [version, list(internal), gauss]


def _export_business(business: Business) -> dict:
    return {
        "id": business.id,
        "name": business.name,
        "ledger_accounts": [
            {
                "id": a.id, "stable_name": a.stable_name, "name": a.name, "account_number": a.account_number,
                "normality": a.normality, "account_type": a.account_type,
                "account_type_display": a.account_type_display, "account_subtype": a.account_subtype,
                "account_subtype_display": a.account_subtype_display,
            }
            for a in business.ledger_accounts.values()
        ],
        "customers": [c.export() for c in business.customers.values()],
        "invoices": [i.export() for i in business.invoices.values()],
        "tag_dimensions": dict(business.tag_dimensions),
        "tag_definitions": [{"key": k, "value": v, "id": d} for (k, v), d in business.tag_definitions.items()],
        "customer_credits": [credit.to_api() for credit in business.credits.values()],
    }


# ------------------------------------------------------------------------------ schema

# Lower case, as the sandbox writes them (clients' ids are looked up lower-cased).
_UUID = {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}
_EXTERNAL_ID = {"type": ["string", "null"], "minLength": 1}
_TEXT = {"type": ["string", "null"]}
_AMOUNT = {"type": "integer", "minimum": 1, "maximum": INT64_MAX}
_TAG = {
    "type": "object",
    "required": ["id", "key", "value", "dimension_id", "definition_id"],
    "properties": {
        "id": _UUID, "key": {"type": "string", "minLength": 1}, "value": {"type": "string", "minLength": 1},
        "dimension_id": _UUID, "definition_id": _UUID, "dimension_display_name": _TEXT,
        "value_display_name": _TEXT, "archived_at": _TEXT,
    },
}
_TAGS = {"type": "array", "items": _TAG}
_METADATA = {"type": ["object", "null"]}
_CENTS = {"type": "integer", "minimum": 0, "maximum": INT64_MAX}
_INVOICE_LINE = {
    "type": "object",
    "required": ["id", "unit_price", "quantity", "subtotal"],
    "properties": {
        "id": _UUID, "external_id": _EXTERNAL_ID, "invoice_id": _UUID, "description": _TEXT, "memo": _TEXT,
        "unit_price": _CENTS, "quantity": {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?$"},
        "subtotal": _CENTS, "discount_amount": _CENTS, "sales_taxes_total": _CENTS,
        "account_identifier": {"type": ["object", "null"], "required": ["type", "id"],
                               "properties": {"type": {"const": "AccountId"}, "id": _UUID}},
    },
}
_SCHEMA = {
    "type": "object",
    "required": ["format", "businesses"],
    "properties": {
        "format": {"const": FORMAT},
        "namespace": {"type": "string"},
        "scenario": {"type": "string"},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
        "clock": {
            "type": "object",
            "required": ["mode"],
            "properties": {"mode": {"enum": ["system", "frozen"]}, "frozen_at": _TEXT,
                           # every offset the clock can take (sandbox.clock): its exports load back
                           "offset_seconds": {"type": "number", "minimum": -MAX_OFFSET.total_seconds(),
                                              "maximum": MAX_OFFSET.total_seconds()}},
        },
        "id_generator": {
            "type": "array", "minItems": 3, "maxItems": 3,
            "prefixItems": [{"type": "integer"},
                            {"type": "array", "minItems": 625, "maxItems": 625,
                             "items": {"type": "integer", "minimum": 0, "maximum": 2**32}},
                            {"type": ["number", "null"]}],
        },
        "businesses": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "name", "ledger_accounts", "customers", "invoices", "customer_credits"],
                "properties": {
                    "id": _UUID,
                    "name": {"type": "string"},
                    "ledger_accounts": {"type": "array", "items": {
                        "type": "object",
                        "required": ["id", "stable_name", "name", "normality", "account_type", "account_subtype"],
                        "properties": {
                            "id": _UUID, "stable_name": {"type": "string", "minLength": 1}, "name": {"type": "string"},
                            "account_number": _TEXT, "normality": {"enum": ["CREDIT", "DEBIT"]},
                            "account_type": {"type": "string"}, "account_type_display": {"type": "string"},
                            "account_subtype": {"type": "string"}, "account_subtype_display": {"type": "string"},
                        },
                    }},
                    "customers": {"type": "array", "items": {
                        "type": "object",
                        "required": ["id"],
                        "properties": {
                            "id": _UUID, "external_id": _EXTERNAL_ID, "individual_name": _TEXT, "company_name": _TEXT,
                            "email": _TEXT, "mobile_phone": _TEXT, "office_phone": _TEXT,
                            "address_string": _TEXT, "memo": _TEXT, "status": {"enum": ["ACTIVE", "ARCHIVED"]},
                            "transaction_tags": _TAGS,
                        },
                    }},
                    "invoices": {"type": "array", "items": {
                        "type": "object",
                        "required": ["id", "customer_id", "total_amount"],
                        "properties": {
                            "id": _UUID, "customer_id": _UUID, "invoice_number": _TEXT, "external_id": _EXTERNAL_ID,
                            "sent_at": _TEXT, "due_at": _TEXT, "paid_at": _TEXT, "voided_at": _TEXT,
                            "imported_at": _TEXT, "updated_at": _TEXT, "recipient_name": _TEXT, "memo": _TEXT,
                            "custom_payment_instructions": _TEXT, "total_amount": _AMOUNT, "paid_amount": _CENTS,
                            "additional_discount": _CENTS, "additional_sales_taxes_total": _CENTS,
                            "line_items": {"type": "array", "items": _INVOICE_LINE},
                        },
                    }},
                    "tag_dimensions": {"type": "object", "additionalProperties": _UUID},
                    "tag_definitions": {"type": "array", "items": {
                        "type": "object", "required": ["key", "value", "id"],
                        "properties": {"key": {"type": "string"}, "value": {"type": "string"}, "id": _UUID},
                    }},
                    "customer_credits": {"type": "array", "items": {
                        "type": "object",
                        "required": ["id", "customer", "line_items", "created_at", "updated_at"],
                        "properties": {
                            "id": _UUID,
                            "external_id": _EXTERNAL_ID,
                            "customer": {"type": "object", "required": ["id"], "properties": {"id": _UUID}},
                            "sent_at": _TEXT,
                            "line_items": {"type": "array", "minItems": 1, "items": {
                                "type": "object",
                                "required": ["id", "ledger_account", "amount"],
                                "properties": {
                                    "id": _UUID,
                                    "ledger_account": {"type": "object", "required": ["id"], "properties": {
                                        "id": {"type": "object", "required": ["id"], "properties": {"id": _UUID}}}},
                                    "amount": _AMOUNT, "memo": _TEXT, "metadata": _METADATA,
                                    "reference_number": _TEXT, "transaction_tags": _TAGS,
                                },
                            }},
                            "allocations": {"type": "array", "items": {
                                "type": "object",
                                "required": ["id", "customer_credit_id", "invoice_id", "amount"],
                                "properties": {"id": _UUID, "customer_credit_id": _UUID, "invoice_id": _UUID,
                                               "amount": _AMOUNT},
                            }},
                            "created_at": {"type": "string"}, "updated_at": {"type": "string"},
                            "deleted_at": _TEXT, "transaction_tags": _TAGS, "memo": _TEXT,
                            "metadata": _METADATA, "reference_number": _TEXT,
                        },
                    }},
                },
            },
        },
    },
}
# JSON Schema counts 500.0 as an integer; the API's amounts are integers, and a float kept as
# one would break every later answer that holds it. Here an integer is a JSON integer.
StrictValidator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: type(value) is int),
)
_VALIDATOR = StrictValidator(_SCHEMA)
BUSINESS_PARTS = _SCHEMA["properties"]["businesses"]["items"]["properties"]


def record_problems(kind: str, record: dict, where: str) -> list[str]:
    """What is wrong with one record of a business's `kind` list (`customers`, `invoices`, ...)
    against the import schema: how the fixtures API checks the records it adds alone."""
    validator = StrictValidator(BUSINESS_PARTS[kind]["items"])
    return [f"{where}{'.' + where_of(e) if e.absolute_path else ''}: {e.message}" for e in validator.iter_errors(record)]


def where_of(error: jsonschema.ValidationError) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".") or "(root)"


# ------------------------------------------------------------------------------ import

def import_store(document, clock: Callable | None = None, *, shape_checked: bool = False) -> Store:
    """A new store from an exported document; StateError lists every problem found.

    `shape_checked`: the caller has checked the document's shape already (the fixtures API: an
    export of a live store plus records it checked one by one), so only the rules are checked."""
    portable = None if shape_checked else portable_problem(document)
    if portable:
        raise StateError([f"(document): {portable}"])
    schema_problems = [] if shape_checked else [f"{where_of(e)}: {e.message}" for e in _VALIDATOR.iter_errors(document)]
    if schema_problems:
        raise StateError(sorted(schema_problems)[:50])
    problems: list[str] = []
    businesses = [_import_business(item, f"businesses[{n}]", problems) for n, item in enumerate(document["businesses"])]
    duplicates = [i for i, count in Counter(b.id for b in businesses).items() if count > 1]
    problems.extend(f"business id {i} appears more than once" for i in duplicates)
    if problems:
        raise StateError(problems[:50])
    ids = IdSource(0)
    if "id_generator" in document:
        version, internal, gauss = document["id_generator"]
        if not any(internal[:624]):
            raise StateError(["id_generator: an all-zero generator state would repeat itself"])
        try:
            ids.set_state((version, tuple(internal), gauss))
        except (ValueError, TypeError) as exc:
            raise StateError([f"id_generator: {exc}"]) from None
    else:
        ids = IdSource(random.Random(repr(document["businesses"])).getrandbits(64))
    kwargs = {} if clock is None else {"clock": clock}
    return Store(businesses, ids, **kwargs)


def read_timestamp(value: str | None, where: str, problems: list[str]) -> str | None:
    if value is None:
        return None
    try:
        return normalize_timestamp(value)
    except ValueError:
        problems.append(f"{where}: {value!r} is not an ISO 8601 date or date-time")
        return None


def _metadata(value: dict | None, where: str, problems: list[str]) -> dict | None:
    """Metadata as a write would accept it (a state the API could not send back is refused)."""
    problem = metadata_problem(value)
    if problem is not None:
        problems.append(f"{where}: {problem}")
    return value


def import_invoice(business: Business, i: dict, at: str, problems: list[str]) -> Invoice:
    """An invoice of an export (or of the fixtures API): its lines add up to its total, it names a
    customer of the business, and what was paid otherwise stays within the total."""
    if i["customer_id"] not in business.customers:
        problems.append(f"{at}.customer_id: no customer {i['customer_id']} in this business")
    lines = []
    for m, line in enumerate(i.get("line_items") or []):
        account = (line.get("account_identifier") or {}).get("id")
        if account is not None and account not in business.ledger_accounts:
            problems.append(f"{at}.line_items[{m}].account_identifier: no ledger account {account} in this business")
        if line.get("invoice_id", i["id"]) != i["id"]:
            problems.append(f"{at}.line_items[{m}].invoice_id: is not this invoice's id")
        lines.append(InvoiceLine(
            id=line["id"], invoice_id=i["id"], description=line.get("description"), unit_price=line["unit_price"],
            quantity=line["quantity"], subtotal=line["subtotal"], discount_amount=line.get("discount_amount", 0),
            sales_taxes_total=line.get("sales_taxes_total", 0), external_id=line.get("external_id"),
            memo=line.get("memo"), account_id=account,
        ))
        if lines[-1].total_amount < 0:
            problems.append(f"{at}.line_items[{m}]: its discount_amount exceeds its subtotal and taxes")
    _unique(i.get("line_items") or [], "line item", at, problems)
    invoice = Invoice(
        i["id"], i["customer_id"], i.get("invoice_number"), read_timestamp(i.get("sent_at"), f"{at}.sent_at", problems),
        i["total_amount"], business_id=business.id, external_id=i.get("external_id"),
        due_at=read_timestamp(i.get("due_at"), f"{at}.due_at", problems),
        paid_at=read_timestamp(i.get("paid_at"), f"{at}.paid_at", problems),
        voided_at=read_timestamp(i.get("voided_at"), f"{at}.voided_at", problems),
        imported_at=read_timestamp(i.get("imported_at"), f"{at}.imported_at", problems),
        updated_at=read_timestamp(i.get("updated_at"), f"{at}.updated_at", problems),
        recipient_name=i.get("recipient_name"), memo=i.get("memo"),
        custom_payment_instructions=i.get("custom_payment_instructions"), line_items=tuple(lines),
        additional_discount=i.get("additional_discount", 0),
        additional_sales_taxes_total=i.get("additional_sales_taxes_total", 0), paid_amount=i.get("paid_amount", 0),
    )
    if lines and invoice.subtotal - invoice.additional_discount + invoice.additional_sales_taxes_total != invoice.total_amount:
        problems.append(f"{at}.total_amount: {invoice.total_amount} is not the line items' {invoice.subtotal} less "
                        f"additional_discount {invoice.additional_discount} plus additional_sales_taxes_total "
                        f"{invoice.additional_sales_taxes_total}")
    if invoice.paid_amount > invoice.total_amount:
        problems.append(f"{at}.paid_amount: {invoice.paid_amount} exceeds the total {invoice.total_amount}")
    return invoice


def _tags(items: list[dict] | None) -> list[Tag]:
    return [
        Tag(t["id"], t["key"], t["value"], t["dimension_id"], t["definition_id"],
            t.get("dimension_display_name"), t.get("value_display_name"), t.get("archived_at"))
        for t in items or []
    ]


def _unique(items, kind: str, where: str, problems: list[str]) -> None:
    for item_id, count in Counter(item["id"] for item in items).items():
        if count > 1:
            problems.append(f"{where}: {kind} id {item_id} appears {count} times")


def _import_business(item: dict, where: str, problems: list[str]) -> Business:
    business = Business(id=item["id"], name=item["name"])
    for kind, items in (("ledger account", item["ledger_accounts"]), ("customer", item["customers"]),
                        ("invoice", item["invoices"]), ("customer credit", item["customer_credits"])):
        _unique(items, kind, where, problems)
    for a in item["ledger_accounts"]:
        business.ledger_accounts[a["id"]] = LedgerAccount(
            a["id"], a["stable_name"], a["name"], a.get("account_number"), a["normality"], a["account_type"],
            a.get("account_type_display", a["account_type"].title()), a["account_subtype"],
            a.get("account_subtype_display", a["account_subtype"].replace("_", " ").title()),
        )
    for kind, field, items in (("customer", "external_id", item["customers"]),
                               ("ledger account", "stable_name", item["ledger_accounts"])):
        for value, count in Counter(i.get(field) for i in items if i.get(field) is not None).items():
            if count > 1:
                problems.append(f"{where}: {count} {kind}s share {field} {value!r}")
    for c in item["customers"]:
        business.customers[c["id"]] = Customer(
            id=c["id"], external_id=c.get("external_id"), individual_name=c.get("individual_name"),
            company_name=c.get("company_name"), email=c.get("email"), mobile_phone=c.get("mobile_phone"),
            office_phone=c.get("office_phone"), address_string=c.get("address_string"), memo=c.get("memo"),
            status=c.get("status", "ACTIVE"), transaction_tags=_tags(c.get("transaction_tags")),
        )
    for n, i in enumerate(item["invoices"]):
        business.invoices[i["id"]] = import_invoice(business, i, f"{where}.invoices[{n}]", problems)
    business.tag_dimensions = dict(item.get("tag_dimensions") or {})
    business.tag_definitions = {(d["key"], d["value"]): d["id"] for d in item.get("tag_definitions") or []}

    def check_tags(tags: list[Tag], at: str) -> list[Tag]:
        """Tags must agree with the business's dimensions and values (registered on first sight)."""
        for n, tag in enumerate(tags):
            dimension = business.tag_dimensions.setdefault(tag.key, tag.dimension_id)
            definition = business.tag_definitions.setdefault((tag.key, tag.value), tag.definition_id)
            if (dimension, definition) != (tag.dimension_id, tag.definition_id):
                problems.append(f"{at}[{n}]: dimension_id/definition_id disagree with the business's tag "
                                f"{tag.key}={tag.value}")
        return tags

    for n, customer in enumerate(business.customers.values()):
        check_tags(customer.transaction_tags, f"{where}.customers[{n}].transaction_tags")

    applied: Counter = Counter()
    live_external_ids: Counter = Counter()
    for n, c in enumerate(item["customer_credits"]):
        at = f"{where}.customer_credits[{n}]"
        customer = business.customers.get(c["customer"]["id"])
        if customer is None:
            problems.append(f"{at}.customer.id: no customer {c['customer']['id']} in this business")
            continue
        lines = []
        for m, line in enumerate(c["line_items"]):
            account = business.ledger_accounts.get(line["ledger_account"]["id"]["id"])
            if account is None:
                problems.append(f"{at}.line_items[{m}].ledger_account: no such ledger account in this business")
                continue
            lines.append(LineItem(
                line["id"], account, line["amount"], line.get("memo"),
                _metadata(line.get("metadata"), f"{at}.line_items[{m}].metadata", problems),
                line.get("reference_number"),
                check_tags(_tags(line.get("transaction_tags")), f"{at}.line_items[{m}].transaction_tags"),
            ))
        if sum(line.amount for line in lines) > INT64_MAX:
            problems.append(f"{at}.line_items: the total exceeds the int64 range")
        deleted_at = read_timestamp(c.get("deleted_at"), f"{at}.deleted_at", problems)
        credit = CustomerCredit(
            id=c["id"], business_id=business.id, customer=customer, line_items=lines,
            created_at=read_timestamp(c["created_at"], f"{at}.created_at", problems),
            updated_at=read_timestamp(c["updated_at"], f"{at}.updated_at", problems),
            external_id=c.get("external_id"), sent_at=read_timestamp(c.get("sent_at"), f"{at}.sent_at", problems),
            deleted_at=deleted_at, memo=c.get("memo"),
            transaction_tags=check_tags(_tags(c.get("transaction_tags")), f"{at}.transaction_tags"),
            metadata=_metadata(c.get("metadata"), f"{at}.metadata", problems),
            reference_number=c.get("reference_number"),
        )
        stamps = [credit.created_at, credit.updated_at] + ([deleted_at] if deleted_at else [])
        if None not in stamps and stamps != sorted(stamps):
            problems.append(f"{at}: created_at <= updated_at (<= deleted_at) does not hold")
        allocations = []
        for m, a in enumerate(c.get("allocations") or []):
            invoice = business.invoices.get(a["invoice_id"])
            if a["customer_credit_id"] != credit.id:
                problems.append(f"{at}.allocations[{m}].customer_credit_id: is not this credit's id")
            if invoice is None:
                problems.append(f"{at}.allocations[{m}].invoice_id: no invoice {a['invoice_id']} in this business")
                continue
            if invoice.customer_id != customer.id:
                problems.append(f"{at}.allocations[{m}].invoice_id: the invoice belongs to another customer")
            allocations.append(Allocation(a["id"], credit.id, invoice.id, a["amount"]))
            if deleted_at is None:
                applied[invoice.id] += a["amount"]
        credit.allocations = tuple(allocations)
        allocated = sum(a.amount for a in credit.allocations)
        if allocated > credit.total_amount:
            problems.append(f"{at}.allocations: {allocated} allocated, above the credit's total {credit.total_amount}")
        if deleted_at is None and credit.external_id is not None:
            live_external_ids[credit.external_id] += 1
        business.credits[credit.id] = credit
    for invoice_id, amount in applied.items():
        invoice = business.invoices[invoice_id]
        if amount > invoice.total_amount - invoice.paid_amount:
            problems.append(f"{where}: live credits apply {amount} to invoice {invoice_id}, above what is left "
                            f"of its total {invoice.total_amount} once {invoice.paid_amount} paid otherwise")
    for external_id, count in live_external_ids.items():
        if count > 1:
            problems.append(f"{where}: {count} live credits share external_id {external_id!r}")
    return business
