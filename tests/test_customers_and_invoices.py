"""Customers and invoices on Layer's own routes, and the fixtures API, through HTTP.

Every exchange goes through `api`, a client that checks each request and response against
openapi.yaml with openapi-core in the test process too.
"""

from __future__ import annotations

import pytest

from support import credits_path, customer_with_invoices, stable_line

UNKNOWN = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
ACME = "11111111-1111-4111-8111-111111111111"
INVOICE = "22222222-2222-4222-8222-222222222222"


def customers_path(business_id: str, customer_id: str | None = None) -> str:
    path = f"/v1/businesses/{business_id}/customers"
    return path if customer_id is None else f"{path}/{customer_id}"


def invoices_path(business_id: str, invoice_id: str | None = None) -> str:
    path = f"/v1/businesses/{business_id}/invoices"
    return path if invoice_id is None else f"{path}/{invoice_id}"


def walk(api, path: str, **params) -> list[dict]:
    """Every item of a list, page by page."""
    items, cursor = [], None
    while True:
        page = api.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["data"]
        if not body["meta"]["pagination"]["has_more"]:
            assert body["meta"]["pagination"]["cursor"] is None
            return items
        cursor = body["meta"]["pagination"]["cursor"]


def invoice(api, business_id: str, invoice_id: str) -> dict:
    response = api.get(invoices_path(business_id, invoice_id))
    assert response.status_code == 200, response.text
    return response.json()["data"]


def add_fixtures(api, body: dict):
    return api.post("/__sandbox/fixtures", json=body)


@pytest.fixture
def acme(api, business):
    """A customer with one invoice of 1,000.00, of which 600.00 is still open."""
    added = add_fixtures(api, {
        "customers": [{"id": ACME, "company_name": "Acme Corp", "external_id": "acme", "email": "ap@acme.test"}],
        "invoices": [{"id": INVOICE, "customer_id": ACME, "total_amount": 100_000, "outstanding_balance": 60_000,
                      "invoice_number": "A-1", "sent_at": "2026-01-10T00:00:00Z", "due_at": "2026-02-09"}],
    })
    assert added.status_code == 201, added.text
    return business["id"]


# ------------------------------------------------------------------------------ customers

def test_the_customer_list_pages_through_every_active_customer_once(api, business):
    seeded = [c["id"] for c in business["customers"]]
    walked = walk(api, customers_path(business["id"]), limit=3)
    assert [c["id"] for c in walked] == seeded  # the order they were made in, none skipped or repeated
    assert all(c["type"] == "CustomerData" and c["status"] == "ACTIVE" for c in walked)


def test_q_searches_names_email_and_external_id(api, business):
    target = next(c for c in business["customers"] if c["external_id"])
    for text in (target["individual_name"].split()[-1].upper(), target["email"], target["external_id"]):
        found = api.get(customers_path(business["id"]), params={"q": text}).json()["data"]
        assert target["id"] in [c["id"] for c in found], text
        assert all(text.casefold() in " ".join(str(c[k]) for k in ("individual_name", "company_name", "email",
                                                                   "external_id")).casefold() for c in found)
    assert api.get(customers_path(business["id"]), params={"q": "no-such-customer-anywhere"}).json()["data"] == []


def test_create_is_idempotent_on_external_id(api, business):
    body = {"external_id": "cus-new-1", "individual_name": "Ada Lovelace", "email": "ada@example.test"}
    created = api.post(customers_path(business["id"]), json=body)
    assert created.status_code == 201
    again = api.post(customers_path(business["id"]), json={"external_id": "cus-new-1", "email": "ada@new.test"})
    assert again.status_code == 200
    assert again.json()["data"]["id"] == created.json()["data"]["id"]
    assert again.json()["data"]["email"] == "ada@new.test"
    assert again.json()["data"]["individual_name"] == "Ada Lovelace"  # members left out are kept
    listed = walk(api, customers_path(business["id"]))
    assert [c["id"] for c in listed].count(created.json()["data"]["id"]) == 1
    assert listed[-1]["id"] == created.json()["data"]["id"]  # a new customer lists last


