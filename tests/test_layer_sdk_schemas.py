"""The sandbox's customers and invoices, decoded by Layer's own React SDK.

`@layerfi/components` (pinned in tests/sdk/package.json) parses Layer's customer and invoice JSON
with Effect schemas that it keeps private; tests/sdk/check_schemas.mjs cuts them out of the
installed bundle and decodes what it is given with them (its header says how). Here the sandbox's
real responses go through it, so a sandbox that drifts from what Layer's client reads fails the
build:

- every customer and invoice the sandbox serves (and one customer created with nothing but an
  external id, so that every nullable member is null) decodes without error, and no status is one the
  SDK silently replaces;
- every member the SDK reads is present in every object, and the members it sends beyond those are
  only the ones in NOT_READ_BY_SDK;
- the members the SDK declares `NullOr` are exactly the ones openapi.yaml marks `nullable: true` in
  the matching schema;
- and the check can fail: broken copies of the sandbox's own objects are rejected.

Needs Node.js and `npm ci` in tests/sdk (.ci/run does both). Without node the tests skip; with node
but without the installed package they fail, naming the command.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from support import load_spec

SDK_DIR = Path(__file__).resolve().parent / "sdk"
SCRIPT = SDK_DIR / "check_schemas.mjs"
SDK_VERSION = "0.1.144"
INSTALL = "npm ci --ignore-scripts --no-audit --no-fund --prefix tests/sdk"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None, reason=f"node is not installed: these tests run Layer's SDK under Node.js (then: {INSTALL})"
)

# The sandbox's schema in openapi.yaml for each schema of the SDK.
OPENAPI_SCHEMA = {"Customer": "ApiCustomerData", "Invoice": "ApiInvoice", "InvoiceLineItem": "ApiInvoiceLineItem"}

# Members the sandbox sends that the SDK's schemas do not read (Effect ignores unknown members, so
# these pass decoding unseen). Each is here for a reason; anything else unread fails the test, and
# so does an entry here that the sandbox no longer sends.
NOT_READ_BY_SDK = {
    "Customer": {
        "type",  # Layer's resource tag, "CustomerData"; CustomerSchema has no `type` member
        "transaction_tags",  # in Layer's API (ApiCustomerData); the SDK's CustomerSchema reads no tags
    },
    "Invoice": {
        "type",  # Layer's resource tag, "Invoice"; InvoiceSchema has no `type` member
    },
    "InvoiceLineItem": set(),
}


# ---------------------------------------------------------------------------------------------
# Running the SDK's schemas.


def run_sdk_check(customers: list, invoices: list) -> dict:
    if not (SDK_DIR / "node_modules" / "@layerfi" / "components" / "package.json").is_file():
        pytest.fail(f"Layer's SDK is not installed in {SDK_DIR}: run `{INSTALL}` from the repository root")
    document = json.dumps({"customers": customers, "invoices": invoices})
    done = subprocess.run(
        [NODE, str(SCRIPT), "-"], input=document, capture_output=True, text=True, timeout=60, cwd=SDK_DIR
    )
    assert done.returncode == 0, f"check_schemas.mjs exited {done.returncode}:\n{done.stderr}"
    report = json.loads(done.stdout)
    assert report["sdk"]["version"] == SDK_VERSION, report["sdk"]
    return report


@pytest.fixture(scope="module")
def sdk_members() -> dict:
    """What each of the SDK's schemas reads: {schema: {wire name: {nullable, optional}}}."""
    return run_sdk_check([], [])["expected_members"]


def required(members: dict) -> set[str]:
    return {name for name, flags in members.items() if not flags["optional"]}


def nullable(members: dict) -> set[str]:
    return {name for name, flags in members.items() if flags["nullable"] and not flags["optional"]}


# ---------------------------------------------------------------------------------------------
# The sandbox's objects.


def list_all(api, path: str) -> list[dict]:
    items, params = [], {"limit": 1000}
    while True:
        response = api.get(path, params=params)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:500]}"
        body = response.json()
        items.extend(body["data"])
        pagination = (body.get("meta") or {}).get("pagination") or {}
        if not pagination.get("has_more"):
            return items
        params = {"limit": 1000, "cursor": pagination["cursor"]}


@pytest.fixture
def sandbox_objects(api, world) -> dict:
    """Every customer and invoice of every seeded business, and a customer created with nothing but
    an external id (all of its nullable members null)."""
    created = api.post(f"/v1/businesses/{world[0]['id']}/customers", json={"external_id": "sdk-check-1"})
    assert created.status_code in (200, 201), f"POST customers: {created.status_code} {created.text[:500]}"
    customers, invoices = [], []
    for business in world:
        customers += list_all(api, f"/v1/businesses/{business['id']}/customers")
        invoices += list_all(api, f"/v1/businesses/{business['id']}/invoices")
    bare = [c for c in customers if c.get("external_id") == "sdk-check-1"]
    assert len(bare) == 1, "the customer created with only an external id is not listed once"
    assert all(bare[0].get(m) is None for m in ("individual_name", "company_name", "email", "memo")), bare[0]
    assert invoices, "the sandbox serves no invoices: nothing for the SDK to check"
    assert any(i.get("line_items") for i in invoices), "no invoice has line items"
    assert any(i.get("customer") for i in invoices), "no invoice has a customer"
    return {"customers": customers, "invoices": invoices}


