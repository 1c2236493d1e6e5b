"""The dashboard at /__sandbox/ (issue 16, first step), in Debian's headless Chromium: the page
loads with no console error, shows a namespace's seeded counts and records, a credit created over
the API, another namespace's data when asked, a 1,000-credit namespace's first table page, and adds
nothing to the API's traffic or the journal (not even a /favicon.ico). JSON stays the answer to
`Accept: application/json`."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest

from support import SandboxProcess, credits_path, report, stable_line
from test_browser import CHROMIUM

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium here; .ci/run installs it for CI")
AUTH = {"Authorization": "Bearer dashboard"}


def load(url: str, profile) -> tuple[str, str]:
    """The page's DOM once its scripts ran (virtual time lets its fetches finish), and what the
    browser logged: console messages and uncaught errors."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
         "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", "--window-size=1280,900",
         "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


def console_problems(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def counts(dom: str) -> str:
    return re.search(r'<p id="counts"[^>]*>([^<]*)</p>', dom).group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = SandboxProcess(tmp_path_factory.mktemp("dashboard"))
    yield process
    process.stop()


def test_json_clients_still_get_json(server):
    answer = httpx.get(f"{server.base_url}/__sandbox/", headers={"Accept": "application/json"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    assert "/__sandbox/requests" in answer.json()["data"]["routes"]
    page = httpx.get(f"{server.base_url}/__sandbox/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]  # nothing from elsewhere
    assert httpx.get(f"{server.base_url}/__sandbox/dashboard/nope.js").status_code == 404


def test_the_page_shows_the_namespace_and_a_credit_made_over_the_api(server, tmp_path):
    base = server.base_url
    httpx.post(f"{base}/__sandbox/reset", json={})
    business = httpx.get(f"{base}/__sandbox/businesses").json()["data"][0]
    before = len(httpx.get(f"{base}/__sandbox/requests").json()["data"])

    dom, log = load(f"{base}/__sandbox/", tmp_path / "profile")
    assert not console_problems(log), console_problems(log)
    assert counts(dom) == (f"{len(business['customers'])} customers, {len(business['invoices'])} invoices, "
                           f"{business['customer_credits']} customer credits (0 deleted)")
    assert "scenario default, seed 1" in dom
    assert dom.count("<tr") == business["customer_credits"] + 1  # a header row and one row per credit
    assert len(httpx.get(f"{base}/__sandbox/requests").json()["data"]) == before, "the page made API requests"

    made = httpx.post(base + credits_path(business["id"]), headers=AUTH, json={
        "customer_id": business["customers"][0]["id"], "memo": "made for the dashboard",
        "line_items": [stable_line("SALES", 4321)]})
    assert made.status_code == 201, made.text
    dom, _ = load(f"{base}/__sandbox/", tmp_path / "profile")
    assert "made for the dashboard" in dom and made.json()["data"]["id"][:8] in dom
    assert "43.21" in dom


def test_a_namespace_asked_for_shows_its_own_data_and_a_big_one_renders_fast(server, tmp_path):
    base = server.base_url
    made = httpx.put(f"{base}/__sandbox/namespaces/big", json={"scenario": "paging"})
    assert made.status_code in (200, 201), made.text
    business = httpx.get(f"{base}/__sandbox/businesses", headers={"X-Sandbox-Namespace": "big"}).json()["data"][0]
    dom, log = load(f"{base}/__sandbox/?namespace=big", tmp_path / "profile")
    assert not console_problems(log), console_problems(log)
    assert counts(dom) == (f"{len(business['customers'])} customers, {len(business['invoices'])} invoices, "
                           f"{business['customer_credits']} customer credits (0 deleted)")
    assert business["customer_credits"] == 1000 and "scenario paging" in dom
    assert 'option value="big" selected' in dom or re.search(r'<select id="namespace"[^>]*>.*big', dom, re.S)
    assert dom.count("<tr") == 200 + 1 and "Show all 1000 rows" in dom  # the first table page
    took = int(re.search(r'data-first-table-ms="(\d+)"', dom).group(1))
    # Under --virtual-time-budget the page's clock runs on virtual time: a figure, not a wall-clock
    # measure (the page's own performance.now(), reads and first table included).
    report(f"dashboard: a 1,000-credit namespace's first table page in {took} ms of the page's virtual time")