def test_a_customer_made_with_nothing_but_an_external_id_has_every_member_null(api, business):
    created = api.post(customers_path(business["id"]), json={"external_id": "bare"}).json()["data"]
    assert {k for k, v in created.items() if v is None} == {
        "individual_name", "company_name", "email", "mobile_phone", "office_phone", "address_string", "memo"}
    # identity_status=IDENTIFIED (what Layer's SDK sends) lists customers with a name only.
    identified = walk(api, customers_path(business["id"]), identity_status="IDENTIFIED")
    unidentified = walk(api, customers_path(business["id"]), identity_status="UNIDENTIFIED")
    assert created["id"] not in [c["id"] for c in identified]
    assert [c["id"] for c in unidentified] == [created["id"]]


def test_patch_sets_given_members_and_null_clears_one(api, business):
    target = business["customers"][0]
    changed = api.patch(customers_path(business["id"], target["id"]), json={"memo": "VIP", "email": None})
    assert changed.status_code == 200
    data = changed.json()["data"]
    assert (data["memo"], data["email"], data["individual_name"]) == ("VIP", None, target["individual_name"])
    assert api.get(customers_path(business["id"], target["id"])).json()["data"] == data


def test_a_credit_shows_its_customer_as_the_customer_is_now(api, business):
    customer, _ = customer_with_invoices(business)
    credit = api.post(credits_path(business["id"]), json={
        "customer_id": customer["id"], "line_items": [stable_line("SALES", 500)]}).json()["data"]
    api.patch(customers_path(business["id"], customer["id"]), json={"company_name": "Renamed Ltd"})
    fetched = api.get(credits_path(business["id"], credit["id"])).json()["data"]
    assert fetched["customer"]["company_name"] == "Renamed Ltd"
    assert fetched["updated_at"] == credit["updated_at"]  # the credit itself did not change


