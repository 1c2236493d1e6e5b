"""`layer-sandbox verify-pact` on real pact files, written here by pact-python's consumer DSL (the
Rust Pact FFI's mock server records what each consumer sent), then verified by the command: each
interaction against openapi.yaml and, with Pact's own verifier, against the sandbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

os.environ.setdefault("PACT_DO_NOT_TRACK", "true")
from pact import Pact, match  # noqa: E402

SCRIPT = str(Path(sys.executable).with_name("layer-sandbox"))
BUSINESS = "5a4b1f0e-0000-4000-8000-00000000000b"
CUSTOMER = "5a4b1f0e-0000-4000-8000-00000000000c"
INVOICE = "5a4b1f0e-0000-4000-8000-0000000000a1"
SEEDED_BUSINESS = "cd613e30-d8f1-4adf-91b7-584a2265b1f5"  # the first business of seed 1
AUTH = {"Authorization": "Bearer consumer-token"}
CREDITS = f"/v1/businesses/{BUSINESS}/invoices/customer-credits"
SALES = {"type": "StableName", "stable_name": "SALES"}


def pact_of(consumer: str, specification: str = "V4") -> Pact:
    return Pact(consumer, "layer").with_specification(specification)


def written(pact: Pact, folder: Path, requests: list[tuple]) -> Path:
    """The pact file, once the consumer's requests reached Pact's mock server (which checks that
    each interaction was exercised as declared)."""
    with pact.serve() as server:
        for method, path, options in requests:
            httpx.request(method, f"{server.url}{path}", **options)
    pact.write_file(folder)
    return folder / f"{pact.consumer}-layer.json"


def verify(*args, url: str | None = None) -> tuple[int, dict, str]:
    """The command's exit status, its JSON report and its stderr."""
    command = [SCRIPT, "verify-pact", *map(str, args), "--format", "json"] + (["--url", url] if url else [])
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}, done.stderr


def interactions(report: dict) -> dict[str, dict]:
    return {i["description"]: i for p in report["pacts"] for i in p["interactions"]}


def given_a_customer(interaction):
    return (interaction.given("a business exists", id=BUSINESS)
            .given("a customer exists", id=CUSTOMER, company_name="Acme Corp", external_id="acme"))


def given_an_invoice(interaction, outstanding: int = 100000):
    return given_a_customer(interaction).given("an invoice exists", id=INVOICE, customer_id=CUSTOMER,
                                               total_amount=100000, outstanding_balance=outstanding)


# ------------------------------------------------------------------------------ a pact that passes


