"""The pytest plugin, exercised with pytester on consumer test suites (each a pytest process of
its own, as a consumer's CI runs it)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys

import pytest

from support import ROOT, SandboxProcess

pytest_plugins = ["pytester"]

EXAMPLE = ROOT / "docs" / "consumer_example"
# Each consumer suite runs as a pytest process of its own. The plugins this project's own test
# environment holds (schemathesis, hypothesis, anyio, Faker's) are not a consumer's, and take
# ~3 s to load in every such process: they are left out.
CONSUMER = ("-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio",
            "-p", "no:Faker", "-p", "no:xdist")


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A sandbox started apart from the consumer's suite, as a CI service container would be."""
    server = SandboxProcess(tmp_path_factory.mktemp("running"), "--seed", "3")
    yield server
    server.stop()


# A consumer project the way real ones look: its own package named `sandbox`, warnings as errors.
CONSUMER_PROJECT = {
    "sandbox/__init__.py": "KIND = 'a consumer package named sandbox'\n",
    "pyproject.toml": "[tool.pytest.ini_options]\nfilterwarnings = ['error']\n",
    "test_consumer.py": """
import sys
import threading

import httpx
import pytest

import sandbox


def test_its_own_sandbox_package_is_the_one_imported():
    assert sandbox.KIND == "a consumer package named sandbox"


def test_a_test_that_never_uses_the_plugin():
    assert 1 + 1 == 2


def test_the_server_lives_elsewhere(layer_sandbox):
    business = layer_sandbox.businesses()[0]["id"]
    path = f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits"
    assert httpx.get(path, headers={"Authorization": "Bearer t"}).status_code == 200
    ours = {name for name in sys.modules if name.split(".")[0] == "layer_sandbox"}
    assert ours <= {"layer_sandbox", "layer_sandbox.pytest_plugin", "layer_sandbox.testing"}, ours
    assert threading.active_count() == 1, threading.enumerate()


@pytest.mark.parametrize("n", range(3))
def test_every_test_has_a_fresh_namespace(layer_sandbox, n):
    business = layer_sandbox.businesses()[0]["id"]
    path = f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits"
    first = httpx.get(path, headers={"Authorization": "Bearer t"}).json()["data"][0]["id"]
    assert httpx.delete(f"{path}/{first}", headers={"Authorization": "Bearer t"}).status_code == 200
    assert httpx.get(path, headers={"Authorization": "Bearer t"}).json()["data"][0]["id"] != first
""",
}


def _consumer_project(pytester) -> None:
    for name, text in CONSUMER_PROJECT.items():
        target = pytester.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def test_the_plugin_imports_nothing_but_the_standard_library_and_pytest():
    """What a consumer's test process loads of ours: no server packages, no warnings."""
    code = ("import sys, pytest; before = set(sys.modules); import layer_sandbox.pytest_plugin, layer_sandbox.testing; "
            "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}))")
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded = set(ast.literal_eval(result.stdout)) - {"layer_sandbox"}
    assert loaded <= set(sys.stdlib_module_names) | {"_" + name for name in sys.stdlib_module_names}, loaded


def test_a_consumer_with_its_own_sandbox_package_and_warnings_as_errors_passes(pytester):
    _consumer_project(pytester)
    result = pytester.runpytest_subprocess(*CONSUMER, "-W", "error")
    result.assert_outcomes(passed=6)
    assert "Error while loading plugin" not in result.stdout.str() + result.stderr.str()


def test_the_same_consumer_against_a_running_sandbox_by_flag_and_by_variable(pytester, running, monkeypatch):
    _consumer_project(pytester)
    result = pytester.runpytest_subprocess(*CONSUMER, "--layer-sandbox-url", running.base_url)
    result.assert_outcomes(passed=6)
    monkeypatch.setenv("LAYER_SANDBOX_URL", running.base_url)
    result = pytester.runpytest_subprocess(*CONSUMER)
    result.assert_outcomes(passed=6)
    # Every test's namespace is gone afterwards; the running sandbox keeps only its default one.
    import httpx

    names = [n["namespace"] for n in httpx.get(f"{running.base_url}/__sandbox/namespaces").json()["data"]]
    assert names == ["default"], names