def test_an_external_id_another_customer_holds_is_a_422_and_changes_nothing(api, business):
    first, second = [c for c in business["customers"] if c["external_id"]][:2]
    refused = api.patch(customers_path(business["id"], second["id"]), json={"external_id": first["external_id"],
                                                                            "memo": "x"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["meta"]["field"] == "external_id"
    assert api.get(customers_path(business["id"], second["id"])).json()["data"]["memo"] is None


def test_an_archived_customer_leaves_the_list_stays_fetchable_and_takes_no_new_credit(api, business):
    customer, _ = customer_with_invoices(business)
    old = api.post(credits_path(business["id"]), json={
        "customer_id": customer["id"], "line_items": [stable_line("SALES", 700)]}).json()["data"]
    archived = api.post(f"{customers_path(business['id'], customer['id'])}/archive")
    assert archived.status_code == 200 and archived.json()["data"]["status"] == "ARCHIVED"
    assert customer["id"] not in [c["id"] for c in walk(api, customers_path(business["id"]))]
    assert api.get(customers_path(business["id"], customer["id"])).json()["data"]["status"] == "ARCHIVED"
    refused = api.post(credits_path(business["id"]), json={
        "customer_id": customer["id"], "line_items": [stable_line("SALES", 500)]})
    assert refused.status_code == 422 and "archived" in refused.json()["errors"][0]["description"]
    # Its existing credits stay as they are, and can still be changed.
    assert api.patch(credits_path(business["id"], old["id"]), json={"memo": "after archive"}).status_code == 200
    assert api.post(f"{customers_path(business['id'], customer['id'])}/archive").status_code == 200  # idempotent


@pytest.mark.parametrize("path_suffix, status", [
    (f"/customers/{UNKNOWN}", 404), ("/customers/not-a-uuid", 400), (f"/invoices/{UNKNOWN}", 404),
    ("/invoices/not-a-uuid", 400), (f"/customers/{UNKNOWN}/archive", 404),
])
def test_unknown_and_malformed_ids_are_layer_errors(api, business, path_suffix, status):
    method = "post" if path_suffix.endswith("/archive") else "get"
    response = getattr(api, method)(f"/v1/businesses/{business['id']}{path_suffix}")
    assert response.status_code == status
    assert set(response.json()["errors"][0]) >= {"type", "description", "error_enum"}


@pytest.mark.parametrize("body, field", [
    ({"customerName": "x"}, "customerName"), ({"email": 5}, "email"), ({"external_id": ""}, "external_id"),
])
def test_bad_customer_bodies_are_400s_naming_the_field_and_change_nothing(api, business, body, field):
    before = walk(api, customers_path(business["id"]))
    response = api.post(customers_path(business["id"]), json=body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["meta"]["field"] == field
    assert walk(api, customers_path(business["id"])) == before


# ------------------------------------------------------------------------------ invoices

def test_seeded_invoices_are_consistent_with_their_balances(api, world):
    for business in world:
        for item in walk(api, invoices_path(business["id"]), limit=7):
            lines = item["line_items"]
            assert lines and sum(line["total_amount"] for line in lines) == item["subtotal"]
            assert item["subtotal"] - item["additional_discount"] + item["additional_sales_taxes_total"] == item[
                "total_amount"]
            for line in lines:
                assert line["invoice_id"] == item["id"]
                assert line["unit_price"] * int(line["quantity"]) == line["subtotal"]
            outstanding, total = item["outstanding_balance"], item["total_amount"]
            expected = "PAID" if outstanding == 0 else "PARTIALLY_PAID" if outstanding < total else "SAVED"
            assert item["status"] == expected
            assert (item["paid_at"] is not None) == (outstanding == 0)
            summary = next(i for i in business["invoices"] if i["id"] == item["id"])
            assert summary["outstanding_balance"] == outstanding


def test_the_invoice_list_sorts_filters_and_counts(api, business):
    ids = [i["id"] for i in business["invoices"]]
    ascending = walk(api, invoices_path(business["id"]), limit=5)
    assert sorted(i["id"] for i in ascending) == sorted(ids)
    assert [i["sent_at"] for i in ascending] == sorted(i["sent_at"] for i in ascending)
    descending = walk(api, invoices_path(business["id"]), limit=5, sort_by="sent_at", sort_order="DESC")
    assert [i["id"] for i in descending] == [i["id"] for i in reversed(ascending)]
    statuses = {i["status"] for i in ascending}
    for status in statuses:
        only = walk(api, invoices_path(business["id"]), status=status)
        assert {i["status"] for i in only} == {status}
        assert len(only) == sum(1 for i in ascending if i["status"] == status)
    both = api.get(invoices_path(business["id"]), params=[("status", s) for s in sorted(statuses)] + [
        ("show_total_count", "true"), ("limit", "2")]).json()
    assert both["meta"]["pagination"]["total_count"] == len(ids)
    middle = ascending[len(ascending) // 2]["due_at"]
    due_late = walk(api, invoices_path(business["id"]), due_at_start=middle)
    assert due_late and all(i["due_at"] >= middle for i in due_late)
    assert all(i["due_at"] < middle for i in walk(api, invoices_path(business["id"]), due_at_end=middle))
    number = ascending[0]["invoice_number"]
    assert [i["invoice_number"] for i in walk(api, invoices_path(business["id"]), q=number.lower())] == [number]


def test_the_balance_follows_the_credits_applied(api, acme):
    assert invoice(api, acme, INVOICE)["status"] == "PARTIALLY_PAID"
    credit = api.post(credits_path(acme), json={
        "customer_id": ACME, "line_items": [stable_line("SALES", 60_000)],
        "allocations": [{"invoice_id": INVOICE, "amount": 60_000}]}).json()["data"]
    paid = invoice(api, acme, INVOICE)
    assert (paid["outstanding_balance"], paid["status"]) == (0, "PAID")
    assert paid["paid_at"] == paid["updated_at"] == credit["updated_at"]
    api.patch(credits_path(acme, credit["id"]), json={"allocations": [{"invoice_id": INVOICE, "amount": 1_000}]})
    partly = invoice(api, acme, INVOICE)
    assert (partly["outstanding_balance"], partly["status"], partly["paid_at"]) == (59_000, "PARTIALLY_PAID", None)
    api.delete(credits_path(acme, credit["id"]))
    assert invoice(api, acme, INVOICE)["outstanding_balance"] == 60_000
    over = api.post(credits_path(acme), json={
        "customer_id": ACME, "line_items": [stable_line("SALES", 70_000)],
        "allocations": [{"invoice_id": INVOICE, "amount": 60_001}]})
    assert over.status_code == 422 and invoice(api, acme, INVOICE)["outstanding_balance"] == 60_000


def test_a_voided_invoice_takes_no_credit(api, acme):
    assert add_fixtures(api, {"invoices": [{"id": UNKNOWN, "customer_id": ACME, "total_amount": 5_000,
                                            "voided_at": "2026-01-20T00:00:00Z"}]}).status_code == 201
    assert invoice(api, acme, UNKNOWN)["status"] == "VOIDED"
    refused = api.post(credits_path(acme), json={
        "customer_id": ACME, "line_items": [stable_line("SALES", 1_000)],
        "allocations": [{"invoice_id": UNKNOWN, "amount": 1_000}]})
    assert refused.status_code == 422 and refused.json()["errors"][0]["meta"]["field"] == "allocations[0].invoice_id"


# ------------------------------------------------------------------------------ fixtures

def test_fixtures_keep_the_ids_given_and_answer_what_was_added(api, business, acme):
    fetched = invoice(api, acme, INVOICE)
    assert (fetched["total_amount"], fetched["outstanding_balance"], fetched["invoice_number"]) == (100_000, 60_000, "A-1")
    assert fetched["customer"]["company_name"] == "Acme Corp"
    assert fetched["due_at"].startswith("2026-02-09")
    added = add_fixtures(api, {"customer_credits": [{
        "id": UNKNOWN, "customer_id": ACME, "external_id": "fx-1", "line_items": [stable_line("SALES", 2_500)],
        "allocations": [{"invoice_id": INVOICE, "amount": 2_500}]}]}).json()["data"]
    assert added["customer_credits"] == [UNKNOWN] and added["business_id"] == acme
    assert api.get(credits_path(acme, UNKNOWN)).json()["data"]["external_id"] == "fx-1"
    assert invoice(api, acme, INVOICE)["outstanding_balance"] == 57_500


@pytest.mark.parametrize("body, field", [
    ({"invoices": [{"customer_id": UNKNOWN, "total_amount": 100}]}, "invoices[0].customer_id"),
    ({"invoices": [{"customer_id": ACME, "total_amount": 100, "outstanding_balance": 101}]},
     "invoices[0].outstanding_balance"),
    ({"customers": [{"id": ACME}]}, "customers[0].id"),
    ({"customers": [{"external_id": "acme"}]}, "customers[0].external_id"),
    ({"customer_credits": [{"customer_id": ACME, "line_items": [stable_line("NO_SUCH_ACCOUNT", 100)]}]},
     "customer_credits[0].line_items[0].revenue_account_identifier"),
    ({"customer_credits": [{"customer_id": ACME, "line_items": [stable_line("SALES", 100)],
                            "allocations": [{"invoice_id": INVOICE, "amount": 60_001}]}]},
     "customer_credits[0].allocations[0].amount"),
    ({"customer_credits": [{"customer_id": ACME, "line_items": [stable_line("SALES", 100)],
                            "allocations": [{"invoice_id": INVOICE, "amount": 101}]}]},
     "customer_credits[0].allocations"),
    ({"invoices": [{"customer_id": ACME}]}, "invoices[0]"),
    ({"widgets": []}, "(root)"),
])
def test_a_bad_fixture_is_a_400_naming_its_field_and_changes_nothing(api, acme, body, field):
    before = api.get("/__sandbox/state").json()["data"]
    refused = add_fixtures(api, body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["errors"][0]["meta"]["field"] == field, refused.json()
    assert api.get("/__sandbox/state").json()["data"] == before


def test_fixtures_survive_export_and_import(api, acme):
    state = api.get("/__sandbox/state").json()["data"]
    assert api.post("/__sandbox/reset", json={}).status_code == 200
    assert api.get(invoices_path(acme, INVOICE)).status_code == 404
    assert api.put("/__sandbox/state", json=state).status_code == 200
    assert invoice(api, acme, INVOICE)["outstanding_balance"] == 60_000
    assert api.get("/__sandbox/state").json()["data"] == state


# ------------------------------------------------------------------------------ forced answers

def test_forced_answers_reach_the_new_routes_with_their_own_examples(api, business):
    invoice_id = business["invoices"][0]["id"]
    forced = api.get(invoices_path(business["id"], invoice_id), headers={"Prefer": "code=404, example=invoice_not_found"})
    assert forced.status_code == 404 and forced.json()["errors"][0]["meta"]["resource"] == "invoice"
    token = api.post("/oauth2/token", data={"grant_type": "client_credentials"},
                     headers={"Authorization": "Basic YTpi", "Prefer": "code=401"})
    assert token.status_code == 401 and token.json()["error"] == "invalid_client"
    rule = api.post("/__sandbox/rules", json={"path": "*/customers", "method": "GET", "code": 500, "count": 1})
    assert rule.status_code == 201 and rule.json()["data"]["operations"] == ["business.customers.get"]
    assert api.get(customers_path(business["id"])).status_code == 500
    assert api.get(customers_path(business["id"])).status_code == 200
    page = api.get(customers_path(business["id"]), headers={"Prefer": "example=page"})
    assert page.status_code == 200 and page.json()["meta"]["pagination"]["has_more"] is True


def test_a_credit_write_that_moves_no_balance_leaves_its_invoices_alone(api, acme):
    credit = api.post(credits_path(acme), json={
        "customer_id": ACME, "line_items": [stable_line("SALES", 1_000)],
        "allocations": [{"invoice_id": INVOICE, "amount": 1_000}]}).json()["data"]
    before = invoice(api, acme, INVOICE)
    assert api.post("/__sandbox/clock", json={"advance_seconds": 100}).status_code == 200
    assert api.patch(credits_path(acme, credit["id"]), json={"memo": "only the memo"}).status_code == 200
    assert invoice(api, acme, INVOICE) == before
    api.post("/__sandbox/clock", json={"system": True})


@pytest.mark.parametrize("body, field", [
    ({"invoices": [{"customer_id": ACME, "total_amount": 500.0}]}, "invoices[0].total_amount"),
    ({"invoices": [{"customer_id": ACME, "line_items": [{"unit_price": 100, "quantity": 2.0}]}]},
     "invoices[0].line_items[0].quantity"),
    ({"business": 1.0, "customers": [{}]}, "business"),
    ({"invoices": [{"customer_id": ACME, "total_amount": 5, "sent_at": "9999-12-31T23:59:59Z"}]},
     "invoices[0].sent_at"),
    ({"invoices": [{"id": UNKNOWN, "customer_id": ACME, "total_amount": 5, "voided_at": "2026-01-20T00:00:00Z"}],
      "customer_credits": [{"customer_id": ACME, "line_items": [stable_line("SALES", 5)],
                            "allocations": [{"invoice_id": UNKNOWN, "amount": 5}]}]},
     "customer_credits[0].allocations[0].invoice_id"),
    ({"ledger_accounts": [{"stable_name": "SALES", "name": "Sales again", "normality": "CREDIT",
                           "account_type": "REVENUE", "account_subtype": "SALES"}]}, "ledger_accounts[0].stable_name"),
    ({"customer_credits": [{"customer_id": ACME, "created_at": None, "line_items": [stable_line("SALES", 5)]}]},
     "customer_credits[0].created_at"),
])
def test_fixtures_are_held_to_the_apis_own_rules(api, acme, body, field):
    before = api.get("/__sandbox/state").json()["data"]
    refused = add_fixtures(api, body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["errors"][0]["meta"]["field"] == field, refused.json()
    assert api.get("/__sandbox/state").json()["data"] == before


def test_a_fixture_credit_for_an_archived_customer_is_refused(api, acme):
    assert api.post(f"{customers_path(acme, ACME)}/archive").status_code == 200
    refused = add_fixtures(api, {"customer_credits": [{"customer_id": ACME, "line_items": [stable_line("SALES", 5)]}]})
    assert refused.status_code == 400 and refused.json()["errors"][0]["meta"]["field"] == "customer_credits[0].customer_id"


def test_a_cursor_works_only_on_the_list_that_issued_it(api, business):
    customer_cursor = api.get(customers_path(business["id"]), params={"limit": 1}).json()["meta"]["pagination"]["cursor"]
    invoice_cursor = api.get(invoices_path(business["id"]), params={"limit": 1}).json()["meta"]["pagination"]["cursor"]
    credit_cursor = api.get(credits_path(business["id"]), params={"limit": 1}).json()["meta"]["pagination"]["cursor"]
    for path, cursor in ((credits_path(business["id"]), customer_cursor), (credits_path(business["id"]), invoice_cursor),
                         (customers_path(business["id"]), invoice_cursor), (invoices_path(business["id"]), credit_cursor),
                         (invoices_path(business["id"]), customer_cursor), (customers_path(business["id"]), credit_cursor)):
        refused = api.get(path, params={"cursor": cursor})
        assert refused.status_code == 400 and refused.json()["errors"][0]["meta"]["field"] == "cursor", (path, refused.text)
