"""Shared fixtures: one sandbox process for the session, reset before every test that uses it."""

from __future__ import annotations

import itertools
import os

import httpx
import pytest

from support import Checked, ContractCheck, SandboxProcess, checking_client, share_tls_context

share_tls_context()


@pytest.fixture(scope="session")
def check() -> ContractCheck:
    return ContractCheck.ours()


STORES = ("memory", "redis")


def pytest_addoption(parser):
    parser.addoption("--stores", default=",".join(STORES),
                     help="the stores the shared-sandbox tests run against (comma-separated: memory, redis)")


def pytest_generate_tests(metafunc):
    """Every test on the shared sandbox runs once per store: the same HTTP suite on both."""
    if "store" in metafunc.fixturenames:
        chosen = [name.strip() for name in metafunc.config.getoption("--stores").split(",") if name.strip()]
        unknown = set(chosen) - set(STORES)
        if unknown:
            raise pytest.UsageError(f"--stores: unknown store(s) {sorted(unknown)}; use {', '.join(STORES)}")
        metafunc.parametrize("store", chosen, scope="session")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server of this worker's own, on a free loopback port. Without redis-server the
    tests that need it skip, except in CI (CI=true), where they fail: .ci/run installs it."""
    from redis_server import RedisServer, RedisUnavailable

    try:
        server = RedisServer(tmp_path_factory.mktemp("redis"))
    except RedisUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))
    yield server
    server.stop()


def store_args(request, store: str) -> list[str]:
    """The flags that put a sandbox on `store`: each Redis sandbox under a prefix of its own."""
    if store == "memory":
        return []
    server = request.getfixturevalue("redis_server")
    return ["--store", server.url, "--store-prefix", f"t{next(_PREFIXES)}"]


_PREFIXES = itertools.count()


@pytest.fixture(scope="session")
def sandbox(request, tmp_path_factory, store):
    process = SandboxProcess(tmp_path_factory.mktemp("sandbox"), *store_args(request, store))
    process.store = store
    yield process
    process.stop()


@pytest.fixture
def api(sandbox, check):
    """A client on the shared sandbox, freshly reset to the default seed."""
    reset = httpx.post(f"{sandbox.base_url}/__sandbox/reset", json={})
    assert reset.status_code == 200, reset.text
    with checking_client(sandbox.base_url, check) as client:
        yield client


@pytest.fixture
def world(api):
    """The seeded businesses as `/__sandbox/businesses` lists them."""
    return api.get("/__sandbox/businesses").json()["data"]


@pytest.fixture
def business(world):
    return world[0]


def pytest_sessionfinish(session):
    """Under pytest-xdist each worker hands its counts to the controller, which prints them."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["checked"] = (Checked.checked, Checked.violations_expected, Checked.figures)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    checked, expected, figures = getattr(node, "workeroutput", {}).get("checked", (0, 0, []))
    Checked.checked += checked
    Checked.violations_expected += expected
    Checked.figures.extend(figures)


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(
        f"contract: {Checked.checked} /v1 responses passed both the sandbox's own validation and "
        f"openapi-core in the test process; {Checked.violations_expected} deliberate violations seen"
    )
    for line in Checked.figures:
        terminalreporter.write_line(line)
