"""The pytest plugin's pact file (`--layer-sandbox-pact-dir`): consumer suites run with pytester
as a consumer's CI runs them (each its own pytest process, its own sandbox), the pact they write
read back, and replayed by `layer-sandbox verify-pact`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import report

pytest_plugins = ["pytester"]

# As in test_pytest_plugin.py: the plugins of this project's own test environment are not a
# consumer's, and slow every consumer process down.
QUIET = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio",
         "-p", "no:Faker")
CONSUMER = (*QUIET, "-p", "no:xdist")
SCRIPT = str(Path(sys.executable).with_name("layer-sandbox"))
SEEDED_BUSINESS = "cd613e30-d8f1-4adf-91b7-584a2265b1f5"  # the first business of seed 1
ACME = "11111111-1111-4111-8111-111111111111"
INVOICE = "22222222-2222-4222-8222-222222222222"
UNKNOWN = "33333333-3333-4333-8333-333333333333"
FROZEN = "2026-01-15T10:00:00Z"
TYPE = {"combine": "AND", "matchers": [{"match": "type"}]}

BILLING = f'''
import httpx
import pytest

H = {{"Authorization": "Bearer consumer-token"}}
ACME, INVOICE, UNKNOWN = "{ACME}", "{INVOICE}", "{UNKNOWN}"
SALES = {{"type": "StableName", "stable_name": "SALES"}}


@pytest.fixture
def billing(layer_sandbox):
    layer_sandbox.freeze_clock("{FROZEN}")
    added = layer_sandbox.add_fixtures(
        customers=[{{"id": ACME, "company_name": "Acme Corp", "external_id": "acme"}}],
        invoices=[{{"id": INVOICE, "customer_id": ACME, "total_amount": 100000, "invoice_number": "A-1"}}])
    return f"{{layer_sandbox.base_url}}/v1/businesses/{{added['business_id']}}"


def test_a_credit_pays_the_invoice_down(billing):
    assert httpx.get(f"{{billing}}/invoices", params={{"limit": 3, "customer_id": ACME}}, headers=H).status_code == 200
    credit = httpx.post(f"{{billing}}/invoices/customer-credits", headers=H, json={{
        "customer_id": ACME, "memo": "Goodwill", "allocations": [{{"invoice_id": INVOICE, "amount": 25000}}],
        "line_items": [{{"amount": 25000, "revenue_account_identifier": SALES}}]}})
    assert credit.status_code == 201
    invoice = httpx.get(f"{{billing}}/invoices/{{INVOICE}}", headers=H).json()["data"]
    assert (invoice["outstanding_balance"], invoice["status"]) == (75000, "PARTIALLY_PAID")


def test_an_unknown_credit_is_a_404(billing):
    assert httpx.get(f"{{billing}}/invoices/customer-credits/{{UNKNOWN}}", headers=H).status_code == 404


@pytest.mark.layer_sandbox(seed=7, scenario="empty")
def test_a_reset_starts_the_states_again(layer_sandbox):
    layer_sandbox.freeze_clock("{FROZEN}")
    business = layer_sandbox.businesses()[0]
    credits = f"{{layer_sandbox.base_url}}/v1/businesses/{{business['id']}}/invoices/customer-credits"
    body = {{"customer_id": business["customers"][0]["id"],
             "line_items": [{{"amount": 100, "revenue_account_identifier": SALES}}]}}
    first = httpx.post(credits, headers=H, json=body).json()["data"]["id"]
    assert httpx.delete(f"{{credits}}/{{first}}", headers=H).status_code == 200
    layer_sandbox.reset(seed=7, scenario="empty")
    again = httpx.post(credits, headers=H, json=body).json()["data"]["id"]
    assert again == first  # the same seed and the same calls: the same id
    assert httpx.get(f"{{credits}}/{{again}}", headers=H).status_code == 200


@pytest.mark.layer_sandbox(pact=False)
def test_left_out_on_request(billing):
    assert httpx.get(f"{{billing}}/customers", headers=H).status_code == 200


def test_a_failing_test_is_no_contract(billing):
    assert httpx.get(f"{{billing}}/customers/{{ACME}}", headers=H).status_code == 200
    assert False, "this test fails"
'''


def _run_billing(pytester, folder: Path, *options: str, plugins=CONSUMER) -> Path:
    """The billing suite run once; its pact file."""
    pytester.makepyfile(test_billing=BILLING)
    # `--option=VALUE`: a path given apart would count for pytest's rootdir, and so for node ids.
    result = pytester.runpytest_subprocess(*plugins, f"--layer-sandbox-pact-dir={folder}",
                                           "--layer-sandbox-pact-consumer", "billing-web", *options)
    result.assert_outcomes(passed=4, failed=1)
    return folder / "billing-web-layer.json"


def verify_pact(path: Path) -> dict:
    """`layer-sandbox verify-pact` on the file: its JSON report, once it exited 0."""
    done = subprocess.run([SCRIPT, "verify-pact", str(path), "--format", "json"], capture_output=True, text=True,
                          timeout=300)
    result = json.loads(done.stdout) if done.stdout.strip() else {}
    failed = [(i["description"], i["sandbox"]["problems"], i["contract"]["problems"])
              for p in result.get("pacts", []) for i in p["interactions"] if i["result"] != "pass"]
    assert done.returncode == 0, (failed, done.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def billing_pact(tmp_path_factory) -> tuple[Path, dict]:
    """The billing suite's pact, written once for the tests that read it (pytester is per test)."""
    project = tmp_path_factory.mktemp("billing")
    (project / "test_billing.py").write_text(BILLING)
    folder = project / "pacts"
    done = subprocess.run([sys.executable, "-m", "pytest", *CONSUMER, f"--layer-sandbox-pact-dir={folder}",
                           "--layer-sandbox-pact-consumer", "billing-web"], cwd=project, capture_output=True,
                          text=True, timeout=300)
    assert "1 failed, 4 passed" in done.stdout, done.stdout[-3000:]
    path = folder / "billing-web-layer.json"
    return path, json.loads(path.read_text())


