"""Prefer header and rules: forced status, named example, latency and connection faults."""

from __future__ import annotations

import time

import httpx
import pytest

from support import SandboxProcess, checking_client, credits_path

UNKNOWN = "3c90c3cc-0d44-4b50-8888-8dd25736052a"


@pytest.fixture
def path(api, business):
    return credits_path(business["id"])


def test_prefer_code_returns_that_status_with_a_valid_layer_body(api, path):
    for code, error_type in [(404, "NotFound"), (400, "InvalidRequest"), (401, "Unauthorized"),
                             (429, "RateLimited"), (500, "InternalError")]:
        response = api.get(path, headers={"Prefer": f"code={code}"})
        assert response.status_code == code
        assert response.json()["errors"][0]["type"] == error_type
        assert response.headers["x-sandbox-contract"] == "request=pass; response=pass"


def test_prefer_example_picks_a_named_example(api, path):
    response = api.get(f"{path}/{UNKNOWN}", headers={"Prefer": "example=business_not_found"})
    assert response.status_code == 404
    assert response.json()["errors"][0]["meta"]["resource"] == "business"
    valid = {"customer_id": UNKNOWN,
             "line_items": [{"amount": 1, "revenue_account_identifier": {"type": "StableName", "stable_name": "SALES"}}]}
    both = api.post(path, json=valid, headers={"Prefer": "code=422, example=allocations_exceed_total"})
    assert both.status_code == 422 and "exceeds" in both.json()["errors"][0]["description"]
    success = api.get(path, headers={"Prefer": "example=page"})
    assert success.status_code == 200 and success.json()["meta"]["pagination"]["has_more"] is True


def test_prefer_2xx_without_example_is_the_real_answer(api, path):
    real = api.get(path)
    preferred = api.get(path, headers={"Prefer": "code=200"})
    assert preferred.status_code == 200 and preferred.content == real.content


def test_a_forced_response_changes_no_state(api, business, path):
    before = api.get("/__sandbox/businesses").json()
    response = api.post(path, headers={"Prefer": "code=201, example=credit"}, json={
        "customer_id": business["customers"][0]["id"],
        "line_items": [{"amount": 1, "revenue_account_identifier": {"type": "StableName", "stable_name": "SALES"}}]})
    assert response.status_code == 201
    assert api.get("/__sandbox/businesses").json() == before


@pytest.mark.parametrize("prefer, part", [
    ("code=418", "code=418"), ("code=abc", "code"), ("example=nope", "example=nope"),
    ("code=404, example=page", "example=page"), ("delay=-5", "delay"), ("delay=999999", "delay"),
    ("fault=explode", "fault"),
])
def test_impossible_preferences_are_400_naming_prefer(api, path, prefer, part):
    response = api.get(path, headers={"Prefer": prefer})
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["meta"]["field"] in ("Prefer", f"Prefer {part.split('=')[0]}") and part.split("=")[0] in error["description"]


def test_other_preferences_are_ignored(api, path):
    assert api.get(path, headers={"Prefer": "return=minimal, respond-async"}).status_code == 200


def test_invalid_requests_stay_invalid_whatever_is_preferred(api, path):
    assert api.get(path, params={"limit": 0}, headers={"Prefer": "code=200"}).status_code == 400
    assert api.get(path, headers={"Prefer": "code=200", "Authorization": "nope"}).status_code == 401


def test_delay_holds_the_answer_back(api, path):
    started = time.monotonic()
    response = api.get(path, headers={"Prefer": "delay=400"})
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.4


@pytest.mark.parametrize("fault", ["drop", "empty", "truncate"])
def test_faults_break_the_connection(sandbox, path, fault):
    with pytest.raises(httpx.TransportError):
        httpx.get(sandbox.base_url + path, headers={"Authorization": "Bearer t", "Prefer": f"fault={fault}"})
    # ... and the sandbox is fine afterwards.
    assert httpx.get(sandbox.base_url + path, headers={"Authorization": "Bearer t"}).status_code == 200