def walk(customers: list[dict], invoices: list[dict]):
    """(schema, where, object) for every object an SDK schema reads, nested ones included."""
    for k, customer in enumerate(customers):
        yield "Customer", f"customers[{k}]", customer
    for k, invoice in enumerate(invoices):
        yield "Invoice", f"invoices[{k}]", invoice
        if isinstance(invoice.get("customer"), dict):
            yield "Customer", f"invoices[{k}].customer", invoice["customer"]
        for j, item in enumerate(invoice.get("line_items") or []):
            yield "InvoiceLineItem", f"invoices[{k}].line_items[{j}]", item
            for t, tag in enumerate(item.get("transaction_tags") or []):
                yield "TransactionTag", f"invoices[{k}].line_items[{j}].transaction_tags[{t}]", tag


# ---------------------------------------------------------------------------------------------


def test_sandbox_customers_and_invoices_decode_with_layers_sdk(sandbox_objects, sdk_members):
    report = run_sdk_check(sandbox_objects["customers"], sandbox_objects["invoices"])
    assert not report["decode_errors"], "Layer's SDK rejects what the sandbox sends:\n" + "\n".join(
        f"{e['schema']} {e['id']}: {e['error']}" for e in report["decode_errors"][:10]
    )
    assert not report["coercions"], (
        f"statuses the SDK does not know (it shows a default instead): {report['coercions'][:10]}"
    )

    missing, unread = [], []
    sent = {schema: set() for schema in NOT_READ_BY_SDK}
    for schema, where, obj in walk(sandbox_objects["customers"], sandbox_objects["invoices"]):
        members = sdk_members[schema]
        missing += [f"{where}.{name}" for name in sorted(required(members) - obj.keys())]
        if schema in NOT_READ_BY_SDK:
            extra = obj.keys() - members.keys()
            sent[schema] |= extra
            unread += [f"{where}.{name}" for name in sorted(extra - NOT_READ_BY_SDK[schema])]
    assert not missing, f"members Layer's SDK reads that the sandbox leaves out: {missing[:20]}"
    assert not unread, (
        f"members the sandbox sends that Layer's SDK does not read (not in NOT_READ_BY_SDK): {unread[:20]}"
    )
    stale = {schema: names - sent[schema] for schema, names in NOT_READ_BY_SDK.items() if names - sent[schema]}
    assert not stale, f"NOT_READ_BY_SDK lists members the sandbox never sends: {stale}"


def openapi_properties(spec: dict, name: str) -> dict:
    schemas = spec["components"]["schemas"]
    assert name in schemas, f"openapi.yaml has no components/schemas/{name}"
    schema, properties = schemas[name], {}
    for part in [*schema.get("allOf", []), schema]:
        if "$ref" in part:
            part = schemas[part["$ref"].rsplit("/", 1)[1]]
        properties.update(part.get("properties", {}))
    return properties


def openapi_nullable(spec: dict, prop: dict) -> bool:
    if prop.get("nullable"):
        return True
    if "$ref" in prop:  # a $ref'd schema that is itself nullable (OpenAPI 3.0 ignores siblings of $ref)
        return bool(spec["components"]["schemas"][prop["$ref"].rsplit("/", 1)[1]].get("nullable"))
    # `anyOf: [X, JsonNull]`: null is one of the alternatives (how openapi.yaml writes a nullable $ref).
    return any(openapi_nullable(spec, alternative) for alternative in prop.get("anyOf", []))


@pytest.mark.parametrize("schema", sorted(OPENAPI_SCHEMA))
def test_openapi_nullability_matches_layers_sdk(schema, sdk_members):
    spec = load_spec()
    properties = openapi_properties(spec, OPENAPI_SCHEMA[schema])
    members = sdk_members[schema]
    undeclared = sorted(required(members) - properties.keys())
    assert not undeclared, f"{OPENAPI_SCHEMA[schema]} does not declare members Layer's SDK reads: {undeclared}"
    ours = {name for name in required(members) if openapi_nullable(spec, properties[name])}
    assert ours == nullable(members), (
        f"{OPENAPI_SCHEMA[schema]}: nullable in openapi.yaml but not in the SDK: {sorted(ours - nullable(members))}; "
        f"nullable in the SDK (NullOr) but not in openapi.yaml: {sorted(nullable(members) - ours)}"
    )


