"""The pytest plugin, exercised with pytester on consumer test suites."""

from __future__ import annotations

import shutil

from support import ROOT

pytest_plugins = ["pytester"]

CONSUMER = ROOT / "docs" / "consumer_example"


def test_the_documented_consumer_example_passes(pytester):
    for name in ("refunds.py", "test_refunds.py"):
        shutil.copy(CONSUMER / name, pytester.path / name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
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
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines([
        "*ContractViolation: 1 request(s) broke Layer's contract*",
        "*operation: business.invoices.customer-credits.get*",
        "*field: limit*",
        "*0 is less than the minimum of 1*",
    ])
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
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--layer-sandbox-seed", "3")
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
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=31, failed=1)
    result.stdout.fnmatch_lines(["*the test's own failure*", "*layer-sandbox contract violations*", "*field: limit*"])