def test_a_running_sandbox_seeds_with_its_own_seed_unless_the_suite_asks(pytester, running):
    pytester.makepyfile(test_consumer="""
        import pytest

        def test_own_seed(layer_sandbox):
            assert layer_sandbox.state()["seed"] == 3

        @pytest.mark.layer_sandbox(seed=9, scenario="empty")
        def test_marker(layer_sandbox):
            state = layer_sandbox.state()
            assert (state["seed"], state["scenario"]) == (9, "empty")
    """)
    result = pytester.runpytest_subprocess(*CONSUMER, "--layer-sandbox-url", running.base_url)
    result.assert_outcomes(passed=2)
    result = pytester.runpytest_subprocess(*CONSUMER, "--layer-sandbox-url", running.base_url,
                                           "--layer-sandbox-seed", "5")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*assert 5 == 3*"])


def test_an_unreachable_sandbox_is_one_clear_line(pytester):
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        pytester.makepyfile(test_consumer="""
            def test_uses_it(layer_sandbox):
                pass
        """)
        result = pytester.runpytest_subprocess(*CONSUMER, "--layer-sandbox-url", url, "--layer-sandbox-timeout", "1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*layer-sandbox: no layer-sandbox answers at {url}*"])
    assert "Traceback" not in result.stdout.str()


def test_the_token_option_makes_the_started_sandbox_strict(pytester):
    pytester.makepyfile(test_consumer="""
        import httpx

        def test_right_token(layer_sandbox):
            business = layer_sandbox.businesses()[0]["id"]
            path = f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits"
            assert httpx.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200

        def test_wrong_token(layer_sandbox):
            business = layer_sandbox.businesses()[0]["id"]
            path = f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits"
            assert httpx.get(path, headers={"Authorization": "Bearer other"}).status_code == 401
    """)
    result = pytester.runpytest_subprocess(*CONSUMER, "--layer-sandbox-token", "s3cret")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_wrong_token*", "*ContractViolation: 1 request(s) broke*"])
    assert "s3cret" not in result.stdout.str().split("short test summary")[0].split("test_wrong_token")[-1]


def test_assert_requests_matches_part_of_the_json_body_sent(pytester):
    pytester.makepyfile(test_consumer="""
        import httpx
        import pytest

        def test_bodies(layer_sandbox):
            business = layer_sandbox.businesses()[0]
            path = f"{layer_sandbox.base_url}/v1/businesses/{business['id']}/invoices/customer-credits"
            body = {"customer_id": business["customers"][0]["id"], "memo": "Goodwill", "external_id": "x-1",
                    "line_items": [{"amount": 1500, "revenue_account_identifier":
                                    {"type": "StableName", "stable_name": "RETURNS_ALLOWANCES"}}]}
            assert httpx.post(path, json=body, headers={"Authorization": "Bearer t"}).status_code == 201
            layer_sandbox.assert_requests("POST", "*/customer-credits", count=1, json={"memo": "Goodwill"})
            layer_sandbox.assert_requests("POST", json={"line_items": [{"amount": 1500}]})
            [entry] = layer_sandbox.requests(method="POST")
            assert entry["response_body"]["data"]["memo"] == "Goodwill"
            with pytest.raises(AssertionError, match="with a body holding .*Other.*requests made:\\n  POST"):
                layer_sandbox.assert_requests("POST", json={"memo": "Other"})
            with pytest.raises(AssertionError):
                layer_sandbox.assert_requests("POST", json={"line_items": []})
    """)
    result = pytester.runpytest_subprocess(*CONSUMER)
    result.assert_outcomes(passed=1)


def test_the_documented_consumer_example_passes(pytester):
    for name in ("refunds.py", "test_refunds.py"):
        shutil.copy(EXAMPLE / name, pytester.path / name)
    result = pytester.runpytest_subprocess(*CONSUMER)
    result.assert_outcomes(passed=3)


def test_a_request_that_breaks_the_contract_fails_the_test_with_a_report(pytester):
    pytester.makepyfile(test_consumer="""
        import httpx

        def test_bad_limit(layer_sandbox):
            business = layer_sandbox.businesses()[0]["id"]
            httpx.get(f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits",
                      params={"limit": 0}, headers={"Authorization": "Bearer t"})

        def test_bad_body(layer_sandbox):
            business = layer_sandbox.businesses()[0]["id"]
            httpx.post(f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits",
                       json={"customerId": "x", "line_items": []}, headers={"Authorization": "Bearer t"})

        def test_wrong_route(layer_sandbox):
            httpx.get(f"{layer_sandbox.base_url}/v1/businesses/123/customer-credits", headers={"Authorization": "Bearer t"})

        def test_no_token(layer_sandbox):
            business = layer_sandbox.businesses()[0]["id"]
            httpx.get(f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits")
    """)
    result = pytester.runpytest_subprocess(*CONSUMER)
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines([
        "*_ test_bad_limit _*",
        "ContractViolation: 1 request(s) broke Layer's contract (openapi.yaml):",
        "- GET /v1/businesses/*/invoices/customer-credits?limit=0 -> 400",
        "    operation: business.invoices.customer-credits.get",
        "    field: limit",
        "*0 is less than the minimum of 1*",
    ])
    # The report is the failure: no traceback through pytest's or the plugin's own code.
    output = result.stdout.str().split("= FAILURES =")[1]
    for internal in ("pluggy", "_callers.py", "force_exception", "hookwrapper", "pytest_plugin.py"):
        assert internal not in output, internal
    result.stdout.fnmatch_lines(["FAILED *test_bad_limit - ContractViolation*"])
    result.stdout.fnmatch_lines(["*field: customerId*", "*problem: *customerId*line_items*"])
    result.stdout.fnmatch_lines(["*operation: (none: no such route)*"])
    result.stdout.fnmatch_lines(["*Missing Authorization header*"])