def by_description(pact: dict) -> dict[str, dict]:
    return {i["description"]: i for i in pact["interactions"]}


def states(interaction: dict) -> list[tuple[str, dict]]:
    return [(s["name"], s["params"]) for s in interaction["providerStates"]]


def test_each_exchange_of_a_passing_test_is_an_interaction(billing_pact):
    path, pact = billing_pact
    assert (pact["consumer"], pact["provider"]) == ({"name": "billing-web"}, {"name": "layer"})
    assert pact["metadata"]["pactSpecification"] == {"version": "4.0"}
    assert pact["metadata"]["layerSandbox"]["version"]
    business = f"/v1/businesses/{SEEDED_BUSINESS}"
    empty = re.search(r"/v1/businesses/([0-9a-f-]{36})/", next(
        i["description"] for i in pact["interactions"] if "reset" in i["description"])).group(1)
    credits = f"/v1/businesses/{empty}/invoices/customer-credits"
    credit = re.search(r"customer-credits/([0-9a-f-]{36})$", next(
        i["description"] for i in pact["interactions"] if "reset_starts_the_states_again #2" in i["description"])).group(1)
    # Sorted by description, numbers as numbers; the pact=False test and the failing one left out.
    assert [i["description"] for i in pact["interactions"]] == [
        f"test_billing.py::test_a_credit_pays_the_invoice_down #1: GET {business}/invoices",
        f"test_billing.py::test_a_credit_pays_the_invoice_down #2: POST {business}/invoices/customer-credits",
        f"test_billing.py::test_a_credit_pays_the_invoice_down #3: GET {business}/invoices/{INVOICE}",
        f"test_billing.py::test_a_reset_starts_the_states_again #1: POST {credits}",
        f"test_billing.py::test_a_reset_starts_the_states_again #2: DELETE {credits}/{credit}",
        f"test_billing.py::test_a_reset_starts_the_states_again #3: POST {credits}",
        f"test_billing.py::test_a_reset_starts_the_states_again #4: GET {credits}/{credit}",
        f"test_billing.py::test_an_unknown_credit_is_a_404 #1: GET {business}/invoices/customer-credits/{UNKNOWN}",
    ]
    text = path.read_text()
    assert text == json.dumps(pact, indent=2, sort_keys=True) + "\n"
    assert "consumer-token" not in text  # the journal never holds the token; the pact sends its own
    listing, create, fetch = (by_description(pact)[f"test_billing.py::test_a_credit_pays_the_invoice_down #{n}: {what}"]
                              for n, what in ((1, f"GET {business}/invoices"),
                                              (2, f"POST {business}/invoices/customer-credits"),
                                              (3, f"GET {business}/invoices/{INVOICE}")))
    assert listing["type"] == "Synchronous/HTTP" and listing["comments"] == {
        "testname": "test_billing.py::test_a_credit_pays_the_invoice_down"}
    assert listing["request"] == {
        "method": "GET", "path": f"{business}/invoices", "query": {"customer_id": [ACME], "limit": ["3"]},
        "headers": {"Authorization": ["Bearer layer-sandbox-token"]},
        "matchingRules": {"header": {"Authorization": {
            "combine": "AND", "matchers": [{"match": "regex", "regex": "^Bearer .+$"}]}}}}
    assert create["request"]["headers"]["Content-Type"] == ["application/json"]
    assert create["request"]["body"]["content"]["allocations"] == [{"invoice_id": INVOICE, "amount": 25000}]
    assert create["response"]["status"] == 201 and create["response"]["headers"] == {"Content-Type": ["application/json"]}
    assert fetch["response"]["body"]["content"]["data"]["outstanding_balance"] == 75000


