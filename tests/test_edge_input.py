"""Inputs at the edges: odd JSON, repeated parameters, extreme dates, HEAD, slashes, UUID case.

Each was once a 500 or a silently wrong answer; each must be a clear Layer error or the right
answer, and a rejected request must change nothing.
"""

from __future__ import annotations

import base64
import json

import subprocess

import pytest

from support import credits_path, sandbox_command, stable_line


def seeded_credit(api, business):
    return api.get(credits_path(business["id"]), params={"limit": 1}).json()["data"][0]


def test_years_before_1000_round_trip(api, business):
    credit = seeded_credit(api, business)
    path = credits_path(business["id"], credit["id"])
    response = api.patch(path, json={"sent_at": "0999-12-31T00:00:00Z"})
    assert response.status_code == 200
    assert response.json()["data"]["sent_at"] == "0999-12-31T00:00:00.000000Z"
    assert api.get(path).status_code == 200
    found = api.get(credits_path(business["id"]), params={"sent_at_start": "0999-01-01", "sent_at_end": "1000-01-01"})
    assert [c["id"] for c in found.json()["data"]] == [credit["id"]]


@pytest.mark.parametrize("query", [
    "limit=1&limit=0", "limit=1&limit=abc", "sort_by=created_at&sort_by=memo",
    "sort_order=ASC&sort_order=asc", "limit=1&limit=2", "cursor=a&cursor=b",
])
def test_a_parameter_given_twice_is_400(api, business, query):
    response = api.get(f"{credits_path(business['id'])}?{query}")
    assert response.status_code == 400
    assert response.json()["errors"][0]["meta"]["field"] == query.split("=")[0]


@pytest.mark.parametrize("value, status", [("true", 200), ("FALSE", 200), ("1", 400), ("yes", 400), ("", 400)])
def test_booleans_are_true_or_false(api, business, value, status):
    response = api.get(credits_path(business["id"]), params={"show_total_count": value})
    assert response.status_code == status


@pytest.mark.parametrize("raw", [
    b'{"metadata": {"x": NaN}, "line_items": []}',
    b'{"metadata": {"x": Infinity}}',
    b'{"metadata": {"x": 1e400}}',
    b'{"metadata": {"k": "\\ud800"}}',
    b'{"memo": "\\udfff"}',
    b"[" * 5000 + b"]" * 5000,
    b'{"memo": "\xff\xfe"}',
])
def test_json_that_strict_clients_could_not_read_back_is_400(api, business, raw):
    before = api.get("/__sandbox/businesses").json()
    customer = business["customers"][0]["id"]
    body = raw.replace(b"{", b'{"customer_id": "%s", "line_items": [{"amount": 5, "revenue_account_identifier": {"type": "StableName", "stable_name": "SALES"}}], ' % customer.encode(), 1) if raw.startswith(b"{") else raw
    body = body.replace(b', "line_items": []', b"")
    response = api.post(credits_path(business["id"]), content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["meta"]["location"] == "body"
    assert api.get("/__sandbox/businesses").json() == before


def test_huge_but_finite_numbers_are_fine_in_metadata(api, business):
    response = api.post(credits_path(business["id"]), json={
        "customer_id": business["customers"][0]["id"], "line_items": [stable_line("SALES")],
        "metadata": {"big": 1e300, "neg": -2.5e-300}})
    assert response.status_code == 201
    assert json.loads(response.text)["data"]["metadata"] == {"big": 1e300, "neg": -2.5e-300}


def test_deeply_nested_cursor_is_400(api, business):
    cursor = base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode().rstrip("=")
    response = api.get(credits_path(business["id"]), params={"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["errors"][0]["meta"]["field"] == "cursor"


@pytest.mark.parametrize("forged", [[True, "created_at", "ASC", [0, "", "x"]], [1.0, "created_at", "ASC", [0, "", "x"]],
                                    [1, "created_at", "ASC", [True, "", "x"]], [1, "created_at", "ASC", [0, 5, "x"]]])
def test_cursors_the_sandbox_never_issued_are_400(api, business, forged):
    cursor = base64.urlsafe_b64encode(json.dumps(forged).encode()).decode().rstrip("=")
    assert api.get(credits_path(business["id"]), params={"cursor": cursor}).status_code == 400


def test_head_is_405_not_500(api, business):
    credit = seeded_credit(api, business)
    for path in (credits_path(business["id"]), credits_path(business["id"], credit["id"])):
        response = api.head(path)
        assert response.status_code == 405
        assert "GET" in response.headers["allow"].split(", ") and "HEAD" not in response.headers["allow"]


def test_a_trailing_slash_is_a_json_404(api, business):
    response = api.get(credits_path(business["id"]) + "/")
    assert response.status_code == 404
    assert response.json()["errors"][0]["error_enum"] == "SpecifiedIdNotFound"


def test_uuids_are_case_insensitive(api, business):
    credit = seeded_credit(api, business)
    response = api.get(credits_path(business["id"].upper(), credit["id"].upper()))
    assert response.status_code == 200 and response.json()["data"]["id"] == credit["id"]
    listed = api.get(credits_path(business["id"]), params={"customer_id": credit["customer"]["id"].upper()})
    assert credit["id"] in {c["id"] for c in listed.json()["data"]}
    created = api.post(credits_path(business["id"]), json={
        "customer_id": credit["customer"]["id"].upper(),
        "line_items": [{"amount": 5, "revenue_account_identifier": {
            "type": "AccountId", "id": credit["line_items"][0]["ledger_account"]["id"]["id"].upper()}}]})
    assert created.status_code == 201


def test_negative_seeds_are_refused(tmp_path):
    result = subprocess.run(sandbox_command() + ["--seed", "-7"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_an_upper_case_business_id_works_on_every_operation(api, business):
    upper = business["id"].upper()
    assert api.get(credits_path(upper)).status_code == 200
    created = api.post(credits_path(upper), json={"customer_id": business["customers"][0]["id"], "external_id": "up-1",
                                                   "line_items": [stable_line("SALES")]})
    assert created.status_code == 201
    again = api.post(credits_path(upper), json={"external_id": "up-1", "customer_id": business["customers"][0]["id"],
                                                 "line_items": [stable_line("SALES", 7)]})
    assert again.status_code == 200 and again.json()["data"]["id"] == created.json()["data"]["id"]
    credit_id = created.json()["data"]["id"]
    assert api.patch(credits_path(upper, credit_id), json={"memo": "x"}).status_code == 200
    assert api.delete(credits_path(upper, credit_id)).status_code == 200
