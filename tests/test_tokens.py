"""Layer's auth flows on the sandbox: client-credentials tokens, whoami, business-scoped tokens,
expiry on the namespace's virtual clock, and tokens kept out of logs, journal and state file."""

from __future__ import annotations

import base64

import httpx
import pytest

from support import SandboxProcess, checking_client, credits_path

SCOPE = "https://sandbox.layerfi.com/sandbox"
FORM = {"grant_type": "client_credentials", "scope": SCOPE, "client_id": "backend"}


def basic(client_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.fixture(scope="module")
def locked(tmp_path_factory):
    """A sandbox with one configured client and a state file: only issued tokens pass."""
    workdir = tmp_path_factory.mktemp("locked")
    process = SandboxProcess(workdir, "--client", "backend:s3cret", "--state-file", str(workdir / "state.json"),
                             "--clock", "frozen=2026-03-01T00:00:00Z")
    yield process
    process.stop()


@pytest.fixture
def client(locked, check):
    with checking_client(locked.base_url, check, headers={}) as http:
        yield http


def token(http, namespace: str | None = None, **form) -> str:
    headers = {**basic("backend", "s3cret"), **({"X-Sandbox-Namespace": namespace} if namespace else {})}
    answer = http.post("/oauth2/token", data={**FORM, **form}, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}  # no `data` envelope, as Layer's
    assert (body["expires_in"], body["token_type"]) == (3600, "Bearer")
    assert answer.headers["cache-control"] == "no-store"
    return body["access_token"]


def bearer(value: str, namespace: str | None = None) -> dict:
    return {"Authorization": f"Bearer {value}", **({"X-Sandbox-Namespace": namespace} if namespace else {})}


def first_business(http, headers) -> str:
    return http.get("/__sandbox/businesses", headers=headers).json()["data"][0]["id"]


def test_a_client_gets_a_token_and_whoami_names_it(client):
    issued = token(client)
    me = client.get("/whoami", headers=bearer(issued))
    assert me.status_code == 200
    assert me.json() == {"data": {"type": "whoami", "clientName": "backend", "clientId": "backend"}}


@pytest.mark.parametrize("headers, form, content, status, error", [
    (basic("backend", "wrong"), FORM, None, 401, "invalid_client"),
    (basic("stranger", "s3cret"), FORM, None, 401, "invalid_client"),
    ({}, FORM, None, 401, "invalid_client"),
    ({"Authorization": "Basic !!!not-base64"}, FORM, None, 401, "invalid_client"),
    ({"Authorization": "Bearer backend"}, FORM, None, 401, "invalid_client"),
    (basic("backend", "s3cret"), {**FORM, "client_id": "other"}, None, 401, "invalid_client"),
    (basic("backend", "s3cret"), {**FORM, "grant_type": "password"}, None, 400, "unsupported_grant_type"),
    (basic("backend", "s3cret"), {"scope": SCOPE}, None, 400, "invalid_request"),
    (basic("backend", "s3cret"), {**FORM, "scope": "https://api.layerfi.com/production"}, None, 400, "invalid_scope"),
    (basic("backend", "s3cret"), None, b'{"grant_type": "client_credentials"}', 400, "invalid_request"),
])
def test_token_errors_are_oauth_errors(client, headers, form, content, status, error):
    extra = {"Content-Type": "application/json"} if content is not None else {}
    answer = client.post("/oauth2/token", data=form, content=content, headers={**headers, **extra})
    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == error and answer.json()["error_description"]
    assert "errors" not in answer.json() and "Traceback" not in answer.text
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Basic")


def test_only_issued_tokens_pass_when_clients_are_configured(client):
    business = first_business(client, {})
    assert client.get(credits_path(business), headers=bearer("made-up-token")).status_code == 401
    assert client.get(credits_path(business), headers=bearer(token(client))).status_code == 200


def test_a_token_expires_on_the_namespace_clock(client):
    namespace = "expiry"
    issued = token(client, namespace)
    business = first_business(client, {"X-Sandbox-Namespace": namespace})
    assert client.get(credits_path(business), headers=bearer(issued, namespace)).status_code == 200
    moved = client.post("/__sandbox/clock", json={"advance_seconds": 3599}, headers={"X-Sandbox-Namespace": namespace})
    assert moved.status_code == 200
    assert client.get(credits_path(business), headers=bearer(issued, namespace)).status_code == 200
    client.post("/__sandbox/clock", json={"advance_seconds": 1}, headers={"X-Sandbox-Namespace": namespace})
    expired = client.get(credits_path(business), headers=bearer(issued, namespace))
    assert expired.status_code == 401 and "expired" in expired.json()["errors"][0]["description"]
    # Another namespace's clock did not move: a token issued there still works; and a new one here does.
    other = token(client)
    assert client.get(credits_path(business), headers=bearer(other)).status_code == 200
    assert client.get(credits_path(business), headers=bearer(token(client, namespace), namespace)).status_code == 200


def test_a_business_token_reaches_its_business_only(client):
    backend = token(client)
    businesses = [b["id"] for b in client.get("/__sandbox/businesses").json()["data"]]
    minted = client.post(f"/v1/businesses/{businesses[0]}/auth-token", json={"session_duration": 600},
                         headers=bearer(backend))
    assert minted.status_code == 200, minted.text
    assert set(minted.json()) == {"access_token", "expires_in", "token_type"} and minted.json()["expires_in"] == 600
    scoped = minted.json()["access_token"]
    assert client.get(credits_path(businesses[0]), headers=bearer(scoped)).status_code == 200
    elsewhere = client.get(credits_path(businesses[1]), headers=bearer(scoped))
    unknown = client.get(credits_path("3c90c3cc-0d44-4b50-8888-8dd25736052a"), headers=bearer(backend))
    assert elsewhere.status_code == 404
    assert elsewhere.json()["errors"][0]["description"] == unknown.json()["errors"][0]["description"].replace(
        "3c90c3cc-0d44-4b50-8888-8dd25736052a", businesses[1])
    assert client.get("/whoami", headers=bearer(scoped)).json()["data"]["clientId"] == "backend"
    got = client.get(f"/v1/businesses/{businesses[0]}/auth-token", params={"session_duration": 60},
                     headers=bearer(backend))
    assert got.status_code == 200 and got.json()["expires_in"] == 60
    client.post("/__sandbox/clock", json={"advance_seconds": 61})
    assert client.get(credits_path(businesses[0]), headers=bearer(got.json()["access_token"])).status_code == 401
    assert client.get(credits_path(businesses[0]), headers=bearer(scoped)).status_code == 200


@pytest.mark.parametrize("duration", [0, 86401, -5])
def test_session_duration_out_of_range_is_a_400(client, duration):
    business = first_business(client, {})
    answer = client.post(f"/v1/businesses/{business}/auth-token", json={"session_duration": duration},
                         headers=bearer(token(client)))
    assert answer.status_code == 400 and answer.json()["errors"][0]["meta"]["field"] == "session_duration"


def test_a_business_token_needs_a_valid_token_and_a_business_here(client):
    assert client.post(f"/v1/businesses/{first_business(client, {})}/auth-token",
                       headers=bearer("made-up")).status_code == 401
    unknown = client.post("/v1/businesses/3c90c3cc-0d44-4b50-8888-8dd25736052a/auth-token", headers=bearer(token(client)))
    assert unknown.status_code == 404


def test_tokens_never_reach_the_journal_the_state_file_or_the_log(locked, client, tmp_path):
    issued = token(client)
    business = first_business(client, {})
    minted = client.post(f"/v1/businesses/{business}/auth-token", headers=bearer(issued)).json()["access_token"]
    client.get(credits_path(business), headers=bearer(minted))
    assert client.post("/__sandbox/save").status_code == 200
    journal = client.get("/__sandbox/requests", params={"namespace": "*", "limit": 1000}).text
    token_entries = [e for e in client.get("/__sandbox/requests", params={"namespace": "*", "limit": 1000}).json()["data"]
                     if e["operation_id"] in ("oauth2.token.post", "business.auth-token.post")]
    assert token_entries and all(e["request_body"] is None and e["response_body"] is None and e["bodies_withheld"]
                                 for e in token_entries)
    state = (locked.workdir / "state.json").read_text() + (locked.workdir / "state.json.log").read_text()
    for secret in (issued, minted, "s3cret"):
        assert secret not in journal
        assert secret not in state
        assert secret not in locked.stdout and secret not in locked.stderr


def test_the_open_sandbox_gives_any_client_a_token_and_takes_any_token(api, business):
    answer = api.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic("anyone", "anything"))
    assert answer.status_code == 200
    issued = answer.json()["access_token"]
    assert api.get("/whoami", headers=bearer(issued)).json()["data"]["clientName"] == "anyone"
    assert api.get(credits_path(business["id"]), headers=bearer("whatever-token")).status_code == 200
    who = api.get("/whoami", headers=bearer("whatever-token")).json()["data"]
    assert who["clientId"] != "whatever-token" and "whatever-token" not in who["clientName"]
    # An issued token still expires, open sandbox or not.
    assert api.post("/__sandbox/clock", json={"advance_seconds": 3601}).status_code == 200
    assert api.get(credits_path(business["id"]), headers=bearer(issued)).status_code == 401
    assert api.post("/__sandbox/clock", json={"system": True}).status_code == 200