def test_the_states_rebuild_the_namespace_before_each_exchange(billing_pact):
    _, pact = billing_pact
    given = [("the sandbox is seeded", {"scenario": "default", "seed": 1}),
             ("the clock is frozen at", {"time": FROZEN}),
             ("a customer exists", {"id": ACME, "company_name": "Acme Corp", "external_id": "acme",
                                    "business_id": SEEDED_BUSINESS}),
             ("an invoice exists", {"id": INVOICE, "customer_id": ACME, "total_amount": 100000,
                                    "invoice_number": "A-1", "business_id": SEEDED_BUSINESS})]
    listing, create, fetch = [i for i in pact["interactions"] if "pays_the_invoice_down" in i["description"]]
    assert states(listing) == states(create) == given
    [made] = states(fetch)[len(given):]  # the credit the test wrote before it fetched the invoice
    assert made[0] == "a request was made"
    assert made[1] == {"method": "POST", "path": create["request"]["path"],
                       "body": create["request"]["body"]["content"]}

    first, delete, again, get = [i for i in pact["interactions"] if "reset_starts" in i["description"]]
    seeded = [("the sandbox is seeded", {"scenario": "empty", "seed": 7}), ("the clock is frozen at", {"time": FROZEN})]
    assert states(first) == seeded
    assert [name for name, _ in states(delete)] == [name for name, _ in seeded] + ["a request was made"]
    # After the handle's reset, the states start again from the seed; a reset keeps the frozen clock.
    assert states(again) == seeded
    assert states(get) == seeded + [("a request was made", {
        "method": "POST", "path": again["request"]["path"], "body": again["request"]["body"]["content"]})]


def test_ids_timestamps_and_cursors_are_matched_by_type_the_rest_literally(billing_pact):
    _, pact = billing_pact
    interactions = [i for i in pact["interactions"] if "pays_the_invoice_down" in i["description"]]
    listing, create, fetch = (i["response"]["matchingRules"]["body"] for i in interactions)
    assert set(listing) >= {"$.data[*].id", "$.data[*].customer.id", "$.data[*].sent_at", "$.data[*].due_at",
                            "$.data[*].line_items[*].id"}
    assert set(create) >= {"$.data.id", "$.data.created_at", "$.data.updated_at", "$.data.customer.id",
                           "$.data.allocations[*].id", "$.data.allocations[*].invoice_id", "$.data.line_items[*].id"}
    assert set(fetch) >= {"$.data.id", "$.data.customer.id", "$.data.updated_at"}
    for rules in (listing, create, fetch):
        assert all(rule == TYPE for rule in rules.values())
        assert not any(path.endswith(("amount", "balance", "memo", "status", "external_id")) for path in rules), rules
    # The caller's own values stay literal: a contract on what comes back.
    assert interactions[1]["response"]["body"]["content"]["data"]["memo"] == "Goodwill"
    [unknown] = [i for i in pact["interactions"] if "404" in i["description"]]
    assert unknown["response"]["status"] == 404
    assert unknown["response"]["body"]["content"]["errors"][0]["type"] == "NotFound"