@pytest.fixture(scope="module")
def passing_pact(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("passing")
    pact = pact_of("billing-web")
    requests = []

    (given_a_customer(pact.upon_receiving("list customers"))
     .with_request("GET", f"/v1/businesses/{BUSINESS}/customers").with_headers(AUTH)
     .will_respond_with(200)
     .with_body({"data": match.each_like({"id": match.uuid(CUSTOMER), "company_name": "Acme Corp",
                                          "external_id": "acme", "status": "ACTIVE"})},
                content_type="application/json"))
    requests.append(("GET", f"/v1/businesses/{BUSINESS}/customers", {"headers": AUTH}))

    (given_an_invoice(pact.upon_receiving("fetch an open invoice"))
     .with_request("GET", f"/v1/businesses/{BUSINESS}/invoices/{INVOICE}").with_headers(AUTH)
     .will_respond_with(200)
     .with_body({"data": {"id": INVOICE, "total_amount": 100000, "outstanding_balance": 100000,
                          "status": "SAVED", "customer": {"id": CUSTOMER}}}, content_type="application/json"))
    requests.append(("GET", f"/v1/businesses/{BUSINESS}/invoices/{INVOICE}", {"headers": AUTH}))

    create = {"customer_id": CUSTOMER, "external_id": "credit-1",
              "line_items": [{"amount": 2500, "revenue_account_identifier": SALES}],
              "allocations": [{"invoice_id": INVOICE, "amount": 2500}]}
    (given_an_invoice(pact.upon_receiving("apply a credit to the invoice"))
     .given("the clock is frozen at", time="2026-01-15T10:00:00Z")
     .with_request("POST", CREDITS).with_headers(AUTH).with_body(create, content_type="application/json")
     .will_respond_with(201)
     .with_body({"data": {"id": match.uuid(), "external_id": "credit-1", "created_at": "2026-01-15T10:00:00.000000Z",
                          "allocations": match.each_like({"invoice_id": INVOICE, "amount": 2500})}},
                content_type="application/json"))
    requests.append(("POST", CREDITS, {"headers": AUTH, "json": create}))

    (given_an_invoice(pact.upon_receiving("the invoice after a credit"))
     .given("a customer credit exists", customer_id=CUSTOMER, amount=2500,
            allocations=[{"invoice_id": INVOICE, "amount": 2500}])
     .with_request("GET", f"/v1/businesses/{BUSINESS}/invoices/{INVOICE}").with_headers(AUTH)
     .will_respond_with(200)
     .with_body({"data": {"outstanding_balance": 97500, "status": "PARTIALLY_PAID"}}, content_type="application/json"))
    requests.append(("GET", f"/v1/businesses/{BUSINESS}/invoices/{INVOICE}", {"headers": AUTH}))

    (pact.upon_receiving("a credit that does not exist").given("a business exists", id=BUSINESS)
     .with_request("GET", f"{CREDITS}/{CUSTOMER}").with_headers(AUTH)
     .will_respond_with(404)
     .with_body({"errors": match.each_like({"type": "NotFound", "error_enum": "SpecifiedIdNotFound"})},
                content_type="application/json"))
    requests.append(("GET", f"{CREDITS}/{CUSTOMER}", {"headers": AUTH}))

    (pact.upon_receiving("a limit of zero is refused").given("a business exists", id=BUSINESS)
     .with_request("GET", CREDITS).with_query_parameter("limit", "0").with_headers(AUTH)
     .will_respond_with(400)
     .with_body({"errors": match.each_like({"type": match.like("BadRequest")})}, content_type="application/json"))
    requests.append(("GET", CREDITS, {"headers": AUTH, "params": {"limit": "0"}}))

    (pact.upon_receiving("a seeded business without credits")
     .given("no customer credits exist", business_id=SEEDED_BUSINESS)
     .with_request("GET", f"/v1/businesses/{SEEDED_BUSINESS}/invoices/customer-credits").with_headers(AUTH)
     .will_respond_with(200)
     .with_body({"data": []}, content_type="application/json"))
    requests.append(("GET", f"/v1/businesses/{SEEDED_BUSINESS}/invoices/customer-credits", {"headers": AUTH}))
    return written(pact, folder, requests)


def test_a_pact_that_keeps_to_the_contract_and_to_layers_behaviour_passes_both_checks(passing_pact, sandbox):
    status, report, stderr = verify(passing_pact, url=sandbox.base_url)
    assert status == 0, json.dumps(report, indent=1) + stderr
    [pact] = report["pacts"]
    assert (pact["consumer"], pact["provider"], pact["specification"]) == ("billing-web", "layer", "V4")
    assert report["summary"]["interactions"] == report["summary"]["passed"] == 7
    for item in pact["interactions"]:
        assert item["contract"]["result"] == item["sandbox"]["result"] == "pass", item
    # The refused request is fair: the consumer expects the very refusal the contract makes.
    refused = interactions(report)["a limit of zero is refused"]["contract"]["notes"]
    assert refused and "limit" in refused[0] and "400" in refused[0]


def test_the_text_report_and_junit_name_each_check(passing_pact, sandbox, tmp_path):
    junit = tmp_path / "pact.xml"
    done = subprocess.run([SCRIPT, "verify-pact", str(passing_pact), "--url", sandbox.base_url, "--junit-xml",
                           str(junit)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{passing_pact}: billing-web -> layer, pact specification V4, 7 interactions" in done.stdout
    assert "  PASS  fetch an open invoice (given a business exists and a customer exists and an invoice exists)" \
        in done.stdout
    assert "7 interactions in 1 pact: 7 passed, 0 failed, 0 skipped" in done.stdout
    cases = ElementTree.parse(junit).getroot().findall(".//testcase")
    assert len(cases) == 14 and not ElementTree.parse(junit).getroot().findall(".//failure")
    assert {c.get("name").rsplit(" ", 1)[1] for c in cases} == {"[contract]", "[sandbox]"}


def test_a_sandbox_is_started_for_the_run_when_no_url_is_given(passing_pact):
    started = time.perf_counter()
    status, report, stderr = verify(passing_pact)
    assert status == 0 and report["summary"]["passed"] == 7, stderr
    assert time.perf_counter() - started < 120


# ------------------------------------------------------------------------------ pacts that fail


@pytest.fixture(scope="module")
def failing_pacts(tmp_path_factory) -> Path:
    """A directory of several pacts, each with one way to be wrong, and one that is fine (V2)."""
    folder = tmp_path_factory.mktemp("failing")

    extra = pact_of("extra-member")
    (given_a_customer(extra.upon_receiving("a customer with a loyalty tier"))
     .with_request("GET", f"/v1/businesses/{BUSINESS}/customers/{CUSTOMER}").with_headers(AUTH)
     .will_respond_with(200)
     .with_body({"data": {"id": CUSTOMER, "company_name": "Acme Corp", "loyalty_tier": "gold"}},
                content_type="application/json"))
    written(extra, folder, [("GET", f"/v1/businesses/{BUSINESS}/customers/{CUSTOMER}", {"headers": AUTH})])

    upsert = pact_of("upsert-201")
    body = {"external_id": "acme", "company_name": "Acme Corporation"}
    (given_a_customer(upsert.upon_receiving("create a customer whose external id exists"))
     .with_request("POST", f"/v1/businesses/{BUSINESS}/customers").with_headers(AUTH)
     .with_body(body, content_type="application/json")
     .will_respond_with(201)
     .with_body({"data": {"external_id": "acme", "company_name": "Acme Corporation"}}, content_type="application/json"))
    written(upsert, folder, [("POST", f"/v1/businesses/{BUSINESS}/customers", {"headers": AUTH, "json": body})])

    refused = pact_of("refused-request")
    bad = {"customer_id": CUSTOMER, "line_items": [{"amount": -5, "revenue_account_identifier": SALES}]}
    (given_a_customer(refused.upon_receiving("a credit of a negative amount"))
     .with_request("POST", CREDITS).with_headers(AUTH).with_body(bad, content_type="application/json")
     .will_respond_with(201))
    written(refused, folder, [("POST", CREDITS, {"headers": AUTH, "json": bad})])

    unknown = pact_of("unknown-state")
    (unknown.upon_receiving("credits of a VIP").given("a VIP customer exists", tier="gold")
     .with_request("GET", CREDITS).with_headers(AUTH).will_respond_with(200))
    written(unknown, folder, [("GET", CREDITS, {"headers": AUTH})])

    old = pact_of("old-consumer", "V2")
    (old.upon_receiving("list customers, V2").given("a business exists")
     .with_request("GET", f"/v1/businesses/{SEEDED_BUSINESS}/customers").with_headers(AUTH)
     .will_respond_with(200)
     .with_body({"data": match.each_like({"type": "CustomerData", "status": "ACTIVE", "id": match.uuid(CUSTOMER)})},
                content_type="application/json"))
    written(old, folder, [("GET", f"/v1/businesses/{SEEDED_BUSINESS}/customers", {"headers": AUTH})])

    v3 = pact_of("v3-consumer", "V3")
    (given_an_invoice(v3.upon_receiving("list open invoices, V3"), outstanding=40000)
     .with_request("GET", f"/v1/businesses/{BUSINESS}/invoices").with_query_parameter("status", "PARTIALLY_PAID")
     .with_headers(AUTH).will_respond_with(200)
     .with_body({"data": [{"id": INVOICE, "outstanding_balance": 40000, "status": "PARTIALLY_PAID"}]},
                content_type="application/json"))
    written(v3, folder, [("GET", f"/v1/businesses/{BUSINESS}/invoices",
                          {"headers": AUTH, "params": {"status": "PARTIALLY_PAID"}})])
    return folder


@pytest.fixture(scope="module")
def failing_report(failing_pacts, sandbox) -> tuple[int, dict]:
    status, report, stderr = verify(failing_pacts, url=sandbox.base_url)
    return status, report


def test_a_directory_is_read_for_each_of_its_pacts(failing_report):
    status, report = failing_report
    assert status == 1
    assert sorted(p["consumer"] for p in report["pacts"]) == [
        "extra-member", "old-consumer", "refused-request", "unknown-state", "upsert-201", "v3-consumer"]
    assert report["summary"] == {**report["summary"], "interactions": 6, "failed": 4, "passed": 2}


def test_a_member_layer_does_not_send_fails_both_checks_named_by_json_path(failing_report):
    item = interactions(failing_report[1])["a customer with a loyalty tier"]
    assert item["result"] == "fail"
    assert item["contract"]["problems"][0].startswith("$.data.loyalty_tier: the contract has no such member")
    assert any("$.data" in p and "loyalty_tier" in p for p in item["sandbox"]["problems"]), item


def test_expecting_201_where_layer_answers_200_passes_the_contract_and_fails_the_sandbox(failing_report):
    item = interactions(failing_report[1])["create a customer whose external id exists"]
    # The contract declares both (201 new, 200 an existing external_id updated): only Layer's
    # behaviour, replayed with the customer already there, says which one this request gets.
    assert item["contract"] == {"result": "pass", "problems": [], "notes": []}
    assert item["sandbox"]["result"] == "fail"
    assert "status: expected 201 but was 200" in item["sandbox"]["problems"]


def test_a_request_the_contract_refuses_fails_the_contract_check_naming_the_field(failing_report):
    item = interactions(failing_report[1])["a credit of a negative amount"]
    [problem] = item["contract"]["problems"]
    assert problem.startswith("request line_items[0].amount: ") and "(the contract answers it 400; the pact " \
        "expects 201)" in problem
    assert "status: expected 201 but was 400" in item["sandbox"]["problems"]


def test_an_unknown_provider_state_fails_its_interaction_listing_the_known_ones(failing_report):
    item = interactions(failing_report[1])["credits of a VIP"]
    problem = item["sandbox"]["problems"][0]
    assert problem.startswith("provider state 'a VIP customer exists': unknown provider state")
    for known in ("a business exists", "a customer credit exists", "the clock is frozen at", "--states FILE"):
        assert known in problem
    assert item["contract"]["result"] == "pass"


def pact_file(pact: dict) -> str:
    return Path(pact["file"]).read_text()


def test_a_v3_pact_with_state_params_and_a_query_map_passes(failing_report):
    [pact] = [p for p in failing_report[1]["pacts"] if p["consumer"] == "v3-consumer"]
    assert pact["specification"] == "V3"
    [item] = pact["interactions"]
    assert item["provider_states"][2] == {"name": "an invoice exists", "params": {
        "id": INVOICE, "customer_id": CUSTOMER, "total_amount": 100000, "outstanding_balance": 40000}}
    assert item["result"] == "pass", item
    assert json.loads(pact_file(pact))["interactions"][0]["request"]["query"] == {"status": ["PARTIALLY_PAID"]}


def test_a_v2_pact_is_read_and_replayed(failing_report):
    [pact] = [p for p in failing_report[1]["pacts"] if p["consumer"] == "old-consumer"]
    assert pact["specification"] == "V2"
    [item] = pact["interactions"]
    assert item["provider_states"] == [{"name": "a business exists", "params": {}}]
    assert item["result"] == item["contract"]["result"] == item["sandbox"]["result"] == "pass", item
    assert json.loads(pact_file(pact))["interactions"][0]["providerState"] == "a business exists"


# ------------------------------------------------------------------------------ files and states


def test_a_file_that_is_not_a_pact_exits_2_and_the_others_are_still_reported(passing_pact, sandbox, tmp_path):
    (tmp_path / "notes.json").write_text('{"hello": "world"}')
    (tmp_path / "broken.json").write_text("{nope")
    status, report, _ = verify(tmp_path / "notes.json", tmp_path / "broken.json", passing_pact, url=sandbox.base_url)
    assert status == 2
    reasons = {Path(u["file"]).name: u["reason"] for u in report["not_pacts"]}
    assert reasons["notes.json"] == "is not a pact: it names no consumer (consumer.name)"
    assert reasons["broken.json"].startswith("is not JSON")
    assert report["summary"]["passed"] == 7


def test_message_interactions_are_skipped(sandbox, tmp_path):
    http = pact_of("events")
    (http.upon_receiving("list customers").given("a business exists", id=BUSINESS)
     .with_request("GET", f"/v1/businesses/{BUSINESS}/customers").with_headers(AUTH).will_respond_with(200))
    path = written(http, tmp_path, [("GET", f"/v1/businesses/{BUSINESS}/customers", {"headers": AUTH})])
    messages = pact_of("events")
    messages.upon_receiving("a credit-applied event", "Async").with_body({"credit_id": CUSTOMER},
                                                                        content_type="application/json")
    messages.write_file(tmp_path)
    status, report, _ = verify(path, url=sandbox.base_url)
    assert status == 0
    found = interactions(report)
    assert found["a credit-applied event"]["result"] == "skip"
    assert found["list customers"]["result"] == "pass"
    assert report["summary"]["skipped"] == 1


def test_a_teams_own_states_come_from_a_recipe_file(sandbox, tmp_path):
    (tmp_path / "states.yaml").write_text(f"""
states:
  a customer with an open invoice:
    params: {{total: 50000}}
    steps:
      - state: a business exists
        params: {{id: "{BUSINESS}"}}
      - fixtures:
          customers: [{{id: "{{customer_id}}", company_name: Globex}}]
          invoices: [{{id: "{{invoice_id}}", customer_id: "{{customer_id}}", total_amount: "{{total}}",
                       invoice_number: "INV-{{invoice_id}}"}}]
""")
    pact = pact_of("recipes")
    (pact.upon_receiving("an open invoice")
     .given("a customer with an open invoice", customer_id=CUSTOMER, invoice_id=INVOICE)
     .with_request("GET", f"/v1/businesses/{BUSINESS}/invoices/{INVOICE}").with_headers(AUTH)
     .will_respond_with(200)
     .with_body({"data": {"total_amount": 50000, "invoice_number": f"INV-{INVOICE}",
                          "customer": {"company_name": "Globex"}}}, content_type="application/json"))
    path = written(pact, tmp_path, [("GET", f"/v1/businesses/{BUSINESS}/invoices/{INVOICE}", {"headers": AUTH})])
    status, report, stderr = verify(path, "--states", tmp_path / "states.yaml", url=sandbox.base_url)
    assert status == 0, json.dumps(report, indent=1) + stderr
    status, report, _ = verify(path, url=sandbox.base_url)   # without the file: an unknown state
    assert status == 1 and "unknown provider state" in interactions(report)["an open invoice"]["sandbox"]["problems"][0]


def test_a_states_file_that_is_not_recipes_is_a_usage_error(passing_pact, tmp_path):
    (tmp_path / "states.yaml").write_text("states: [a, b]\n")
    status, _, stderr = verify(passing_pact, "--states", tmp_path / "states.yaml")
    assert status == 2 and "Invalid value for --states" in stderr and "a top-level `states:` mapping" in stderr


def test_each_interaction_meets_a_fresh_namespace(sandbox, tmp_path):
    """The second interaction would find the first one's credit if the namespace were shared."""
    pact = pact_of("isolation")
    body = {"customer_id": CUSTOMER, "external_id": "only-once",
            "line_items": [{"amount": 100, "revenue_account_identifier": SALES}]}
    for n in (1, 2):
        (given_a_customer(pact.upon_receiving(f"create the credit, take {n}"))
         .with_request("POST", CREDITS).with_headers(AUTH).with_body(body, content_type="application/json")
         .will_respond_with(201))
    path = written(pact, tmp_path, [("POST", CREDITS, {"headers": AUTH, "json": body})] * 2)
    status, report, stderr = verify(path, url=sandbox.base_url)
    assert status == 0, json.dumps(report, indent=1) + stderr


# ------------------------------------------------------------------------------ no false alarms


def test_every_answer_the_sandbox_gives_is_an_expectation_the_contract_check_allows(sandbox):
    """Whatever Layer's contract lets the sandbox send, a consumer may expect, member for member:
    the contract check must not flag a real answer (lists, items, errors, tokens) of any route."""
    from layer_sandbox.pactcontract import PactContractCheck
    from layer_sandbox.pactfile import Interaction, Message
    from support import load_spec

    check = PactContractCheck(load_spec())
    namespace = {"X-Sandbox-Namespace": "pact-no-false-alarms", **AUTH}
    base = sandbox.base_url
    httpx.put(f"{base}/__sandbox/namespaces/pact-no-false-alarms", json={"scenario": "allocations"})
    business = httpx.get(f"{base}/__sandbox/businesses", headers=namespace).json()["data"][0]
    root = f"/v1/businesses/{business['id']}"
    credit = httpx.get(f"{base}{root}/invoices/customer-credits", headers=namespace).json()["data"][0]
    customer, invoice = business["customers"][0]["id"], business["invoices"][0]["id"]
    exchanges = [
        ("GET", f"{root}/invoices/customer-credits", None), ("GET", f"{root}/invoices/customer-credits/{credit['id']}", None),
        ("GET", f"{root}/customers", None), ("GET", f"{root}/customers/{customer}", None),
        ("GET", f"{root}/invoices", None), ("GET", f"{root}/invoices/{invoice}", None),
        ("GET", f"{root}/invoices/customer-credits?customer_id={customer}", None),
        ("POST", f"{root}/customers", {"external_id": "pact-1", "company_name": "Initech"}),
        ("POST", f"{root}/customers", {"external_id": "pact-1", "company_name": "Initech 2"}),
        ("PATCH", f"{root}/invoices/customer-credits/{credit['id']}", {"memo": "x"}),
        ("POST", f"{root}/auth-token", None), ("GET", "/whoami", None),
        ("GET", f"{root}/invoices/customer-credits?limit=0", None), ("GET", f"{root}/customers/{credit['id']}", None),
        ("DELETE", f"{root}/invoices/customer-credits/{credit['id']}", None),
    ]
    seen = set()
    for method, path, body in exchanges:
        answer = httpx.request(method, base + path, headers=namespace, json=body)
        seen.add(answer.status_code)
        bare, _, query = path.partition("?")
        interaction = Interaction(0, f"{method} {path}", (), "http",
                                  Message(method=method, path=bare, query=tuple(
                                      tuple(p.split("=", 1)) for p in query.split("&") if p), headers=tuple(AUTH.items()),
                                          body=body if body is not None else Message().body),
                                  Message(status=answer.status_code, headers=(("Content-Type", "application/json"),),
                                          body=answer.json() if answer.content else Message().body))
        findings, _ = check.check(interaction)
        assert findings == [], (method, path, answer.status_code, [str(f) for f in findings])
    assert {200, 201, 204, 400, 404} <= seen or {200, 201, 400, 404} <= seen


# ------------------------------------------------------------------------------ malformed input


def _v4(interaction: dict) -> dict:
    return {"consumer": {"name": "odd"}, "provider": {"name": "layer"}, "interactions": [interaction],
            "metadata": {"pactSpecification": {"version": "4.0"}}}


GOOD = {"type": "Synchronous/HTTP", "description": "list customers",
        "providerStates": [{"name": "a business exists", "params": {"id": BUSINESS}}],
        "request": {"method": "GET", "path": f"/v1/businesses/{BUSINESS}/customers",
                    "headers": {"Authorization": ["Bearer t"]}},
        "response": {"status": 200}}


@pytest.mark.parametrize("change, reason", [
    ({"providerStates": [{"name": "a business exists", "params": "abc"}]}, "is not a name with a mapping of params"),
    ({"response": {"status": "200"}}, "status '200' is not an HTTP status"),
    ({"response": {"status": 200, "body": {"content": "e30", "contentType": "application/json", "encoded": "base64"}}},
     "a body encoded as 'base64' cannot be decoded"),
    ({"response": {"status": 200, "body": {"content": "{nope", "contentType": "application/json", "encoded": "json"}}},
     "a body encoded as 'json' cannot be decoded"),
], ids=["params-not-a-mapping", "status-as-text", "bad-base64", "bad-json"])
def test_a_malformed_pact_is_not_a_pact_exit_2_with_the_reason(sandbox, tmp_path, change, reason):
    (tmp_path / "odd.json").write_text(json.dumps(_v4({**GOOD, **change})))
    status, report, stderr = verify(tmp_path / "odd.json", url=sandbox.base_url)
    assert status == 2, stderr
    assert reason in report["not_pacts"][0]["reason"] and "Traceback" not in stderr


def test_values_are_held_to_the_contracts_formats_and_a_base64_json_body_is_json(sandbox, tmp_path):
    import base64

    body = {"data": [{"id": "not-a-uuid", "email": "nobody"}]}
    wrong = {**GOOD, "response": {"status": 200, "body": {"content": body, "contentType": "application/json"}}}
    fine = {**GOOD, "description": "encoded", "response": {"status": 200, "body": {
        "content": base64.b64encode(json.dumps({"data": []}).encode()).decode(), "contentType": "application/json",
        "encoded": "base64"}}}
    document = _v4(wrong)
    document["interactions"].append(fine)
    (tmp_path / "formats.json").write_text(json.dumps(document))
    status, report, _ = verify(tmp_path / "formats.json", url=sandbox.base_url)
    found = interactions(report)
    assert found["list customers"]["contract"]["problems"][0] == "$.data[0].id: 'not-a-uuid' is not a 'uuid'"
    assert found["encoded"]["contract"]["result"] == "pass"


def test_the_shells_sandbox_settings_never_reach_the_sandbox_started_for_the_run(passing_pact, tmp_path):
    """A LAYER_SANDBOX_TOKEN or LAYER_SANDBOX_ADMIN_TOKEN exported for another sandbox would refuse
    the pact's requests and the states' control calls."""
    command = [SCRIPT, "verify-pact", str(passing_pact), "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, env={
        **os.environ, "LAYER_SANDBOX_TOKEN": "only-this", "LAYER_SANDBOX_ADMIN_TOKEN": "admin"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    done = subprocess.run(command + ["--junit-xml", str(tmp_path / "no" / "such" / "r.xml")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "Invalid value for --junit-xml" in done.stderr and "is not a directory" in done.stderr


def test_a_pact_that_pacts_own_verifier_refuses_is_not_a_pact_with_pacts_reason(sandbox, tmp_path):
    refused = {**GOOD, "response": {"status": 200, "matchingRules": {"body": {
        "$['it's']": {"combine": "AND", "matchers": [{"match": "type"}]}}}}}
    (tmp_path / "refused.json").write_text(json.dumps(_v4(refused)))
    status, report, stderr = verify(tmp_path / "refused.json", url=sandbox.base_url)
    assert status == 2, stderr
    [unreadable] = report["not_pacts"]
    assert unreadable["reason"].startswith("Pact's verifier refused it: ") and "it's" in unreadable["reason"]