def test_a_token_of_a_deleted_namespace_stops_working(client):
    issued = token(client, "short-lived")
    business = first_business(client, {})
    assert client.get(credits_path(business), headers=bearer(issued)).status_code == 200
    assert client.delete("/__sandbox/namespaces/short-lived").status_code == 200
    assert client.get(credits_path(business), headers=bearer(issued)).status_code == 401


def test_the_client_option_reads_its_environment_variable(tmp_path):
    process = SandboxProcess(tmp_path, env={"LAYER_SANDBOX_CLIENT": "one:1 two:2"})
    try:
        for client_id, secret, status in (("one", "1", 200), ("two", "2", 200), ("one", "2", 401)):
            answer = httpx.post(f"{process.base_url}/oauth2/token", data=FORM | {"client_id": client_id},
                                headers=basic(client_id, secret))
            assert answer.status_code == status, (client_id, answer.text)
    finally:
        process.stop()


def test_a_business_token_cannot_mint_tokens(client):
    business = first_business(client, {})
    scoped = client.post(f"/v1/businesses/{business}/auth-token", json={"session_duration": 900},
                         headers=bearer(token(client))).json()["access_token"]
    longer = client.post(f"/v1/businesses/{business}/auth-token", json={"session_duration": 86400},
                         headers=bearer(scoped))
    assert longer.status_code == 401 and "client token" in longer.json()["errors"][0]["description"]