def test_the_written_pact_passes_verify_pact(billing_pact):
    path, pact = billing_pact
    started = time.perf_counter()
    result = verify_pact(path)
    assert result["summary"]["passed"] == len(pact["interactions"]) == 8
    report(f"pact writer: verify-pact replayed the billing suite's {len(pact['interactions'])} interactions "
           f"in {time.perf_counter() - started:.1f} s")


def test_two_runs_and_two_workers_write_the_same_bytes(pytester, billing_pact, tmp_path):
    """The clock frozen, a run writes the bytes the last run wrote: the file is replaced, never
    added to, and two xdist workers merge their tests into the same file as one process."""
    first, _ = billing_pact
    stale = tmp_path / "pacts" / "billing-web-layer.json"
    stale.parent.mkdir()
    stale.write_text(json.dumps({"consumer": {"name": "billing-web"}, "provider": {"name": "layer"},
                                 "interactions": [{"description": "a stale interaction"}]}))
    again = _run_billing(pytester, stale.parent)
    assert again.read_bytes() == first.read_bytes()
    started = time.perf_counter()
    merged = _run_billing(pytester, tmp_path / "xdist", "-n", "2", plugins=QUIET)
    report(f"pact writer: the billing suite on two xdist workers, pact merged, in "
           f"{time.perf_counter() - started:.1f} s")
    assert merged.read_bytes() == first.read_bytes()
    assert sorted(p.name for p in merged.parent.iterdir()) == [".billing-web-layer.json.lock", "billing-web-layer.json"]