def test_allowed_violations_seed_scenario_and_isolation(pytester):
    pytester.makepyfile(test_consumer="""
        import httpx
        import pytest

        H = {"Authorization": "Bearer t"}

        @pytest.mark.layer_sandbox(allow_violations=True)
        def test_negative_case(layer_sandbox):
            business = layer_sandbox.businesses()[0]["id"]
            r = httpx.get(f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits",
                          params={"limit": 0}, headers=H)
            assert r.status_code == 400

        @pytest.mark.layer_sandbox(scenario="paging", seed=5)
        def test_marker_scenario(layer_sandbox):
            assert layer_sandbox.businesses()[0]["customer_credits"] >= 1000

        def test_writes_stay_in_their_namespace_one(layer_sandbox):
            business = layer_sandbox.businesses()[0]
            path = f"{layer_sandbox.base_url}/v1/businesses/{business['id']}/invoices/customer-credits"
            credit = httpx.get(path, headers=H).json()["data"][0]
            assert httpx.delete(f"{path}/{credit['id']}", headers=H).status_code == 200
            pytest.deleted = credit["id"]

        def test_writes_stay_in_their_namespace_two(layer_sandbox):
            business = layer_sandbox.businesses()[0]
            path = f"{layer_sandbox.base_url}/v1/businesses/{business['id']}/invoices/customer-credits"
            assert httpx.get(f"{path}/{pytest.deleted}", headers=H).status_code == 200

        def test_verify_reports_what_was_made(layer_sandbox):
            business = layer_sandbox.businesses()[0]["id"]
            httpx.get(f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits", headers=H)
            with pytest.raises(AssertionError, match="expected exactly 1 DELETE request to .*found 0"):
                layer_sandbox.assert_requests("DELETE", "*/customer-credits/*", count=1)
            layer_sandbox.assert_requests("GET", count=1, status=200)
    """)
    result = pytester.runpytest_subprocess(*CONSUMER, "--layer-sandbox-seed", "3")
    result.assert_outcomes(passed=5)


def test_namespaces_are_dropped_after_each_test_and_paths_match_whole(pytester):
    pytester.makepyfile(test_consumer="""
        import httpx
        import pytest

        H = {"Authorization": "Bearer t"}

        @pytest.mark.parametrize("n", range(30))
        def test_many(layer_sandbox, n):
            namespaces = layer_sandbox.control.get("/namespaces").json()["data"]
            assert len(namespaces) <= 3, namespaces   # default, this test's, and at most one leftover

        def test_whole_paths(layer_sandbox):
            business = layer_sandbox.businesses()[0]["id"]
            base = f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits"
            credit = httpx.get(base, headers=H).json()["data"][0]["id"]
            httpx.get(f"{base}/{credit}", headers=H)
            path = f"/v1/businesses/{business}/invoices/customer-credits"
            layer_sandbox.assert_requests("GET", path, count=1)
            layer_sandbox.assert_requests("GET", path + "*", count=2)

        def test_failure_and_violation(layer_sandbox):
            business = layer_sandbox.businesses()[0]["id"]
            httpx.get(f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits",
                      params={"limit": 0}, headers=H)
            assert False, "the test's own failure"
    """)
    result = pytester.runpytest_subprocess(*CONSUMER, "-rA")
    result.assert_outcomes(passed=31, failed=1)
    result.stdout.fnmatch_lines(["*the test's own failure*", "*layer-sandbox contract violations*", "*field: limit*"])