def test_a_scoped_token_asking_for_another_business_kept_the_contract(client):
    businesses = [b["id"] for b in client.get("/__sandbox/businesses").json()["data"]]
    scoped = client.post(f"/v1/businesses/{businesses[0]}/auth-token",
                         headers=bearer(token(client))).json()["access_token"]
    elsewhere = client.get(credits_path(businesses[1]), headers=bearer(scoped))
    assert elsewhere.status_code == 404
    assert elsewhere.headers["x-sandbox-contract"] == "request=pass; response=pass"


def test_with_only_token_set_no_client_gets_a_token(tmp_path):
    process = SandboxProcess(tmp_path, "--token", "fixed")
    try:
        answer = httpx.post(f"{process.base_url}/oauth2/token", data=FORM, headers=basic("anyone", "anything"))
        assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"
    finally:
        process.stop()


def test_a_token_request_is_rate_limited_like_any_call(tmp_path):
    process = SandboxProcess(tmp_path, "--rate-limit", "1000")
    try:
        answer = httpx.post(f"{process.base_url}/oauth2/token", data=FORM, headers=basic("backend", "b"))
        assert answer.status_code == 200 and int(answer.headers["x-ratelimit-remaining"]) == 999
    finally:
        process.stop()


def test_a_refused_token_request_makes_no_namespace(client):
    refused = client.post("/oauth2/token", data=FORM,
                          headers={**basic("backend", "wrong"), "X-Sandbox-Namespace": "made-by-a-stranger"})
    assert refused.status_code == 401
    assert "made-by-a-stranger" not in [n["namespace"] for n in client.get("/__sandbox/namespaces").json()["data"]]


def test_a_token_the_sandbox_does_not_know_is_refused_even_when_open(api, business):
    forgotten = api.get(credits_path(business["id"]), headers=bearer("lsbx_" + "x" * 43))
    assert forgotten.status_code == 401 and "request a new one" in forgotten.json()["errors"][0]["description"]


def test_a_namespace_made_again_does_not_bring_its_old_tokens_back(client):
    issued = token(client, "again")
    business = first_business(client, {})
    assert client.delete("/__sandbox/namespaces/again").status_code == 200
    assert client.put("/__sandbox/namespaces/again").status_code == 201
    assert client.get(credits_path(business), headers=bearer(issued, "again")).status_code == 401


@pytest.mark.parametrize("form", [
    [("grant_type", "client_credentials"), ("scope", SCOPE), ("scope", "x")],
    [("grant_type", "client_credentials"), ("client_id", "backend"), ("client_id", "other")],
])
def test_a_repeated_token_parameter_is_an_invalid_request(client, form):
    answer = client.post("/oauth2/token", content="&".join(f"{k}={v}" for k, v in form),
                         headers={**basic("backend", "s3cret"), "Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_request"


def test_overlong_client_credentials_are_refused(api):
    answer = api.post("/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic("c" * 300, "s"))
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_a_malformed_client_option_never_shows_the_entry(tmp_path):
    import subprocess

    from support import sandbox_command

    result = subprocess.run(sandbox_command() + ["--port", "0", "--client", "myid=TopSecret123"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "--client number 1" in result.stderr
    assert "TopSecret123" not in result.stderr + result.stdout