def test_what_is_no_contract_of_layers_is_left_out(pytester, monkeypatch):
    """Forced answers, token routes, requests that broke the contract and refusals of the
    sandbox's own stay out; a write answered after a forced delay is still a state; an exchange
    whose bodies the journal cut is left out with a warning naming the test. Options by variable."""
    pytester.makepyfile(test_edges=f'''
        import base64

        import httpx
        import pytest

        H = {{"Authorization": "Bearer t"}}
        SALES = {{"type": "StableName", "stable_name": "SALES"}}


        def credits_of(handle):
            business = handle.businesses()[0]
            return business, f"{{handle.base_url}}/v1/businesses/{{business['id']}}/invoices/customer-credits"


        @pytest.mark.layer_sandbox(allow_violations=True)
        def test_forced_and_refused(layer_sandbox):
            business, credits = credits_of(layer_sandbox)
            assert httpx.get(credits, headers={{**H, "Prefer": "code=404"}}).status_code == 404
            layer_sandbox.add_rule(method="GET", path="/v1/*", code=500, count=1)
            assert httpx.get(credits, headers=H).status_code == 500
            assert httpx.get(credits, params={{"limit": 0}}, headers=H).status_code == 400
            made = httpx.post(credits, headers={{**H, "Prefer": "delay=1"}}, json={{
                "customer_id": business["customers"][0]["id"],
                "line_items": [{{"amount": 100, "revenue_account_identifier": SALES}}]}})
            assert made.status_code == 201
            assert httpx.get(f"{{credits}}/{{made.json()['data']['id']}}", headers=H).status_code == 200


        def test_tokens(layer_sandbox):
            basic = base64.b64encode(b"backend:secret").decode()
            token = httpx.post(f"{{layer_sandbox.base_url}}/oauth2/token", data={{"grant_type": "client_credentials"}},
                               headers={{"Authorization": f"Basic {{basic}}"}}).json()["access_token"]
            who = httpx.get(f"{{layer_sandbox.base_url}}/whoami", headers={{"Authorization": f"Bearer {{token}}"}})
            assert who.json()["data"]["clientName"] == "backend"


        NEW = "44444444-4444-4444-8444-444444444444"


        def test_a_business_of_its_own(layer_sandbox):
            layer_sandbox.add_fixtures(business_id=NEW, business_name="Fresh Co")
            base = f"{{layer_sandbox.base_url}}/v1/businesses/{{NEW}}"
            assert httpx.get(f"{{base}}/customers", headers=H).json()["data"] == []
            added = layer_sandbox.add_fixtures(business_id=NEW, customers=[{{"company_name": "Nobody"}}], ledger_accounts=[
                {{"stable_name": "SALES", "name": "Sales", "normality": "CREDIT", "account_type": "REVENUE",
                  "account_subtype": "SALES"}}])
            made = httpx.post(f"{{base}}/invoices/customer-credits", headers=H, json={{
                "customer_id": added["customers"][0], "line_items": [{{"amount": 5, "revenue_account_identifier": SALES}}]}})
            assert made.status_code == 201


        @pytest.mark.layer_sandbox(scenario="paging")
        def test_a_page_too_large_for_the_journal(layer_sandbox):
            business, credits = credits_of(layer_sandbox)
            assert httpx.get(credits, params={{"limit": 50}}, headers=H).status_code == 200
            assert httpx.get(credits, params={{"limit": 2}}, headers=H).status_code == 200
    ''')
    monkeypatch.setenv("LAYER_SANDBOX_PACT_DIR", str(pytester.path / "out"))
    result = pytester.runpytest_subprocess(*CONSUMER)
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*PytestWarning: layer-sandbox: test_edges.py::test_a_page_too_large_for_the_journal: "
                                 "GET /v1/businesses/*/invoices/customer-credits left out of the pact: the journal no "
                                 "longer holds its whole bodies*"])
    path = pytester.path / "out" / f"{pytester.path.name}-layer.json"  # the rootdir's folder names the consumer
    pact = json.loads(path.read_text())
    described = [re.sub(r"/v1/businesses/[^ ]*", "...", i["description"]) for i in pact["interactions"]]
    assert described == ["test_edges.py::test_a_business_of_its_own #1: GET ...",
                         "test_edges.py::test_a_business_of_its_own #2: POST ...",
                         "test_edges.py::test_a_page_too_large_for_the_journal #1: GET ...",
                         "test_edges.py::test_forced_and_refused #1: GET ...",
                         "test_edges.py::test_tokens #1: GET /whoami"]
    empty, credit, small_page, fetched, whoami = pact["interactions"]
    new = "44444444-4444-4444-8444-444444444444"
    assert states(empty)[1:] == [("a business exists", {"id": new, "name": "Fresh Co"})]
    # The records make the business themselves, as empty as the test made it (a verifier may give
    # a business of `a business exists` a chart of accounts, whose ids would be drawn first).
    assert [(name, params["business_id"]) for name, params in states(credit)[1:]] == [
        ("a ledger account exists", new), ("a customer exists", new)]
    assert small_page["request"]["query"] == {"limit": ["2"]}
    assert [name for name, _ in states(fetched)] == ["the sandbox is seeded", "a request was made"]
    assert set(whoami["response"]["matchingRules"]["body"]) == {"$.data.clientId", "$.data.clientName"}
    verify_pact(path)


def test_matcher_paths_in_pact_v4_syntax():
    """`[*]` for the items of a list, brackets for a key that is no identifier; none under a key
    with a quote, which Pact's path syntax cannot name (its verifier refuses the whole file)."""
    from layer_sandbox.pactwriter import body_rules

    body = [{"id": "x", "odd key": {"made_at": "2026-01-01T00:00:00Z"}, "it's": "5a4b1f0e-0000-4000-8000-00000000000b",
             "external_id": "mine", "cursor": None, "amount": 5}]
    assert list(body_rules(body)) == ["$[*].id", "$[*]['odd key'].made_at"]
