"""pytest plugin (entry point `pytest11`): Layer's sandbox as a fixture for consumer tests.

    def test_refund_flow(layer_sandbox):
        client = MyLayerClient(base_url=layer_sandbox.base_url, token="anything")
        client.delete_credit(business_id, credit_id)
        layer_sandbox.assert_requests("DELETE", f"*/customer-credits/{credit_id}", count=1)

One sandbox runs in the background of the test session, on a free loopback port; every test
that uses `layer_sandbox` gets its own freshly seeded namespace behind its own base URL. Seed
and scenario come from `@pytest.mark.layer_sandbox(seed=7, scenario="paging")` or from
`--layer-sandbox-seed` / `--layer-sandbox-scenario`. A test whose code sent a request that breaks
Layer's contract fails with a report naming the operation, the field and the problem, unless it
is marked `@pytest.mark.layer_sandbox(allow_violations=True)`.
"""

from __future__ import annotations

import itertools
import re

import pytest

_counter = itertools.count(1)


def pytest_addoption(parser) -> None:
    group = parser.getgroup("layer-sandbox")
    group.addoption("--layer-sandbox-seed", type=int, default=None, help="seed of the sandbox's data (default 1)")
    group.addoption("--layer-sandbox-scenario", default=None, help="scenario to seed (default: default)")
    group.addoption("--layer-sandbox-token", default=None, help="accept only this bearer token")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "layer_sandbox(seed=None, scenario=None, allow_violations=False): how this test's sandbox "
        "namespace is seeded, and whether contract violations are expected",
    )


@pytest.fixture(scope="session")
def layer_sandbox_server(request):
    """The session's background sandbox (`.url`, `.handle(namespace)`, `.app`)."""
    from .testing import BackgroundSandbox

    options = request.config.option
    server = BackgroundSandbox(
        seed=options.layer_sandbox_seed if options.layer_sandbox_seed is not None else 1,
        scenario=options.layer_sandbox_scenario or "default",
        tokens=(options.layer_sandbox_token,) if options.layer_sandbox_token else (),
        # Every test's namespace is dropped after it, with its journal entries; these bounds only
        # have to hold what the tests running at one time make.
        max_namespaces=1_000,
        journal_size=100_000,
    ).start()
    yield server
    server.stop()


@pytest.fixture
def layer_sandbox(request, layer_sandbox_server):
    """This test's sandbox namespace: `.base_url`, `.control`, `.assert_requests(...)`, ..."""
    marker = request.node.get_closest_marker("layer_sandbox")
    settings = dict(marker.kwargs) if marker else {}
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name)[:40].strip("-.") or "test"
    handle = layer_sandbox_server.handle(
        f"t{next(_counter)}-{slug}", seed=settings.get("seed"), scenario=settings.get("scenario"))
    handle.allow_violations = bool(settings.get("allow_violations"))
    yield handle
    handle.drop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    outcome = yield
    handle = getattr(item, "funcargs", {}).get("layer_sandbox")
    if handle is None or handle.allow_violations:
        return
    report = handle.violation_report()
    if not report:
        return
    if outcome.excinfo is not None:  # the test failed anyway: keep its failure, show the violations too
        item.add_report_section("call", "layer-sandbox contract violations", report)
        return
    from .testing import ContractViolation

    outcome.force_exception(ContractViolation(report))
