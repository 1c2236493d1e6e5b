"""Create (`POST .../customer-credits`): rules, idempotency on external_id, and every error path."""

from __future__ import annotations

import pytest

from support import account, credits_path, customer_with_invoices, line, stable_line


def create(api, business, **body):
    return api.post(credits_path(business["id"]), json=body)


def test_create_returns_201_with_the_credit_as_layer_sends_it(api, business):
    customer = business["customers"][0]
    sales = account(business, "SALES")
    response = create(
        api, business,
        customer_id=customer["id"],
        external_id="ext-create-1",
        sent_at="2026-02-03T04:05:06Z",
        memo="Returned goods",
        reference_number="CR-9001",
        metadata={"order": 17},
        tags=[{"key": "department", "value": "sales", "dimension_display_name": "Department"}],
        line_items=[line(sales, 1500, memo="Two mugs", tags=[{"key": "channel", "value": "online"}])],
    )
    assert response.status_code == 201
    credit = response.json()["data"]
    assert set(response.json()) == {"data"}
    assert credit["customer"]["id"] == customer["id"]
    assert credit["customer"]["type"] == "CustomerData"
    assert credit["external_id"] == "ext-create-1"
    assert credit["sent_at"] == "2026-02-03T04:05:06.000000Z"
    assert credit["memo"] == "Returned goods" and credit["reference_number"] == "CR-9001"
    assert credit["metadata"] == {"order": 17}
    assert credit["deleted_at"] is None
    assert credit["created_at"] == credit["updated_at"]
    assert credit["allocations"] == []
    [tag] = credit["transaction_tags"]
    assert (tag["key"], tag["value"], tag["dimension_display_name"]) == ("department", "sales", "Department")
    [item] = credit["line_items"]
    assert item["amount"] == 1500 and item["memo"] == "Two mugs"
    assert item["ledger_account"]["id"] == {"type": "AccountId", "id": sales["id"]}
    assert item["ledger_account"]["stable_name"] == {"type": "StableName", "stable_name": "SALES"}
    assert item["transaction_tags"][0]["key"] == "channel"
    fetched = api.get(credits_path(business["id"], credit["id"]))
    assert fetched.status_code == 200 and fetched.json()["data"] == credit


def test_minimal_create_has_nulls_where_nothing_was_sent(api, business):
    response = create(api, business, customer_id=business["customers"][0]["id"],
                      line_items=[stable_line("SALES", 100)])
    assert response.status_code == 201
    credit = response.json()["data"]
    for field in ("external_id", "sent_at", "memo", "metadata", "reference_number", "deleted_at"):
        assert credit[field] is None, field
    assert credit["line_items"][0]["memo"] is None and credit["line_items"][0]["metadata"] is None


def test_revenue_account_by_stable_name_resolves_to_this_business_account(api, world):
    first, second = world[0], world[1]
    for business in (first, second):
        response = create(api, business, customer_id=business["customers"][0]["id"],
                          line_items=[stable_line("RETURNS_ALLOWANCES", 700)])
        assert response.status_code == 201
        ledger = response.json()["data"]["line_items"][0]["ledger_account"]
        assert ledger["id"]["id"] == account(business, "RETURNS_ALLOWANCES")["id"]
        assert ledger["account_type"]["value"] == "REVENUE"


def test_customer_by_external_id(api, business):
    customer = next(c for c in business["customers"] if c["external_id"])
    response = create(api, business, customer_external_id=customer["external_id"],
                      line_items=[stable_line("SALES")])
    assert response.status_code == 201
    assert response.json()["data"]["customer"]["id"] == customer["id"]
    both = create(api, business, customer_id=customer["id"], customer_external_id=customer["external_id"],
                  line_items=[stable_line("SALES")])
    assert both.status_code == 201


def test_posting_a_known_external_id_updates_that_credit_and_returns_200(api, business):
    customer = business["customers"][0]
    first = create(api, business, customer_id=customer["id"], external_id="idem-1", memo="first",
                   line_items=[stable_line("SALES", 1000)])
    assert first.status_code == 201
    again = create(api, business, customer_id=customer["id"], external_id="idem-1", memo="second",
                   line_items=[stable_line("SALES", 2500), stable_line("SERVICE_REVENUE", 500)])
    assert again.status_code == 200
    updated = again.json()["data"]
    assert updated["id"] == first.json()["data"]["id"]
    assert updated["memo"] == "second"
    assert [i["amount"] for i in updated["line_items"]] == [2500, 500]
    assert updated["created_at"] == first.json()["data"]["created_at"]
    listed = api.get(credits_path(business["id"]), params={"memo": "second"}).json()["data"]
    assert [c["id"] for c in listed] == [updated["id"]]


