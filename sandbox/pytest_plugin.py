"""pytest plugin (entry point `pytest11`): Layer's sandbox as a fixture for consumer tests.

    def test_refund_flow(layer_sandbox):
        client = MyLayerClient(base_url=layer_sandbox.base_url, token="anything")
        client.delete_credit(business_id, credit_id)
        layer_sandbox.assert_requests("DELETE", f"*/customer-credits/{credit_id}", count=1)

The sandbox runs in its own process, never in the test process: the plugin starts the
`layer-sandbox` console script for the session (a port the kernel picks; its log goes to a file),
or uses one already running (`--layer-sandbox-url`, or `LAYER_SANDBOX_URL`: a CI service
container). Every test that uses `layer_sandbox` gets its own namespace behind its own base URL,
made on its first request as a copy of the seeded scenario and deleted after the test. Seed and
scenario come from `@pytest.mark.layer_sandbox(seed=7, scenario="paging")` or from
`--layer-sandbox-seed` / `--layer-sandbox-scenario`. A test whose code sent a request that breaks
Layer's contract fails with a report naming the operation, the field and the problem, unless it
is marked `@pytest.mark.layer_sandbox(allow_violations=True)`.

With `--layer-sandbox-pact-dir DIR` the run also writes a Pact V4 file, `DIR/CONSUMER-layer.json`:
every passing test's exchanges with the sandbox, with provider states that rebuild its namespace
(`layer_sandbox.pactwriter`), for `layer-sandbox verify-pact` and a Pact Broker. A test marked
`@pytest.mark.layer_sandbox(pact=False)` is left out.

This module and `layer_sandbox.testing` import only the standard library and pytest, so that
loading the plugin changes nothing in the host: no warnings, no threads, no server packages.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shlex

import pytest

_counter = itertools.count(1)
# Namespaces of this session: unique even against a sandbox that other runs (or xdist workers) share.
_SESSION = secrets.token_hex(3)


def pytest_addoption(parser) -> None:
    group = parser.getgroup("layer-sandbox", "Layer's customer-credits sandbox (layer_sandbox fixture)")
    group.addoption("--layer-sandbox-url", default=os.environ.get("LAYER_SANDBOX_URL"),
                    help="use the sandbox already running at this URL instead of starting one "
                         "[env LAYER_SANDBOX_URL]")
    group.addoption("--layer-sandbox-admin-token", default=os.environ.get("LAYER_SANDBOX_ADMIN_TOKEN"),
                    help="bearer token for the control routes of a sandbox started with --admin-token "
                         "[env LAYER_SANDBOX_ADMIN_TOKEN]")
    group.addoption("--layer-sandbox-seed", type=int, default=None,
                    help="seed of every test's data (default: the sandbox's own, 1 for one the plugin starts)")
    group.addoption("--layer-sandbox-scenario", default=None,
                    help="scenario of every test's data (default: the sandbox's own, `default` for one the "
                         "plugin starts)")
    group.addoption("--layer-sandbox-token", default=None,
                    help="the sandbox the plugin starts accepts only this bearer token (its --token); the code "
                         "under test must send it. A sandbox given by URL keeps its own --token settings")
    group.addoption("--layer-sandbox-command", default=os.environ.get("LAYER_SANDBOX_COMMAND"),
                    help="how to start the sandbox (default: the layer-sandbox script beside this Python, or on "
                         "PATH), e.g. 'pipx run layer-sandbox' [env LAYER_SANDBOX_COMMAND]")
    group.addoption("--layer-sandbox-timeout", type=float, default=os.environ.get("LAYER_SANDBOX_TIMEOUT", "30"),
                    help="seconds to wait, at the start of the session, for the sandbox to answer (a service "
                         "container may still be starting) [env LAYER_SANDBOX_TIMEOUT, default 30]")
    group.addoption("--layer-sandbox-args", default=os.environ.get("LAYER_SANDBOX_ARGS", ""),
                    help="more flags for the sandbox the plugin starts, e.g. '--rate-limit 100' "
                         "[env LAYER_SANDBOX_ARGS]")
    group.addoption("--layer-sandbox-pact-dir", default=os.environ.get("LAYER_SANDBOX_PACT_DIR"),
                    help="write a Pact V4 file of the passing tests' exchanges with the sandbox to "
                         "DIR/CONSUMER-PROVIDER.json (replaced by each run) [env LAYER_SANDBOX_PACT_DIR]")
    group.addoption("--layer-sandbox-pact-consumer", default=os.environ.get("LAYER_SANDBOX_PACT_CONSUMER"),
                    help="the pact's consumer name (default: the name of the rootdir's folder) "
                         "[env LAYER_SANDBOX_PACT_CONSUMER]")
    group.addoption("--layer-sandbox-pact-provider", default="layer",
                    help="the pact's provider name (default: layer)")


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "layer_sandbox(seed=None, scenario=None, allow_violations=False, pact=True): how this test's "
        "sandbox namespace is seeded, whether contract violations are expected, and whether its exchanges "
        "go into the pact file (--layer-sandbox-pact-dir)",
    )


_INTERACTIONS = pytest.StashKey[list]()  # this process's pact interactions
_PASSED = pytest.StashKey[bool]()  # on an item: its call passed, contract included
_SEEDING = pytest.StashKey[dict]()  # what a new namespace of the session's sandbox is made with


def _pact(config) -> tuple[str, str] | None:
    """The pact's consumer and provider, or None when this run writes none."""
    options = config.option
    if not options.layer_sandbox_pact_dir:
        return None
    return options.layer_sandbox_pact_consumer or config.rootpath.name, options.layer_sandbox_pact_provider


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session) -> None:
    """The pact file is this run's alone: the xdist controller (or a run without xdist) removes
    the last run's before any worker starts."""
    names = _pact(session.config)
    if names is not None and not hasattr(session.config, "workerinput"):
        from .pactwriter import pact_path, remove_stale

        remove_stale(pact_path(session.config.option.layer_sandbox_pact_dir, *names))


