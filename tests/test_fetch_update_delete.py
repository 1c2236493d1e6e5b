"""Fetch, update (PATCH) and soft delete of one credit, and isolation between businesses."""

from __future__ import annotations

import pytest

from support import credits_path, customer_with_invoices, stable_line

UNKNOWN = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


def new_credit(api, business, **extra):
    body = {"customer_id": business["customers"][0]["id"], "line_items": [stable_line("SALES", 4000)], **extra}
    response = api.post(credits_path(business["id"]), json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def seeded_credit(api, business):
    return api.get(credits_path(business["id"]), params={"limit": 1}).json()["data"][0]


def test_fetch_returns_the_seeded_credit(api, business):
    credit = seeded_credit(api, business)
    response = api.get(credits_path(business["id"], credit["id"]))
    assert response.status_code == 200
    assert response.json() == {"data": credit}


def test_fetch_unknown_credit_is_404(api, business):
    response = api.get(credits_path(business["id"], UNKNOWN))
    assert response.status_code == 404
    [error] = response.json()["errors"]
    assert error == {
        "type": "NotFound",
        "description": f"Customer credit {UNKNOWN} not found",
        "error_enum": "SpecifiedIdNotFound",
        "meta": {"field": "customerCreditId", "resource": "customer_credit", "id": UNKNOWN},
    }


def test_bad_ids_in_the_path_are_400(api, business):
    response = api.get(credits_path(business["id"], "not-a-uuid"))
    assert response.status_code == 400
    assert response.json()["errors"][0]["meta"]["field"] == "customerCreditId"
    response = api.get(credits_path("12345", UNKNOWN))
    assert response.status_code == 400
    assert response.json()["errors"][0]["meta"]["field"] == "businessId"


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_a_credit_is_404_under_any_other_business(api, world, method):
    credit = seeded_credit(api, world[0])
    for path in (credits_path(world[1]["id"], credit["id"]), credits_path(UNKNOWN, credit["id"])):
        response = api.request(method, path, json={"memo": "x"} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path)
    # ... and untouched under its own business.
    assert api.get(credits_path(world[0]["id"], credit["id"])).json()["data"] == credit


def test_patch_updates_partially(api, business):
    credit = new_credit(api, business, memo="old", reference_number="R-1", metadata={"a": 1},
                        external_id="patch-ext", tags=[{"key": "region", "value": "west"}])
    response = api.patch(credits_path(business["id"], credit["id"]), json={"memo": "new"})
    assert response.status_code == 200
    updated = response.json()["data"]
    assert updated["memo"] == "new"
    for field in ("reference_number", "metadata", "external_id", "transaction_tags", "line_items", "customer", "created_at"):
        assert updated[field] == credit[field], field
    assert updated["updated_at"] >= credit["updated_at"]
    assert api.get(credits_path(business["id"], credit["id"])).json()["data"] == updated


def test_patch_null_clears_nullable_fields(api, business):
    credit = new_credit(api, business, memo="m", reference_number="R-2", metadata={"a": 1}, sent_at="2026-01-05T00:00:00Z")
    response = api.patch(credits_path(business["id"], credit["id"]),
                         json={"memo": None, "reference_number": None, "metadata": None, "sent_at": None})
    assert response.status_code == 200
    updated = response.json()["data"]
    assert (updated["memo"], updated["reference_number"], updated["metadata"], updated["sent_at"]) == (None,) * 4


def test_patch_arrays_replace_the_old_ones(api, business):
    customer, invoices = customer_with_invoices(business)
    credit = new_credit(api, business, customer_id=customer["id"],
                        line_items=[stable_line("SALES", 3000), stable_line("SERVICE_REVENUE", 1000)],
                        allocations=[{"invoice_id": invoices[0]["id"], "amount": 100}],
                        tags=[{"key": "region", "value": "west"}, {"key": "channel", "value": "online"}])
    response = api.patch(credits_path(business["id"], credit["id"]), json={
        "line_items": [stable_line("RETURNS_ALLOWANCES", 900)],
        "allocations": [{"invoice_id": invoices[0]["id"], "amount": 250}],
        "tags": [{"key": "department", "value": "support"}],
    })
    assert response.status_code == 200, response.text
    updated = response.json()["data"]
    assert [(i["ledger_account"]["stable_name"]["stable_name"], i["amount"]) for i in updated["line_items"]] == [("RETURNS_ALLOWANCES", 900)]
    assert [(a["invoice_id"], a["amount"]) for a in updated["allocations"]] == [(invoices[0]["id"], 250)]
    assert [(t["key"], t["value"]) for t in updated["transaction_tags"]] == [("department", "support")]
    # The invoice balance counts the new allocation instead of the old one.
    after = {i["id"]: i for i in api.get("/__sandbox/businesses").json()["data"][0]["invoices"]}
    assert after[invoices[0]["id"]]["outstanding_balance"] == invoices[0]["outstanding_balance"] - 250
    cleared = api.patch(credits_path(business["id"], credit["id"]), json={"allocations": []})
    assert cleared.json()["data"]["allocations"] == []


def test_patch_keeps_the_rules_of_create(api, business):
    customer, invoices = customer_with_invoices(business)
    credit = new_credit(api, business, customer_id=customer["id"], line_items=[stable_line("SALES", 500)],
                        allocations=[{"invoice_id": invoices[0]["id"], "amount": min(400, invoices[0]["outstanding_balance"])}])
    path = credits_path(business["id"], credit["id"])
    before = api.get(path).json()
    # Shrinking the lines below what is already allocated.
    shrink = api.patch(path, json={"line_items": [stable_line("SALES", 1)]})
    assert shrink.status_code == 422 and shrink.json()["errors"][0]["meta"]["field"] == "line_items"
    # Moving the credit to a customer the allocated invoice does not belong to.
    other = next(c for c in business["customers"] if c["id"] != customer["id"])
    move = api.patch(path, json={"customer_id": other["id"]})
    assert move.status_code == 422
    # Over-allocating, unknown invoice, unknown account, oversize metadata, contract breaks.
    assert api.patch(path, json={"allocations": [{"invoice_id": invoices[0]["id"], "amount": 501}]}).status_code == 422
    assert api.patch(path, json={"allocations": [{"invoice_id": UNKNOWN, "amount": 1}]}).status_code == 404
    assert api.patch(path, json={"line_items": [stable_line("NOPE", 600)]}).status_code == 404
    assert api.patch(path, json={"metadata": {"x": "y" * 2000}}).status_code == 422
    assert api.patch(path, json={"line_items": []}).status_code == 400
    assert api.patch(path, json={"bogus": 1}).status_code == 400
    assert api.get(path).json() == before


def test_patch_external_id_cannot_take_another_live_credits(api, business):
    first = new_credit(api, business, external_id="taken")
    second = new_credit(api, business, external_id="other")
    response = api.patch(credits_path(business["id"], second["id"]), json={"external_id": "taken"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["meta"]["field"] == "external_id"
    assert first["id"] in response.json()["errors"][0]["description"]


def test_empty_patch_changes_nothing(api, business):
    credit = new_credit(api, business)
    response = api.patch(credits_path(business["id"], credit["id"]), json={})
    assert response.status_code == 200 and response.json()["data"] == credit


def test_delete_is_soft_and_final(api, business):
    customer, invoices = customer_with_invoices(business)
    credit = new_credit(api, business, customer_id=customer["id"], external_id="to-delete",
                        allocations=[{"invoice_id": invoices[0]["id"], "amount": 100}])
    path = credits_path(business["id"], credit["id"])
    before = next(b for b in api.get("/__sandbox/businesses").json()["data"] if b["id"] == business["id"])

    response = api.delete(path)
    assert response.status_code == 200
    deleted = response.json()["data"]
    assert deleted["id"] == credit["id"]
    assert deleted["deleted_at"] is not None and deleted["deleted_at"] == deleted["updated_at"]
    assert deleted["allocations"] == credit["allocations"]

    for method in ("GET", "PATCH", "DELETE"):
        again = api.request(method, path, json={"memo": "x"} if method == "PATCH" else None)
        assert again.status_code == 404, method
    listed = api.get(credits_path(business["id"]), params={"limit": 1000}).json()["data"]
    assert credit["id"] not in {c["id"] for c in listed}

    after = next(b for b in api.get("/__sandbox/businesses").json()["data"] if b["id"] == business["id"])
    assert after["customer_credits"] == before["customer_credits"] - 1
    assert after["deleted_customer_credits"] == before["deleted_customer_credits"] + 1
    # Its allocation no longer holds the invoice's balance.
    balance = {i["id"]: i["outstanding_balance"] for i in after["invoices"]}
    assert balance[invoices[0]["id"]] == next(i for i in before["invoices"] if i["id"] == invoices[0]["id"])["outstanding_balance"] + 100