def test_external_id_of_a_deleted_credit_is_free_again(api, business):
    customer = business["customers"][0]
    first = create(api, business, customer_id=customer["id"], external_id="idem-2", line_items=[stable_line("SALES")])
    api.delete(credits_path(business["id"], first.json()["data"]["id"]))
    second = create(api, business, customer_id=customer["id"], external_id="idem-2", line_items=[stable_line("SALES")])
    assert second.status_code == 201
    assert second.json()["data"]["id"] != first.json()["data"]["id"]


def test_the_same_external_id_in_another_business_is_another_credit(api, world):
    ids = []
    for business in world[:2]:
        response = create(api, business, customer_id=business["customers"][0]["id"], external_id="shared-ext",
                          line_items=[stable_line("SALES")])
        assert response.status_code == 201
        ids.append(response.json()["data"]["id"])
    assert ids[0] != ids[1]


def test_allocations_reduce_the_invoice_balance(api, business):
    customer, invoices = customer_with_invoices(business)
    invoice = invoices[0]
    amount = min(invoice["outstanding_balance"], 1200)
    response = create(api, business, customer_id=customer["id"], line_items=[stable_line("SALES", 5000)],
                      allocations=[{"invoice_id": invoice["id"], "amount": amount}])
    assert response.status_code == 201
    [allocation] = response.json()["data"]["allocations"]
    assert allocation["invoice_id"] == invoice["id"] and allocation["amount"] == amount
    assert allocation["customer_credit_id"] == response.json()["data"]["id"]
    after = {i["id"]: i for i in api.get("/__sandbox/businesses").json()["data"][0]["invoices"]}
    assert after[invoice["id"]]["outstanding_balance"] == invoice["outstanding_balance"] - amount


@pytest.mark.parametrize(
    "make_body, status, field",
    [
        (lambda b, c, inv: {"customer_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a",
                            "line_items": [stable_line("SALES")]}, 404, "customer_id"),
        (lambda b, c, inv: {"customer_external_id": "no-such-customer",
                            "line_items": [stable_line("SALES")]}, 404, "customer_external_id"),
        (lambda b, c, inv: {"customer_id": c["id"],
                            "customer_external_id": next(x for x in b["customers"] if x["external_id"] and x["id"] != c["id"])["external_id"],
                            "line_items": [stable_line("SALES")]}, 422, "customer_external_id"),
        (lambda b, c, inv: {"customer_id": c["id"], "line_items": [stable_line("NO_SUCH_ACCOUNT")]},
         404, "line_items[0].revenue_account_identifier"),
        (lambda b, c, inv: {"customer_id": c["id"], "line_items": [
            {"amount": 5, "revenue_account_identifier": {"type": "AccountId", "id": "3c90c3cc-0d44-4b50-8888-8dd25736052a"}}]},
         404, "line_items[0].revenue_account_identifier"),
        (lambda b, c, inv: {"customer_id": c["id"], "line_items": [stable_line("SALES")],
                            "allocations": [{"invoice_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a", "amount": 1}]},
         404, "allocations[0].invoice_id"),
        (lambda b, c, inv: {"customer_id": c["id"], "line_items": [stable_line("SALES", 100)],
                            "allocations": [{"invoice_id": inv[0]["id"], "amount": 101}]},
         422, "allocations"),
        (lambda b, c, inv: {"customer_id": c["id"], "line_items": [stable_line("SALES", 10**9)],
                            "allocations": [{"invoice_id": inv[0]["id"], "amount": inv[0]["outstanding_balance"] + 1}]},
         422, "allocations[0].amount"),
        (lambda b, c, inv: {"customer_id": c["id"], "line_items": [stable_line("SALES")],
                            "metadata": {"blob": "x" * 1100}}, 422, "metadata"),
        (lambda b, c, inv: {"customer_id": c["id"], "line_items": [stable_line("SALES", metadata={"blob": "x" * 1100})]},
         422, "line_items[0].metadata"),
        (lambda b, c, inv: {"customer_id": c["id"], "line_items": [stable_line("SALES", 2**62), stable_line("SALES", 2**62)]},
         422, "line_items"),
    ],
    ids=["unknown-customer", "unknown-customer-external-id", "customers-disagree",
         "unknown-stable-name", "unknown-account-id", "unknown-invoice", "allocations-over-total",
         "allocation-over-invoice-balance", "metadata-over-1kb", "line-metadata-over-1kb", "total-over-int64"],
)
def test_rule_violations_are_layer_errors_and_change_nothing(api, business, make_body, status, field):
    customer, invoices = customer_with_invoices(business)
    before = api.get("/__sandbox/businesses").json()
    response = create(api, business, **make_body(business, customer, invoices))
    assert response.status_code == status, response.text
    [error] = response.json()["errors"]
    assert error["meta"]["field"] == field
    assert error["error_enum"] == ("SpecifiedIdNotFound" if status == 404 else "SpecifiedBadRequest")
    assert error["description"]
    assert api.get("/__sandbox/businesses").json() == before