def test_the_plugin_alone_in_a_test_environment_without_the_servers_packages(tmp_path, running):
    """`pip install --no-deps layer-sandbox` beside pytest alone: a consumer whose own versions
    clash with the sandbox's runs the sandbox elsewhere and its suite here."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["pytest"], check=True, timeout=300, capture_output=True)
    subprocess.run(pip + ["--no-deps", str(ROOT)], check=True, timeout=300, capture_output=True)
    installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                               capture_output=True, text=True, check=True).stdout.lower()
    assert "layer-sandbox==" in installed or "layer_sandbox==" in installed
    assert not any(f"{name}==" in installed for name in ("connexion", "flask", "faker", "openapi-core", "httpx"))
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_consumer.py").write_text('''
import json
import urllib.request


def test_through_the_plugin(layer_sandbox):
    business = layer_sandbox.businesses()[0]["id"]
    request = urllib.request.Request(
        f"{layer_sandbox.base_url}/v1/businesses/{business}/invoices/customer-credits?limit=1",
        headers={"Authorization": "Bearer t"})
    with urllib.request.urlopen(request) as answer:
        assert json.load(answer)["data"]
    layer_sandbox.assert_requests("GET", count=1, status=200)
''')
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
                             "--layer-sandbox-url", running.base_url], cwd=suite, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr


def test_a_journal_the_plugin_may_not_read_fails_the_test_with_the_reason(pytester, tmp_path):
    """A running sandbox with --admin-token, and a suite not given it: each test says why, the
    session goes on (no INTERNALERROR); given the token, the suite passes."""
    server = SandboxProcess(tmp_path / "guarded", "--admin-token", "control-secret")
    try:
        pytester.makepyfile(test_consumer="""
            import urllib.error
            import urllib.request

            def test_one(layer_sandbox):
                try:
                    urllib.request.urlopen(urllib.request.Request(layer_sandbox.base_url + "/v1/nowhere",
                                                                  headers={"Authorization": "Bearer t"}))
                except urllib.error.HTTPError as answer:
                    assert answer.code == 404
        """)
        result = pytester.runpytest_subprocess(*CONSUMER, "--layer-sandbox-url", server.base_url)
        result.assert_outcomes(failed=1, errors=1)  # the test, and the namespace it could not delete
        output = result.stdout.str()
        assert "the sandbox's journal could not be read" in output and "could not be deleted" in output, output
        assert "INTERNALERROR" not in result.stdout.str() and "Traceback" not in result.stdout.str()
        result = pytester.runpytest_subprocess(*CONSUMER, "--layer-sandbox-url", server.base_url,
                                               "--layer-sandbox-admin-token", "control-secret")
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*operation: (none: no such route)*"])
    finally:
        server.stop()


def test_a_consumer_gives_a_test_exact_records_and_walks_layers_whole_story(pytester):
    """Token, customers, invoices, a credit applied, the balance read again: through the test's
    namespace URL only (the token endpoint included), with records the test put there itself."""
    pytester.makepyfile(test_story="""
        import base64

        import httpx

        ACME = "11111111-1111-4111-8111-111111111111"
        INVOICE = "22222222-2222-4222-8222-222222222222"

        def test_story(layer_sandbox):
            added = layer_sandbox.add_fixtures(
                customers=[{"id": ACME, "company_name": "Acme Corp"}],
                invoices=[{"id": INVOICE, "customer_id": ACME, "total_amount": 100000}])
            business = added["business_id"]
            base = layer_sandbox.base_url
            basic = base64.b64encode(b"backend:secret").decode()
            token = httpx.post(f"{base}/oauth2/token", data={"grant_type": "client_credentials"},
                               headers={"Authorization": f"Basic {basic}"}).json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            customers = httpx.get(f"{base}/v1/businesses/{business}/customers", params={"q": "acme"}, headers=auth)
            assert [c["id"] for c in customers.json()["data"]] == [ACME]
            credit = httpx.post(f"{base}/v1/businesses/{business}/invoices/customer-credits", headers=auth, json={
                "customer_id": ACME, "allocations": [{"invoice_id": INVOICE, "amount": 25000}],
                "line_items": [{"amount": 25000, "revenue_account_identifier": {
                    "type": "StableName", "stable_name": "SALES"}}]})
            assert credit.status_code == 201
            invoice = httpx.get(f"{base}/v1/businesses/{business}/invoices/{INVOICE}", headers=auth).json()["data"]
            assert (invoice["outstanding_balance"], invoice["status"]) == (75000, "PARTIALLY_PAID")
            layer_sandbox.assert_requests("GET", f"/v1/businesses/{business}/invoices/{INVOICE}", count=1, status=200)
    """)
    result = pytester.runpytest(*CONSUMER)
    result.assert_outcomes(passed=1)