def test_the_sdk_check_rejects_broken_copies_of_sandbox_objects(sandbox_objects):
    """Each copy breaks one thing the SDK depends on; each must fail to decode, while the originals pass."""
    customer = next(c for c in sandbox_objects["customers"] if c.get("external_id") == "sdk-check-1")
    invoice = next(i for i in sandbox_objects["invoices"] if i.get("line_items") and i.get("customer"))

    def broken(original: dict, change) -> dict:
        copied = copy.deepcopy(original)
        change(copied)
        return copied

    customers = {
        "original": customer,
        "external_id": broken(customer, lambda c: c.update(external_id=5)),
        "email": broken(customer, lambda c: c.pop("email")),
        "id": broken(customer, lambda c: c.update(id="not-a-uuid")),
        "status": broken(customer, lambda c: c.update(status="")),
    }
    invoices = {
        "original": invoice,
        "outstanding_balance": broken(invoice, lambda i: i.pop("outstanding_balance")),
        "external_id": broken(invoice, lambda i: i.update(external_id=5)),
        "quantity": broken(invoice, lambda i: i["line_items"][0].update(quantity=2)),
        "account_identifier": broken(
            invoice, lambda i: i["line_items"][0].update(account_identifier={"type": "AccountId"})
        ),
        "sent_at": broken(invoice, lambda i: i.update(sent_at="not a date")),
        "total_amount": broken(invoice, lambda i: i.update(total_amount="1000")),
        "customer": broken(invoice, lambda i: i["customer"].pop("company_name")),
    }
    report = run_sdk_check(list(customers.values()), list(invoices.values()))
    failed = {(e["schema"], e["index"]): e for e in report["decode_errors"]}
    for schema, cases in (("Customer", customers), ("Invoice", invoices)):
        for index, (label, _) in enumerate(cases.items()):
            if label == "original":
                assert (schema, index) not in failed, failed[(schema, index)]["error"]
            else:
                assert (schema, index) in failed, f"{schema} with a broken {label} decoded without error"
                paths = [".".join(issue["path"]) for issue in failed[(schema, index)]["issues"]]
                assert any(label in path for path in paths), (label, paths)

    # A status the SDK does not know decodes, as its default: reported as a coercion instead.
    unknown = broken(invoice, lambda i: i.update(status="OPEN"))
    report = run_sdk_check([], [unknown])
    assert not report["decode_errors"], report["decode_errors"]
    assert [(c["member"], c["sent"], c["decoded"]) for c in report["coercions"]] == [("status", "OPEN", "SAVED")]


# Hand-written, not from the sandbox: the forms Layer's SDK accepts for the values the sandbox's
# shapes use (dates with and without fractions of a second, a decimal string quantity, both kinds
# of account identifier, a null customer), checked on their own so a failure here points at the
# SDK rather than at the sandbox.
SAMPLE_INVOICE = {
    "type": "Invoice",
    "id": "0b4f1e8e-2c3d-4a5b-8c6d-7e8f9a0b1c2d",
    "business_id": "1c5e2f9f-3d4e-4b6c-9d7e-8f9a0b1c2d3e",
    "external_id": None,
    "status": "PARTIALLY_PAID",
    "sent_at": "2026-01-01T00:00:00Z",
    "due_at": "2026-01-31T00:00:00.123456Z",
    "paid_at": None,
    "voided_at": None,
    "imported_at": None,
    "updated_at": "2026-01-02T03:04:05.678901+00:00",
    "invoice_number": None,
    "recipient_name": None,
    "customer": None,
    "line_items": [
        {
            "id": "2d6f3a0a-4e5f-4c7d-8e8f-9a0b1c2d3e4f",
            "external_id": None,
            "invoice_id": "0b4f1e8e-2c3d-4a5b-8c6d-7e8f9a0b1c2d",
            "account_identifier": {"type": "AccountId", "id": "3e7a4b1b-5f6a-4d8e-9f9a-0b1c2d3e4f5a"},
            "description": None,
            "unit_price": 1250,
            "quantity": "2",
            "subtotal": 2500,
            "discount_amount": 0,
            "sales_taxes_total": 0,
            "total_amount": 2500,
            "memo": None,
            "transaction_tags": [],
        },
        {
            "id": "4f8b5c2c-6a7b-4e9f-8a0b-1c2d3e4f5a6b",
            "external_id": "line-2",
            "invoice_id": "0b4f1e8e-2c3d-4a5b-8c6d-7e8f9a0b1c2d",
            "account_identifier": None,
            "description": "half an hour",
            "unit_price": 1000,
            "quantity": "0.5",
            "subtotal": 500,
            "discount_amount": 0,
            "sales_taxes_total": 0,
            "total_amount": 500,
            "memo": None,
            "transaction_tags": [],
        },
    ],
    "subtotal": 3000,
    "additional_discount": 0,
    "additional_sales_taxes_total": 0,
    "total_amount": 3000,
    "outstanding_balance": 1000,
    "memo": None,
    "custom_payment_instructions": None,
}


def test_the_sdk_accepts_the_value_forms_the_sandbox_uses():
    stable = copy.deepcopy(SAMPLE_INVOICE)
    stable["line_items"][0]["account_identifier"] = {"type": "StableName", "stable_name": "REVENUE"}
    report = run_sdk_check([], [SAMPLE_INVOICE, stable])
    assert not report["decode_errors"], [e["error"] for e in report["decode_errors"]]
    assert not report["coercions"], report["coercions"]