def test_truncated_body_is_half_the_real_one(sandbox, path):
    import socket

    with socket.create_connection(("127.0.0.1", sandbox.port)) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\nPrefer: fault=truncate\r\n\r\n".encode())
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(next(l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")).split(b":")[1])
    assert head.startswith(b"HTTP/1.1 200") and 0 < len(body) < length


def test_rules_match_method_and_path_and_run_out(api, business, path):
    credit = api.get(path).json()["data"][0]
    item = f"{path}/{credit['id']}"
    rule = api.post("/__sandbox/rules", json={"method": "GET", "path": "/v1/businesses/*/invoices/customer-credits/*",
                                              "code": 404, "example": "credit_not_found", "count": 2})
    assert rule.status_code == 201
    assert api.get(path).status_code == 200                      # list path: no match
    assert api.patch(item, json={"memo": "x"}).status_code == 200   # other method: no match
    statuses = [api.get(item).status_code for _ in range(3)]
    assert statuses == [404, 404, 200]                            # used up after two
    assert api.get("/__sandbox/rules").json()["data"] == []


def test_rules_listing_deletion_and_prefer_precedence(api, path):
    first = api.post("/__sandbox/rules", json={"path": "/v1/*", "code": 500}).json()["data"]
    assert api.get(path).status_code == 500
    assert api.get(path, headers={"Prefer": "code=200"}).status_code == 200   # Prefer wins
    listed = api.get("/__sandbox/rules").json()["data"]
    assert [r["id"] for r in listed] == [first["id"]] and listed[0]["hits"] == 1
    assert api.delete(f"/__sandbox/rules/{first['id']}").status_code == 200
    assert api.get(path).status_code == 200
    assert api.delete("/__sandbox/rules/rule-999").status_code == 404


def test_rules_are_cleared_by_reset(api, path):
    api.post("/__sandbox/rules", json={"path": "/v1/*", "delay": 1, "code": 500})
    api.post("/__sandbox/reset")
    assert api.get("/__sandbox/rules").json()["data"] == []
    assert api.get(path).status_code == 200


@pytest.mark.parametrize("rule, field", [
    ({"path": "/__sandbox/*", "code": 500}, "path"), ({"path": "/v1/*"}, "code"), ({"code": 999}, "code"),
    ({"code": 500, "count": 0}, "count"), ({"code": 500, "method": "BREW"}, "method"),
    ({"code": 500, "colour": "red"}, "colour"), ({"fault": "melt"}, "fault"),
    ({"path": "/v1/" + "*" * 3000, "code": 500}, "path"),
])
def test_bad_rules_are_400(api, rule, field):
    response = api.post("/__sandbox/rules", json=rule)
    assert response.status_code == 400
    assert response.json()["errors"][0]["meta"]["field"] == field
    assert api.get("/__sandbox/rules").json()["data"] == []


# ------------------------------------------------------------- forced answers are real answers

RATE_HEADERS = ("retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
VALID_CREATE = {"customer_id": UNKNOWN,
                "line_items": [{"amount": 1, "revenue_account_identifier": {"type": "StableName", "stable_name": "SALES"}}]}


def assert_rate_limited(response: httpx.Response, limit: int, asked_at: float) -> None:
    """What a real 429 carries: when to retry, the limit, an empty bucket, the next refill."""
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert int(asked_at) < int(response.headers["x-ratelimit-reset"]) <= time.time() + 1
    [error] = response.json()["errors"]
    assert (error["type"], error["error_enum"]) == ("RateLimited", "RateLimited")
    assert f"{limit} requests per second" in error["description"]


def test_a_forced_429_carries_the_rate_limit_headers_of_layers_sandbox_limit(api, path):
    """Without --rate-limit the sandbox answers as Layer's sandbox would: 100 requests a second."""
    asked_at = time.time()
    for prefer in ("code=429", "example=rate_limited", "code=429, example=rate_limited"):
        assert_rate_limited(api.get(path, headers={"Prefer": prefer}), 100, asked_at)
    api.post("/__sandbox/rules", json={"path": "/v1/*", "code": 429})
    assert_rate_limited(api.post(path, json=VALID_CREATE), 100, asked_at)


def test_a_forced_429_names_the_configured_limit_and_is_the_real_one(tmp_path, check):
    server = SandboxProcess(tmp_path, "--rate-limit", "7")
    try:
        business_id = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]["id"]
        listing = credits_path(business_id)
        with checking_client(server.base_url, check, headers={"Authorization": "Bearer forced"}) as forced_client, \
                checking_client(server.base_url, check, headers={"Authorization": "Bearer real"}) as real_client:
            asked_at = time.time()
            forced = forced_client.get(listing, headers={"Prefer": "code=429"})
            real = next(r for r in (real_client.get(listing) for _ in range(200)) if r.status_code == 429)
    finally:
        server.stop()
    assert_rate_limited(forced, 7, asked_at)
    assert_rate_limited(real, 7, asked_at)
    assert {h for h in RATE_HEADERS if h in forced.headers} == {h for h in RATE_HEADERS if h in real.headers}

    def said(response):  # the body, with the seconds to wait as its own Retry-After says
        text = response.text.replace(f"retry after {response.headers['retry-after']} s", "retry after N s")
        assert "retry after N s" in text
        return text

    assert said(forced) == said(real)


def test_a_forced_503_says_when_to_retry_as_the_shutdown_503_does(api, path):
    forced = [api.get(path, headers={"Prefer": "code=503"})]
    api.post("/__sandbox/rules", json={"method": "DELETE", "path": "/v1/*", "code": 503})
    forced.append(api.delete(f"{path}/{UNKNOWN}"))
    for response in forced:
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) >= 1
        assert response.json()["errors"][0]["type"] == "ServiceUnavailable"


# ------------------------------------------------------------- rules the contract cannot follow

GET_LIST, POST, GET_ONE, PATCH, DELETE = (f"business.invoices.customer-credits.{name}"
                                          for name in ("get", "post", "get_one", "patch", "delete"))


@pytest.mark.parametrize("rule, field, declared", [
    ({"code": 418}, "code", ["200", "400", "404", "429", "500", "503"]),
    ({"method": "GET", "path": "/v1/businesses/*/invoices/customer-credits/*", "code": 415}, "code", [GET_ONE, "404"]),
    ({"example": "no_such_example"}, "example", ["credit_not_found (404)", "page (200)"]),
    ({"code": 404, "example": "page"}, "example", ["credit_not_found (404)"]),
    ({"method": "PUT", "code": 500}, "method", ["GET", "POST", "PATCH", "DELETE"]),
    ({"method": "POST", "path": "*/customer-credits/*", "code": 500}, "method", ["GET", "PATCH", "DELETE"]),
    ({"path": "/v2/*", "code": 500}, "path", ["/v1/businesses/{businessId}/invoices/customer-credits"]),
])
def test_a_rule_no_operation_can_follow_is_refused_when_made(api, path, rule, field, declared):
    response = api.post("/__sandbox/rules", json=rule)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["meta"]["field"] == field and error["error_enum"] == "SpecifiedBadRequest"
    assert error["description"].startswith(f"{field}:") and "Prefer" not in error["description"]
    for name in declared:  # what the operations it matches do declare
        assert name in error["description"], (name, error["description"])
    assert api.get("/__sandbox/rules").json()["data"] == []
    assert api.get(path).status_code == 200


def test_a_rule_applies_only_to_the_operations_that_can_follow_it(api, business, path):
    made = api.post("/__sandbox/rules", json={"path": "/v1/*", "code": 422, "count": 1})
    assert made.status_code == 201
    # The writes that can break a business rule: credits' and customers' create and update.
    assert sorted(made.json()["data"]["operations"]) == sorted(
        [POST, PATCH, "business.customers.post", "business.customers.patch"])
    [listed] = api.get("/__sandbox/rules").json()["data"]
    assert listed["operations"] == made.json()["data"]["operations"]
    # A GET declares no 422: the rule passes it by, unused, instead of blaming a `Prefer` never sent.
    assert api.get(path).status_code == 200
    assert api.get(f"{path}/{UNKNOWN}").status_code == 404
    assert api.get("/__sandbox/rules").json()["data"][0]["hits"] == 0
    create = {**VALID_CREATE, "customer_id": business["customers"][0]["id"]}
    assert api.post(path, json=create).status_code == 422
    assert api.post(path, json=create).status_code == 201          # used up on the one it could follow
    assert sorted(api.post("/__sandbox/rules", json={"code": 201}).json()["data"]["operations"]) == sorted(
        [POST, "business.customers.post"])
    assert sorted(api.post("/__sandbox/rules", json={"example": "page"}).json()["data"]["operations"]) == sorted(
        [GET_LIST, "business.customers.get", "business.invoices.get"])
    delay_only = api.post("/__sandbox/rules", json={"path": "*/customer-credits*", "method": "GET",
                                                     "delay": 1}).json()["data"]
    assert sorted(delay_only["operations"]) == sorted([GET_LIST, GET_ONE])


def test_a_rule_glob_with_a_concrete_id_matches_the_templated_paths(api, path):
    target, other = api.get(path).json()["data"][:2]
    assert target["id"][:8] != other["id"][:8]
    made = api.post("/__sandbox/rules", json={"path": f"*/customer-credits/{target['id'][:8]}-*", "code": 404})
    assert made.status_code == 201, made.text
    assert sorted(made.json()["data"]["operations"]) == sorted([GET_ONE, PATCH, DELETE])
    assert api.get(f"{path}/{target['id']}").status_code == 404
    assert api.get(f"{path}/{other['id']}").status_code == 200
    assert api.get(path).status_code == 200
