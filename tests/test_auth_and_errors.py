"""Bearer auth, Layer-shaped errors everywhere, and loud failure of contract-breaking responses."""

from __future__ import annotations

import httpx
import pytest
import yaml

from support import SPEC_PATH, ContractCheck, SandboxProcess, checking_client, credits_path

PROBLEM_JSON = "application/problem+json"


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer  ,", "Basic dXNlcjpwYXNz", "Token abc", "Bearer a b", "Bearer \u00e9"])
def test_missing_or_malformed_authorization_is_401(sandbox, check, business, header):
    headers = {} if header is None else {"Authorization": header.encode("utf-8")}
    with checking_client(sandbox.base_url, check, headers=headers) as client:
        for method, path in [("GET", credits_path(business["id"])),
                             ("POST", credits_path(business["id"])),
                             ("GET", credits_path(business["id"], "3c90c3cc-0d44-4b50-8888-8dd25736052a")),
                             ("PATCH", credits_path(business["id"], "3c90c3cc-0d44-4b50-8888-8dd25736052a")),
                             ("DELETE", credits_path(business["id"], "3c90c3cc-0d44-4b50-8888-8dd25736052a"))]:
            response = client.request(method, path, json={} if method in ("POST", "PATCH") else None)
            assert response.status_code == 401, (method, header)
            [error] = response.json()["errors"]
            assert error["type"] == "Unauthorized" and error["error_enum"] == "Unauthorized"
            assert "Authorization" in error["description"] or "token" in error["description"]
            assert response.headers["www-authenticate"].startswith("Bearer")


def test_auth_is_checked_before_the_request(sandbox, check):
    # An invalid business id without a token: the client learns about the token first.
    with checking_client(sandbox.base_url, check, headers={}) as client:
        assert client.get(credits_path("not-a-uuid")).status_code == 401


def test_any_token_is_accepted_by_default(sandbox, check, business):
    for token in ("a", "eyJhbGciOiJIUzI1NiJ9.e30.x", "sk_test_123-._~+/=="):
        with checking_client(sandbox.base_url, check, headers={"Authorization": f"bearer {token}"}) as client:
            assert client.get(credits_path(business["id"])).status_code == 200


def test_with_token_flag_only_that_token_is_valid(tmp_path, check):
    server = SandboxProcess(tmp_path, "--token", "s3cret")
    try:
        business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
        path = credits_path(business["id"])
        with checking_client(server.base_url, check, headers={"Authorization": "Bearer s3cret"}) as good:
            assert good.get(path).status_code == 200
        for token in ("s3cret2", "S3CRET", "other"):
            with checking_client(server.base_url, check, headers={"Authorization": f"Bearer {token}"}) as bad:
                response = bad.get(path)
                assert response.status_code == 401
                assert "not valid" in response.json()["errors"][0]["description"]
    finally:
        server.stop()
    assert "accepts only the 1 configured --token(s)" in server.stdout and "s3cret" not in server.stdout


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nothing-here", 404),
    ("GET", "/v1/businesses", 404),
    ("PUT", "/v1/businesses/3c90c3cc-0d44-4b50-8888-8dd25736052a/invoices/customer-credits", 405),
    ("POST", "/v1/businesses/3c90c3cc-0d44-4b50-8888-8dd25736052a/invoices/customer-credits/3c90c3cc-0d44-4b50-8888-8dd25736052a", 405),
    ("DELETE", "/__sandbox/health", 405),
    ("GET", "/__sandbox/nothing", 404),
])
def test_routing_errors_are_layer_errors_not_problem_json(api, method, path, status):
    response = api.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    [error] = response.json()["errors"]
    assert set(error) >= {"type", "description", "error_enum"}
    assert "Traceback" not in response.text


