"""Shared fixtures: one sandbox process for the session, reset before every test that uses it."""

from __future__ import annotations

import httpx
import pytest

from support import Checked, ContractCheck, SandboxProcess, checking_client, share_tls_context

share_tls_context()


@pytest.fixture(scope="session")
def check() -> ContractCheck:
    return ContractCheck.ours()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server of this worker's own, on a free loopback port."""
    from redis_server import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory):
    process = SandboxProcess(tmp_path_factory.mktemp("sandbox"))
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