def test_allocation_to_another_customers_invoice_is_refused(api, business):
    customer, _ = customer_with_invoices(business)
    other_invoice = next(i for i in business["invoices"] if i["customer_id"] != customer["id"])
    response = create(api, business, customer_id=customer["id"], line_items=[stable_line("SALES", 5000)],
                      allocations=[{"invoice_id": other_invoice["id"], "amount": 1}])
    assert response.status_code == 422
    assert response.json()["errors"][0]["meta"]["field"] == "allocations[0].invoice_id"


def test_allocation_to_another_business_invoice_is_not_found(api, world):
    business, other = world[0], world[1]
    response = create(api, business, customer_id=business["customers"][0]["id"], line_items=[stable_line("SALES", 5000)],
                      allocations=[{"invoice_id": other["invoices"][0]["id"], "amount": 1}])
    assert response.status_code == 404
    assert response.json()["errors"][0]["meta"]["field"] == "allocations[0].invoice_id"


def test_customer_of_another_business_is_not_found(api, world):
    business, other = world[0], world[1]
    response = create(api, business, customer_id=other["customers"][0]["id"], line_items=[stable_line("SALES")])
    assert response.status_code == 404


def test_metadata_of_exactly_1kb_is_accepted(api, business):
    # {"k":"xxx..."} serialised compactly: 8 bytes of framing + the value.
    metadata = {"k": "x" * (1024 - 8)}
    response = create(api, business, customer_id=business["customers"][0]["id"],
                      line_items=[stable_line("SALES")], metadata=metadata)
    assert response.status_code == 201
    assert response.json()["data"]["metadata"] == metadata


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "line_items"),
        ({"line_items": []}, "line_items"),
        ({"line_items": [{"amount": 0, "revenue_account_identifier": {"type": "StableName", "stable_name": "SALES"}}]},
         "line_items[0].amount"),
        ({"line_items": [{"amount": "10", "revenue_account_identifier": {"type": "StableName", "stable_name": "SALES"}}]},
         "line_items[0].amount"),
        ({"line_items": [{"amount": 10}]}, "line_items[0].revenue_account_identifier"),
        ({"line_items": [{"amount": 10, "revenue_account_identifier": {"type": "Nope"}}]},
         "line_items[0].revenue_account_identifier"),
        ({"customerId": "x", "line_items": [stable_line("SALES")]}, "customerId"),
        ({"customer_id": "not-a-uuid", "line_items": [stable_line("SALES")]}, "customer_id"),
        ({"line_items": [stable_line("SALES")]}, "customer_id"),
        ({"line_items": [{"amount": 1, "revenue_account_identifier": {"type": "StableName", "stable_name": "SALES", "extra": 1}}]},
         "line_items[0].revenue_account_identifier"),
        ({"sent_at": "yesterday", "line_items": [stable_line("SALES")]}, "sent_at"),
        ({"allocations": [{"invoice_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a", "amount": -5}],
          "line_items": [stable_line("SALES")]}, "allocations[0].amount"),
        ({"tags": [{"key": "k"}], "line_items": [stable_line("SALES")]}, "tags[0].value"),
        ({"metadata": "text", "line_items": [stable_line("SALES")]}, "metadata"),
    ],
)
def test_bodies_that_break_the_contract_get_400_naming_the_field(api, business, body, field):
    if field != "customer_id" and "customer_id" not in body:
        body = {"customer_id": business["customers"][0]["id"], **body}
    response = create(api, business, **body)
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["type"] == "InvalidRequest" and error["error_enum"] == "SpecifiedBadRequest"
    assert error["meta"]["location"] == "body"
    assert field in error["meta"]["field"], error
    assert field in error["description"]


def test_non_json_bodies(api, business):
    path = credits_path(business["id"])
    not_json = api.post(path, content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["errors"][0]["description"]
    wrong_type = api.post(path, content=b"a=b", headers={"content-type": "application/x-www-form-urlencoded"})
    assert wrong_type.status_code == 415
    assert wrong_type.json()["errors"][0]["error_enum"] == "UnsupportedMediaType"
    empty = api.post(path, headers={"content-type": "application/json"})
    assert empty.status_code == 400
    array = api.post(path, json=[1, 2])
    assert array.status_code == 400


def test_create_under_unknown_business_is_404(api):
    response = api.post(credits_path("3c90c3cc-0d44-4b50-8888-8dd25736052a"),
                        json={"customer_id": "3c90c3cc-0d44-4b50-8888-8dd25736052a", "line_items": [stable_line("SALES")]})
    assert response.status_code == 404
    assert response.json()["errors"][0]["meta"]["resource"] == "business"