def test_bad_reset_body_is_a_layer_error(api):
    response = api.post("/__sandbox/reset", json={"seed": "seven"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["meta"]["field"] == "seed"


def test_every_error_status_is_declared_on_every_operation():
    """Each status the sandbox can send on an operation is declared there: 401 and the
    sandbox-wide 413, 429, 500 and 503 everywhere; 400 everywhere too (a bad namespace header is one); 404
    where the path names a resource; 415 where a JSON body is taken (the token endpoint tells a
    wrong body type as OAuth's invalid_request, a 400); 422 on the writes with business rules."""
    spec = yaml.safe_load(SPEC_PATH.read_text())
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            declared = set(operation["responses"])
            assert {"400", "401", "413", "429", "500", "503"} <= declared, (method, path)
            if "{" in path:
                assert "404" in declared, (method, path)
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                assert "415" in declared, (method, path)
            if method in ("post", "patch") and "/customers" in path or "/customer-credits" in path and method != "get":
                assert "422" in declared or path.endswith("/archive") or method == "delete", (method, path)


def test_a_response_that_would_break_the_contract_is_a_loud_500(tmp_path, business):
    """Serve a contract that demands a field the sandbox does not send: the client must get a
    500 Layer error naming the violation, and the sandbox must log it."""
    spec = yaml.safe_load(SPEC_PATH.read_text())
    credit = spec["components"]["schemas"]["ApiCustomerCredit"]
    credit["properties"]["voided_at"] = {"type": "string", "format": "date-time"}
    credit["required"].append("voided_at")
    spec["components"]["schemas"]["ApiCustomerData"]["properties"]["status"]["enum"] = ["ACTIVE_ONLY"]
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump(spec, sort_keys=False))
    server = SandboxProcess(tmp_path, "--spec", str(strict))
    try:
        business_id = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]["id"]
        response = httpx.get(server.base_url + credits_path(business_id), params={"limit": 1},
                             headers={"Authorization": "Bearer t"})
        assert response.status_code == 500
        assert response.headers["x-sandbox-contract"] == "request=pass; response=fail"
        [error] = response.json()["errors"]
        assert error["type"] == "SandboxContractViolation"
        assert "voided_at" in error["description"] and "ACTIVE_ONLY" in error["description"]
        assert any("voided_at" in v for v in error["meta"]["violations"])
        assert "error_enum" not in error  # Layer sends error_enum on 4xx only
        assert ContractCheck.ours().response_errors(response) == []  # a 500 our own contract accepts
        # Errors are checked too: a 404 body still passes, so it is sent as it is.
        missing = httpx.get(server.base_url + credits_path(business_id, "3c90c3cc-0d44-4b50-8888-8dd25736052a"),
                            headers={"Authorization": "Bearer t"})
        assert missing.status_code == 404
        assert missing.headers["x-sandbox-contract"] == "request=pass; response=pass"
    finally:
        server.stop()
    assert "contract violation" in server.stderr and "voided_at" in server.stderr


def test_a_failure_above_connexions_error_handling_is_still_a_layer_500():
    """Edge, the outermost middleware, answers an exception nothing inside it handled with a Layer
    error (uvicorn would send plain text) and keeps the traceback out of the body."""
    import asyncio
    import json as jsonlib

    from layer_sandbox.journal import Journal
    from layer_sandbox.pipeline import Edge

    async def broken(scope, receive, send):
        raise RuntimeError("a bug with a secret in its message")

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    sent = []

    async def send(message):
        sent.append(message)

    edge = Edge(broken, journal=Journal(10), max_body_bytes=1024, client_timeout=5)
    scope = {"type": "http", "method": "GET", "path": "/v1/anything", "query_string": b"", "headers": []}
    asyncio.run(edge(scope, receive, send))
    assert sent[0]["status"] == 500
    body = jsonlib.loads(sent[1]["body"])
    assert body["errors"][0]["type"] == "InternalError" and "error_enum" not in body["errors"][0]
    assert "secret" not in sent[1]["body"].decode() and "Traceback" not in sent[1]["body"].decode()


def test_5xx_errors_carry_no_error_enum_and_4xx_errors_do(api, check, business):
    """Layer puts `error_enum` on 4xx errors only; the contract holds each side to it (the
    checking client validates every answer here against openapi.yaml)."""
    path = credits_path(business["id"])
    for prefer in ("code=500", "example=internal_error", "example=contract_violation", "code=503"):
        response = api.get(path, headers={"Prefer": prefer})
        assert response.status_code >= 500
        assert response.headers["x-sandbox-contract"] == "request=pass; response=pass"
        for error in response.json()["errors"]:
            assert set(error) <= {"type", "description", "meta"} and {"type", "description"} <= set(error)
    for prefer in ("code=400", "code=401", "code=404", "code=413", "code=429"):
        [error] = api.get(path, headers={"Prefer": prefer}).json()["errors"]
        assert error["error_enum"], prefer
    for response in (api.get(path, params={"limit": 0}), api.get(credits_path(business["id"], "nope"))):
        assert response.status_code == 400 and response.json()["errors"][0]["error_enum"] == "SpecifiedBadRequest"
    # The contract itself refuses an error_enum on a 5xx, and its absence on a 4xx.
    for prefer, change in (("code=500", lambda e: e.update(error_enum="SandboxInternalError")),
                           ("code=503", lambda e: e.update(error_enum="ServiceUnavailable")),
                           ("code=404", lambda e: e.pop("error_enum"))):
        answered = api.get(path, headers={"Prefer": prefer})
        body = answered.json()
        change(body["errors"][0])
        wrong = httpx.Response(answered.status_code, headers={"content-type": "application/json"}, json=body,
                               request=answered.request)
        assert check.response_errors(wrong), prefer
