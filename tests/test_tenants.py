"""Business-scoped tokens, the admin token, and secrets kept out of logs (issue 6, point 5).

One process runs with `--token t-one=B1 --token t-two=B2 --token t-all --admin-token adm`; every
token x business x operation is tried, and a token scoped to another business must get exactly
what an unknown business gets, with the state left as it was."""

from __future__ import annotations

import itertools
import uuid

import httpx
import pytest

from support import SandboxProcess, credits_path

ADMIN = {"Authorization": "Bearer adm-7f3e"}
OPERATIONS = ["list", "fetch", "create", "update", "delete"]


@pytest.fixture(scope="module")
def tenants(tmp_path_factory):
    # The business ids of seed 1 are fixed (test_determinism); read them from a plain process first.
    probe = SandboxProcess(tmp_path_factory.mktemp("probe"))
    try:
        ids = [b["id"] for b in httpx.get(f"{probe.base_url}/__sandbox/businesses").json()["data"]]
    finally:
        probe.stop()
    tokens = {"tok-one-1a2b": ids[0], "tok-two-3c4d": ids[1], "tok-all-5e6f": None}
    args = [a for token, business in tokens.items()
            for a in ("--token", f"{token}={business}" if business else token)] + ["--admin-token", "adm-7f3e"]
    workdir = tmp_path_factory.mktemp("tenants")
    server = SandboxProcess(workdir, *args, "--journal-size", "10000", "--state-file", str(workdir / "state.json"))
    server.state_file = workdir / "state.json"
    yield server, tokens, ids
    server.stop()


def _state(base: str) -> dict:
    return httpx.get(f"{base}/__sandbox/state", headers=ADMIN).json()


def _some_credit(base: str, business: str) -> str:
    listing = httpx.get(f"{base}{credits_path(business)}", headers={"Authorization": "Bearer tok-all-5e6f"})
    return listing.json()["data"][0]["id"]


def _call(base: str, token: str, business: str, operation: str, credit: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    path = credits_path(business)
    if operation == "list":
        return httpx.get(f"{base}{path}", headers=headers)
    if operation == "fetch":
        return httpx.get(f"{base}{path}/{credit}", headers=headers)
    if operation == "create":
        customers = httpx.get(f"{base}/__sandbox/businesses", headers=ADMIN).json()["data"]
        customer = next(b for b in customers if b["id"] == business)["customers"][0]["id"]
        return httpx.post(f"{base}{path}", headers=headers, json={
            "customer_id": customer, "line_items": [{"amount": 100, "revenue_account_identifier": {
                "type": "StableName", "stable_name": "SALES"}}]})
    if operation == "update":
        return httpx.patch(f"{base}{path}/{credit}", headers=headers, json={"memo": "changed"})
    return httpx.delete(f"{base}{path}/{credit}", headers=headers)


def test_no_token_reads_writes_or_deletes_across_businesses(tenants):
    server, tokens, ids = tenants
    base = server.base_url
    tried = allowed = denied = 0
    for (token, scope), business, operation in itertools.product(tokens.items(), ids, OPERATIONS):
        httpx.post(f"{base}/__sandbox/reset", headers=ADMIN, json={}).raise_for_status()
        credit = _some_credit(base, business)
        before = _state(base)
        response = _call(base, token, business, operation, credit)
        tried += 1
        if scope is None or scope == business:
            allowed += 1
            assert response.status_code in (200, 201), (token, business, operation, response.text)
        else:
            denied += 1
            unknown = str(uuid.UUID(int=tried, version=4))
            control = _call(base, "tok-all-5e6f", unknown, "list", credit)
            assert response.status_code == control.status_code == 404, (token, business, operation)
            assert response.json() == {"errors": [{**control.json()["errors"][0],
                                                   "description": f"Business {business} not found",
                                                   "meta": {"field": "businessId", "resource": "business", "id": business}}]}
            assert _state(base) == before, (token, business, operation)
    assert (tried, allowed, denied) == (30, 20, 10)


def test_an_unknown_token_is_refused_everywhere(tenants):
    server, _, ids = tenants
    response = httpx.get(f"{server.base_url}{credits_path(ids[0])}", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


@pytest.mark.parametrize("method, path", [
    ("GET", "/__sandbox/businesses"), ("POST", "/__sandbox/reset"), ("GET", "/__sandbox/state"),
    ("GET", "/__sandbox/requests"), ("GET", "/__sandbox/namespaces"), ("POST", "/__ns/other/__sandbox/reset"),
    ("POST", "/__sandbox/clock"),
])
def test_control_routes_take_only_the_admin_token(tenants, method, path):
    server, _, _ = tenants
    base = server.base_url
    for headers in ({}, {"Authorization": "Bearer tok-all-5e6f"}, {"Authorization": "Bearer adm-7f3e-x"}):
        response = httpx.request(method, f"{base}{path}", headers=headers, json={})
        assert response.status_code == 401, (path, headers)
        assert response.json()["errors"][0]["error_enum"] == "Unauthorized"
    assert httpx.request(method, f"{base}{path}", headers=ADMIN, json={}).status_code < 400
    assert httpx.get(f"{base}/__sandbox/health").status_code == 200  # health stays open for health checks


def test_tokens_never_reach_the_log_the_journal_or_the_state(tenants):
    server, tokens, ids = tenants
    base = server.base_url
    for token in tokens:
        httpx.get(f"{base}{credits_path(ids[0])}", headers={"Authorization": f"Bearer {token}"})
    httpx.get(f"{base}{credits_path(ids[0])}", headers={"Authorization": "Bearer wrong-token-9z"})
    journal = httpx.get(f"{base}/__sandbox/requests", headers=ADMIN).text
    state = httpx.get(f"{base}/__sandbox/state", headers=ADMIN).text
    logs = server.stdout + server.stderr
    saved = (server.state_file.read_text() + server.state_file.with_name("state.json.log").read_text())
    for secret in [*tokens, "adm-7f3e", "wrong-token-9z"]:
        for where, text in (("journal", journal), ("state", state), ("log", logs), ("state file", saved)):
            assert secret not in text, f"{secret} in the {where}"
    entries = httpx.get(f"{base}/__sandbox/requests", headers=ADMIN).json()["data"]
    assert entries and not any("headers" in entry for entry in entries)