def pytest_sessionfinish(session) -> None:
    """Every process adds its tests' interactions to the pact file, under a lock (the xdist
    controller, which ran none, makes sure the file exists)."""
    names = _pact(session.config)
    if names is None:
        return
    from . import __version__
    from .pactwriter import merge, pact_path

    merge(pact_path(session.config.option.layer_sandbox_pact_dir, *names), *names,
          session.config.stash.get(_INTERACTIONS, []), __version__)


@pytest.fixture(scope="session")
def layer_sandbox_server(request):
    """The session's sandbox: started for it, or the running one `--layer-sandbox-url` names."""
    from .testing import RunningSandbox, SandboxProcess, SandboxUnavailable

    options = request.config.option
    scenario = options.layer_sandbox_scenario
    if options.layer_sandbox_url and scenario and ("/" in scenario or scenario.endswith((".yaml", ".yml"))):
        raise pytest.UsageError("--layer-sandbox-scenario with --layer-sandbox-url takes a scenario name: a running "
                                "sandbox loads scenario files only through its own --scenario")
    try:
        if options.layer_sandbox_url:
            server = RunningSandbox(options.layer_sandbox_url, options.layer_sandbox_admin_token,
                                    timeout=options.layer_sandbox_timeout)
        else:
            args = ["--max-namespaces", "100000", "--journal-size", "10000"]
            if options.layer_sandbox_seed is not None:
                args += ["--seed", str(options.layer_sandbox_seed)]
            if options.layer_sandbox_scenario:
                args += ["--scenario", options.layer_sandbox_scenario]
            if options.layer_sandbox_token:
                args += ["--token", options.layer_sandbox_token]
            if options.layer_sandbox_admin_token:
                args += ["--admin-token", options.layer_sandbox_admin_token]
            server = SandboxProcess(args + shlex.split(options.layer_sandbox_args or ""),
                                    command=options.layer_sandbox_command,
                                    admin_token=options.layer_sandbox_admin_token,
                                    timeout=options.layer_sandbox_timeout)
    except SandboxUnavailable as exc:
        pytest.fail(f"layer-sandbox: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def layer_sandbox(request, layer_sandbox_server):
    """This test's sandbox namespace: `.base_url`, `.assert_requests(...)`, `.businesses()`, ..."""
    marker = request.node.get_closest_marker("layer_sandbox")
    settings = dict(marker.kwargs) if marker else {}
    options = request.config.option
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-.") or "test"
    handle = layer_sandbox_server.handle(f"t{_SESSION}-{next(_counter)}-{slug}"[:64].rstrip("-."))
    handle.allow_violations = bool(settings.get("allow_violations"))
    seed = settings.get("seed")
    scenario = settings.get("scenario")
    if options.layer_sandbox_url:  # a running sandbox seeds with its own flags, not ours
        seed = options.layer_sandbox_seed if seed is None else seed
        scenario = scenario or options.layer_sandbox_scenario
    if seed is not None or scenario is not None:
        handle.reset(seed=seed, scenario=scenario)
    # Otherwise the namespace is made by its first request, as the sandbox's own seed and scenario.
    yield handle
    from .testing import ControlError, SandboxUnavailable

    left_out = []
    if _pact(request.config) and settings.get("pact", True) and request.node.stash.get(_PASSED, False):
        try:
            left_out = _collect_pact(request, handle, layer_sandbox_server)
        except (ControlError, SandboxUnavailable) as exc:
            left_out = [f"{request.node.nodeid} left out of the pact: its journal could not be read: {exc}"]
        except Exception as exc:  # the pact is a by-product: the namespace is dropped whatever happens
            left_out = [f"{request.node.nodeid} left out of the pact: {type(exc).__name__}: {exc}"]
    try:
        handle.drop()
        problem = None
    except (ControlError, SandboxUnavailable) as exc:
        problem = f"layer-sandbox: the namespace {handle.namespace} could not be deleted: {exc}"
    if problem:
        pytest.fail(problem, pytrace=False)
    for text in left_out:  # after the drop: warnings may be errors (-W error)
        request.node.warn(pytest.PytestWarning(f"layer-sandbox: {text}"))


def _collect_pact(request, handle, server) -> list[str]:
    """The test's interactions, read from its journal before its namespace goes; what was left out."""
    from .pactwriter import interactions_of_test

    stash = request.config.stash
    if _SEEDING not in stash:  # a namespace never made says what new ones are made with
        stash[_SEEDING] = server.handle(f"t{_SESSION}-pact-seeding").health()
    interactions, left_out = interactions_of_test(request.node.nodeid, handle.requests(), handle.calls, stash[_SEEDING])
    stash.setdefault(_INTERACTIONS, []).extend(interactions)
    return left_out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that passed but whose code broke the contract fails, with the report as its
    failure (no traceback of ours); a test that failed anyway keeps its failure, and the report
    comes beside it."""
    outcome = yield
    report = outcome.get_result()
    handle = getattr(item, "funcargs", {}).get("layer_sandbox") if call.when == "call" else None
    if handle is None:
        return
    _judge(item, handle, report)
    item.stash[_PASSED] = report.passed


def _judge(item, handle, report) -> None:
    """The contract's verdict on a test's call: a passing test that broke it fails."""
    if handle.allow_violations or report.skipped:
        return
    from .testing import ControlError, SandboxUnavailable

    try:
        text = handle.violation_report()
    except (SandboxUnavailable, ControlError) as exc:
        text = f"layer-sandbox: the sandbox's journal could not be read: {exc}"
    if not text:
        return
    if report.passed:
        report.outcome = "failed"
        report.longrepr = _Failure(text, item)
    else:
        report.sections.append(("layer-sandbox contract violations", text))


class _Failure:
    """A failure report that is the violation report itself (pytest prints `toterminal`; the
    short summary and `--tb=line` read `reprcrash`; pytest-xdist sends `str`)."""

    def __init__(self, text: str, item) -> None:
        self.text = text
        try:
            from _pytest._code.code import ReprFileLocation

            path, lineno, _ = item.location
            self.reprcrash = ReprFileLocation(path, (lineno or 0) + 1, text.splitlines()[0])
        except ImportError:  # pragma: no cover - a pytest without it shows the text alone
            pass

    def toterminal(self, tw) -> None:
        for line in self.text.splitlines():
            tw.line(line, red=True, bold=line.startswith("ContractViolation"))

    def __str__(self) -> str:
        return self.text
