"""The dashboard at /__sandbox/ (issue 16), driven in Debian's headless Chromium through
Playwright's Python API (pointed at that executable; Playwright downloads no browser here).

What a frontend developer relies on: the page loads with no console error and shows the seeded
counts; a credit created over the API shows in the data and the traffic within two seconds; a
failed request opens to its violations and bodies, and the traffic filters by status, operation
and contract outcome; the controls (reset, scenario, clock, rules, export and import) work through
the control routes, and a 500 rule set in the page makes the next API call a 500; another namespace
shows its own data, and a deleted one is not made again by the page; under --admin-token the page
asks for the token. The page never calls /v1 and adds nothing to the journal. It is usable from
the keyboard, has no serious axe-core violation, and fits 390 px as well as 1280 px.

Screenshots: every run takes them into the test's temporary folder; with
LAYER_SANDBOX_SCREENSHOTS=docs/images they replace the README's.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from support import SandboxProcess, credits_path, report, stable_line
from test_browser import CHROMIUM

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
expect = playwright.expect

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium here; .ci/run installs it for CI")
AUTH = {"Authorization": "Bearer dashboard"}
AXE = Path(__file__).parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def server(sandbox):
    """The suite's shared sandbox, on each store (the page reads Redis's journal and namespaces as
    well as memory's); every test here works in namespaces of its own."""
    return sandbox


class Sandbox:
    """The API and control routes of one namespace, as a test's own client sees them."""

    def __init__(self, base_url: str, namespace: str, scenario: str = "default") -> None:
        self.base, self.namespace = base_url, namespace
        self.headers = {"X-Sandbox-Namespace": namespace}
        made = httpx.put(f"{base_url}/__sandbox/namespaces/{namespace}", json={"scenario": scenario, "seed": 1})
        assert made.status_code in (200, 201), made.text

    def control(self, method: str, route: str, **kwargs) -> httpx.Response:
        return httpx.request(method, f"{self.base}/__sandbox/{route}", headers=self.headers, **kwargs)

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.base + path, headers={**AUTH, **self.headers}, **kwargs)

    def business(self, position: int = 0) -> dict:
        return self.control("GET", "businesses").json()["data"][position]

    def counts(self, position: int = 0) -> str:
        """The page's count line for a business, from the control routes."""
        business = self.business(position)
        return (f"{len(business['customers'])} customers, {len(business['invoices'])} invoices, "
                f"{business['customer_credits']} customer credits ({business['deleted_customer_credits']} deleted)")

    def journal(self) -> list[dict]:
        return httpx.get(f"{self.base}/__sandbox/requests", params={"namespace": "*"}).json()["data"]


class Watched:
    """A page, with what the browser reported (console errors, uncaught exceptions) and every
    request the page made."""

    def __init__(self, page) -> None:
        self.page = page
        self.root = ""  # the address the page was opened at (its own files load from there)
        self.problems: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: self.problems.append(f"uncaught: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))

    def clean(self, base_url: str, refused: tuple[int, ...] = ()) -> None:
        """No console error, and no request anywhere but the control routes (no /v1, no favicon).
        `refused`: statuses of control routes the test had the page refused (the browser logs each)."""
        expected = tuple(f"Failed to load resource: the server responded with a status of {status} " for status in refused)
        problems = [p for p in self.problems if not p.removeprefix("console error: ").startswith(expected)]
        assert not problems, problems
        elsewhere = [url for url in self.requests if not url.startswith((f"{base_url}/__sandbox/", self.root))]
        assert not elsewhere, elsewhere


@pytest.fixture
def open_page(browser, server):
    contexts = []

    def opening(query: str = "", width: int = 1280, height: int = 900, ready: bool = True, base_url=None,
                prefix: str = "", **options) -> Watched:
        context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True, **options)
        contexts.append(context)
        watched = Watched(context.new_page())
        watched.root = f"{base_url or server.base_url}{prefix}/__sandbox/"
        watched.page.goto(watched.root + query)
        if ready:
            watched.page.wait_for_selector("body[data-ready]")
        return watched

    yield opening
    for context in contexts:
        context.close()


def rows(page, table: str) -> int:
    return page.locator(f"#{table} > tbody > tr:not(.details)").count()


def requests_shown(page):
    """The traffic table's rows (not the rows they open to, nor the tables inside those)."""
    return page.locator("#traffic-table > tbody > tr:not(.details)")


def status_of(row):
    return row.locator("td").nth(4)  # opener, time, method, path, status


def test_json_clients_still_get_json(server):
    answer = httpx.get(f"{server.base_url}/__sandbox/", headers={"Accept": "application/json"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    assert "/__sandbox/requests" in answer.json()["data"]["routes"]
    page = httpx.get(f"{server.base_url}/__sandbox/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]  # nothing from elsewhere
    assert "Accept" in page.headers["vary"] and "Accept" in answer.headers["vary"]  # (with CORS's Origin)
    assert httpx.get(f"{server.base_url}/__sandbox/dashboard/nope.js").status_code == 404
    assert httpx.get(f"{server.base_url}/__sandbox/dashboard/data.js").headers["content-type"].startswith("text/javascript")


def test_the_page_shows_the_seeded_counts_and_adds_no_traffic(server, open_page):
    sandbox = Sandbox(server.base_url, "seeded")
    business = sandbox.business()
    before = sandbox.journal()
    watched = open_page("?namespace=seeded")
    page = watched.page
    expect(page.locator("#counts")).to_have_text(sandbox.counts())
    expect(page.locator("#namespace-info")).to_have_text("scenario default, seed 1")
    assert rows(page, "credits-table") == business["customer_credits"]
    page.click("#tab-invoices")
    assert rows(page, "invoices-table") == len(business["invoices"])
    page.click("#tab-customers")
    assert rows(page, "customers-table") == len(business["customers"])
    page.wait_for_timeout(2500)  # two and a half polls
    assert sandbox.journal() == before, "the page's polling added to the journal"
    polled = [url for url in watched.requests if "/__sandbox/requests" in url]
    assert len(polled) >= 3, watched.requests  # it did poll meanwhile
    watched.clean(server.base_url)


def test_a_credit_made_over_the_api_shows_in_the_data_and_the_traffic_within_two_seconds(server, open_page):
    sandbox = Sandbox(server.base_url, "live")
    business = sandbox.business()
    watched = open_page("?namespace=live")
    page = watched.page
    made = sandbox.api("POST", credits_path(business["id"]), json={
        "customer_id": business["customers"][0]["id"], "memo": "made for the dashboard",
        "line_items": [stable_line("SALES", 4321)]})
    answered = time.monotonic()
    assert made.status_code == 201, made.text
    expect(page.locator("#credits-table")).to_contain_text("made for the dashboard", timeout=2000)
    newest = requests_shown(page).first
    expect(newest).to_contain_text("POST", timeout=max(1, 2000 - int((time.monotonic() - answered) * 1000)))
    expect(status_of(newest)).to_have_text("201")
    took = time.monotonic() - answered
    assert took < 2.0
    report(f"dashboard ({server.store} store): a credit made over the API showed in the data and the traffic {took * 1000:.0f} ms after its 201")
    credit = page.locator(f"#credits-table tr[data-key='{made.json()['data']['id']}']")
    expect(credit).to_contain_text("43.21")
    watched.clean(server.base_url)


def test_a_failed_request_opens_to_its_violations_and_the_traffic_filters(server, open_page):
    sandbox = Sandbox(server.base_url, "failing")
    business = sandbox.business()
    watched = open_page("?namespace=failing")
    page = watched.page
    refused = sandbox.api("POST", credits_path(business["id"]), json={"customer_id": 5, "line_items": "x"})
    assert refused.status_code == 400
    assert sandbox.api("GET", credits_path(business["id"]), params={"limit": 2}).status_code == 200
    assert sandbox.api("GET", "/v1/not-in-the-contract").status_code == 404
    expect(page.locator("#traffic-table caption")).to_have_text("3 requests")

    # Each contract outcome keeps what the journal's own filter keeps.
    for outcome in ("pass", "fail", "violation", "skipped"):
        page.select_option("#traffic-contract", outcome)
        kept = sandbox.control("GET", "requests", params={"contract": outcome}).json()["data"]
        expect(requests_shown(page)).to_have_count(len(kept))
        assert [int(key) for key in requests_shown(page).evaluate_all("(rows) => rows.map((r) => r.dataset.key)")] \
            == [entry["id"] for entry in reversed(kept)]  # newest first

    page.select_option("#traffic-contract", "fail")
    expect(page.locator("#traffic-table caption")).to_have_text("1 requests")
    failed = requests_shown(page).first
    expect(status_of(failed)).to_have_text("400")
    failed.locator("button.opener").click()
    details = page.locator("#traffic-table tr.details").first
    violations = details.locator("table.violations tbody tr")
    expect(violations).to_have_count(2)
    expect(violations.nth(0)).to_contain_text("customer_id")
    expect(violations.nth(0)).to_contain_text("5 is not of type 'string'")
    expect(violations.nth(1)).to_contain_text("line_items")
    expect(details).to_contain_text('"line_items": "x"')  # the request body
    expect(details).to_contain_text('"error_enum": "SpecifiedBadRequest"')  # the response body

    page.select_option("#traffic-contract", "")
    page.select_option("#traffic-status", "2xx")
    expect(page.locator("#traffic-table caption")).to_have_text("1 requests")
    expect(status_of(requests_shown(page).first)).to_have_text("200")
    page.select_option("#traffic-status", "")
    page.select_option("#traffic-operation", "business.invoices.customer-credits.post")
    expect(requests_shown(page)).to_have_count(1)
    expect(requests_shown(page).first).to_contain_text("POST")
    watched.clean(server.base_url)


def test_a_500_rule_set_in_the_page_makes_the_next_api_call_a_500(server, open_page):
    sandbox = Sandbox(server.base_url, "ruled")
    listing = credits_path(sandbox.business()["id"])
    watched = open_page("?namespace=ruled")
    page = watched.page
    page.select_option("#rule-method", "GET")
    page.fill("#rule-code", "500")
    page.fill("#rule-count", "1")
    page.click("#rule-form button[type=submit]")
    expect(page.locator("#control-status")).to_contain_text("Added rule-")
    expect(page.locator("#rules-list li")).to_have_count(1)
    [rule] = sandbox.control("GET", "rules").json()["data"]
    assert (rule["method"], rule["code"], rule["remaining"]) == ("GET", 500, 1)

    forced = sandbox.api("GET", listing)
    assert forced.status_code == 500 and forced.json()["errors"], forced.text
    assert sandbox.api("GET", listing).status_code == 200  # a rule for one request only
    expect(requests_shown(page)).to_have_count(2)
    expect(status_of(requests_shown(page).nth(1))).to_have_text("500")
    expect(status_of(requests_shown(page).nth(0))).to_have_text("200")
    expect(page.locator("#rules-list li")).to_have_count(0)  # used up, and the page shows it

    page.fill("#rule-code", "418")  # not declared by the contract: refused with Layer's reason
    page.fill("#rule-count", "")
    page.click("#rule-form button[type=submit]")
    expect(page.locator("#control-status")).to_contain_text("Refused: ")
    expect(page.locator("#control-status")).to_have_class("failed")
    page.fill("#rule-code", "")
    page.fill("#rule-delay", "5")
    page.click("#rule-form button[type=submit]")
    expect(page.locator("#rules-list li")).to_have_count(1)
    page.locator("#rules-list li button").click()
    expect(page.locator("#rules-list li")).to_have_count(0)
    assert sandbox.control("GET", "rules").json()["data"] == []
    watched.clean(server.base_url, refused=(400,))


def test_the_controls_reset_load_a_scenario_move_the_clock_and_export_and_import(server, open_page, tmp_path):
    sandbox = Sandbox(server.base_url, "controlled")
    watched = open_page("?namespace=controlled")
    page = watched.page
    status = page.locator("#control-status")

    page.fill("#reset-seed", "7")
    page.click("#reset-form button[type=submit]")
    expect(status).to_have_text("Reset to scenario default, seed 7; rules cleared")
    expect(page.locator("#namespace-info")).to_have_text("scenario default, seed 7")
    expect(page.locator("#counts")).to_have_text(sandbox.counts())
    assert sandbox.control("GET", "health").json()["data"]["seed"] == 7

    page.select_option("#scenario-name", "deleted")
    page.fill("#scenario-seed", "1")
    page.click("#scenario-form button[type=submit]")
    expect(page.locator("#namespace-info")).to_have_text("scenario deleted, seed 1")
    counted = sandbox.counts()
    assert "(0 deleted)" not in counted
    expect(page.locator("#counts")).to_have_text(counted)
    expect(page.locator("#credits-table tr.deleted").first).to_be_visible()

    page.fill("#clock-frozen-at", "2030-01-02T03:04:05Z")
    page.click("#clock-freeze-at-form button[type=submit]")
    expect(page.locator("#clock-now")).to_contain_text("frozen, 2030-01-02T03:04:05")
    page.fill("#clock-advance", "3600")
    page.click("#clock-advance-form button[type=submit]")
    expect(page.locator("#clock-now")).to_contain_text("2030-01-02T04:04:05")
    assert sandbox.control("GET", "clock").json()["data"]["now"].startswith("2030-01-02T04:04:05")
    page.fill("#clock-frozen-at", "soon")
    page.click("#clock-freeze-at-form button[type=submit]")
    expect(status).to_contain_text("Refused: Clock not changed: frozen_at 'soon' is not an ISO 8601 date-time")
    page.click("#clock-release")
    expect(page.locator("#clock-now")).to_contain_text("system time")
    page.click("#clock-freeze")
    expect(page.locator("#clock-now")).to_contain_text("frozen")

    with page.expect_download() as downloading:
        page.click("#export-button")
    exported = tmp_path / downloading.value.suggested_filename
    downloading.value.save_as(exported)
    assert exported.name == "layer-sandbox-controlled.json"
    assert json.loads(exported.read_text()) == sandbox.control("GET", "state").json()["data"]

    business = sandbox.business()
    made = sandbox.api("POST", credits_path(business["id"]), json={
        "customer_id": business["customers"][0]["id"], "memo": "undone by the import",
        "line_items": [stable_line("SALES", 100)]})
    assert made.status_code == 201
    expect(page.locator("#credits-table")).to_contain_text("undone by the import")
    page.set_input_files("#import-file", exported)
    expect(status).to_have_text("Imported layer-sandbox-controlled.json: scenario deleted, seed 1")
    expect(page.locator("#credits-table")).not_to_contain_text("undone by the import")
    assert sandbox.api("GET", credits_path(business["id"], made.json()["data"]["id"])).status_code == 404

    broken = tmp_path / "broken.json"
    broken.write_text('{"businesses": 3}')
    page.set_input_files("#import-file", broken)
    expect(status).to_contain_text("Refused: State not imported, nothing changed")
    watched.clean(server.base_url, refused=(400,))


def test_another_namespace_shows_its_own_data_and_its_first_page_renders_fast(server, open_page):
    big = Sandbox(server.base_url, "big", scenario="paging")
    assert big.business()["customer_credits"] == 1000
    default = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
    assert httpx.get(server.base_url + credits_path(default["id"]), headers=AUTH).status_code == 200
    watched = open_page()  # the default namespace first, with a request in its traffic
    page = watched.page
    expect(requests_shown(page)).not_to_have_count(0)
    assert page.locator("#namespace").input_value() == "default"
    expect(page.locator("#namespace option")).to_contain_text(["default"])
    page.wait_for_function("[...document.querySelectorAll('#namespace option')].some((o) => o.value === 'big')",
                           timeout=10_000)  # listed at the page's next reading of the namespaces
    page.select_option("#namespace", "big")
    expect(page.locator("#counts")).to_have_text(big.counts())
    expect(page.locator("#namespace-info")).to_have_text("scenario paging, seed 1")
    assert page.url.endswith("?namespace=big")
    expect(page.locator("#traffic-table caption")).to_have_text("0 requests")  # big's own traffic: none
    assert rows(page, "credits-table") == 200
    page.click("button.more")
    assert rows(page, "credits-table") == 1000
    watched.clean(server.base_url)
    page.context.close()  # (an open page polls: it would weigh on the figures below)

    # Wall-clock: a new tab opening the 1,000-credit namespace, until its first table page is drawn.
    figures = []
    for _ in range(3):
        started = time.perf_counter()
        fresh = open_page("?namespace=big")
        waited = (time.perf_counter() - started) * 1000
        assert rows(fresh.page, "credits-table") == 200
        figures.append((int(fresh.page.evaluate("document.body.dataset.firstTableMs")), waited))
        fresh.clean(server.base_url)
        fresh.page.context.close()
    page_ms = sorted(f[0] for f in figures)
    report(f"dashboard ({server.store} store): a 1,000-credit namespace's first table page drawn "
           f"{page_ms[0]}/{page_ms[1]}/{page_ms[2]} ms after a new tab asked for the page (min/median/max of 3, "
           f"the page's own clock); all of it read (traffic, rules, scenarios) after {min(f[1] for f in figures):.0f} ms "
           "at best, as the test waited for it")


def test_a_namespace_is_never_made_by_looking_at_it(server, open_page):
    unknown = open_page("?namespace=nosuch")
    expect(unknown.page.locator("#page-status")).to_have_text("No namespace nosuch; showing default")
    expect(unknown.page.locator("#namespace")).to_have_value("default")
    prefixed = open_page(prefix="/__ns/ghost")  # a page opened under a namespace's URL prefix
    expect(prefixed.page.locator("#page-status")).to_have_text("No namespace ghost; showing default")
    listed = [n["namespace"] for n in httpx.get(f"{server.base_url}/__sandbox/namespaces").json()["data"]]
    assert "nosuch" not in listed and "ghost" not in listed

    Sandbox(server.base_url, "named-by-path", scenario="empty")
    by_path = open_page(prefix="/__ns/named-by-path")
    expect(by_path.page.locator("#namespace")).to_have_value("named-by-path")
    expect(by_path.page.locator("#namespace-info")).to_have_text("scenario empty, seed 1")
    for watched in (unknown, prefixed, by_path):
        watched.clean(server.base_url)


def test_a_deleted_namespace_is_not_made_again_by_the_page(server, open_page):
    Sandbox(server.base_url, "brief")
    watched = open_page("?namespace=brief")
    page = watched.page
    assert httpx.delete(f"{server.base_url}/__sandbox/namespaces/brief").status_code == 200
    expect(page.locator("#page-status")).to_contain_text("The namespace brief was deleted; showing default", timeout=5000)
    expect(page.locator("#namespace-info")).to_have_text("scenario default, seed 1")
    page.wait_for_timeout(1500)
    listed = [n["namespace"] for n in httpx.get(f"{server.base_url}/__sandbox/namespaces").json()["data"]]
    assert "brief" not in listed
    assert not watched.problems, watched.problems


def test_under_an_admin_token_the_page_asks_for_it(open_page, tmp_path):
    guarded = SandboxProcess(tmp_path / "guarded", "--admin-token", "admin-secret")
    try:
        base = guarded.base_url
        assert httpx.get(f"{base}/__sandbox/", headers={"Accept": "application/json"}).status_code == 401
        assert httpx.get(f"{base}/__sandbox/state").status_code == 401
        assert httpx.get(f"{base}/__sandbox/", headers={"Accept": "text/html"}).status_code == 200  # the page holds no state
        assert httpx.get(f"{base}/__sandbox/dashboard/api.js").status_code == 200
        assert httpx.get(f"{base}/__sandbox/dashboard/other.js").status_code == 401  # only its own files
        assert httpx.get(f"{base}/__sandbox", headers={"Accept": "text/html"}).status_code == 308  # to the page
        assert httpx.get(f"{base}/__sandbox/", headers={"Accept": "text/html;q=0.1, application/json"}).status_code == 401

        watched = open_page(ready=False, base_url=base)
        page = watched.page
        expect(page.locator("#login")).to_be_visible()
        expect(page.locator("#page-status")).to_contain_text("runs with --admin-token")
        assert page.locator("#credits-table").count() == 0
        page.fill("#admin-token", "wrong")
        page.press("#admin-token", "Enter")
        expect(page.locator("#page-status")).to_contain_text("The admin token was refused")
        page.fill("#admin-token", "admin-secret")
        page.press("#admin-token", "Enter")
        expect(page.locator("#login")).to_be_hidden()
        page.wait_for_selector("body[data-ready]")
        assert rows(page, "credits-table") == 24

        linked = open_page("#token=admin-secret", base_url=base)
        assert rows(linked.page, "credits-table") == 24
        assert "token" not in linked.page.url  # taken off the address bar (and never sent: a fragment)
        linked.clean(base)
        watched.clean(base, refused=(401,))
    finally:
        guarded.stop()


def test_the_page_works_from_the_keyboard(server, open_page):
    sandbox = Sandbox(server.base_url, "keys")
    watched = open_page("?namespace=keys")
    page = watched.page
    page.focus("#tab-credits")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#tab-invoices")).to_be_focused()
    expect(page.locator("#tab-invoices")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#invoices-table")).to_be_visible()
    page.keyboard.press("End")
    expect(page.locator("#customers-table")).to_be_visible()
    page.keyboard.press("Home")
    expect(page.locator("#credits-table")).to_be_visible()
    page.keyboard.press("Tab")  # the tab list is one stop: next is the filter
    expect(page.locator("#filter")).to_be_focused()
    page.keyboard.type("Returned goods")
    visible = rows(page, "credits-table")
    assert 0 < visible < sandbox.business()["customer_credits"]

    header = page.locator("#credits-table thead th button", has_text="Total")
    header.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#credits-table thead th[aria-sort=ascending]")).to_have_text("Total")
    expect(header).to_be_focused()  # the table was drawn again; the focus stayed on its button
    opener = page.locator("#credits-table button.opener").first
    opener.focus()
    page.keyboard.press("Enter")
    expect(opener).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#credits-table tr.details").first).to_contain_text('"memo": "Returned goods"')
    page.keyboard.press("Space")
    expect(opener).to_have_attribute("aria-expanded", "false")

    page.focus("#rule-code")
    page.keyboard.type("500")
    page.keyboard.press("Enter")  # submits the rule form
    expect(page.locator("#rules-list li")).to_have_count(1)
    watched.clean(server.base_url)


@pytest.mark.parametrize("width,height", [(1280, 1200), (390, 1400)])
def test_no_serious_accessibility_violation_and_readable_at_this_width(server, open_page, tmp_path, width, height):
    if not AXE.exists():
        pytest.fail(f"axe-core is missing: npm ci --prefix tests/a11y (.ci/run does it); looked for {AXE}")
    sandbox = Sandbox(server.base_url, f"looks-{width}")
    business = sandbox.business()
    sandbox.api("GET", credits_path(business["id"]), params={"limit": 3})
    sandbox.api("POST", credits_path(business["id"]), json={"customer_id": 5})  # a failed request, shown open
    watched = open_page(f"?namespace=looks-{width}", width=width, height=height, bypass_csp=True)  # to add axe
    page = watched.page
    expect(page.locator("#traffic-table caption")).to_have_text("2 requests")
    page.locator("#traffic-table button.opener").first.click()  # an open row is checked too
    page.locator("#credits-table button.opener").first.click()

    page.add_script_tag(path=str(AXE))
    found = page.evaluate("axe.run(document, {resultTypes: ['violations']})")["violations"]
    serious = [(v["id"], v["impact"], v["help"], [n["target"] for n in v["nodes"]][:3])
               for v in found if v["impact"] in ("serious", "critical")]
    assert not serious, serious
    report(f"dashboard at {width} px ({server.store} store): axe-core {page.evaluate('axe.version')}, "
           f"{len(found)} violations, none serious ({', '.join(sorted(v['id'] for v in found)) or 'none at all'})")

    # Readable: nothing wider than the window (wide tables scroll in their own boxes), and text
    # at least 12 px.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    smallest = page.evaluate("Math.min(...[...document.querySelectorAll('td, th, p, label, button')]"
                             ".map((e) => parseFloat(getComputedStyle(e).fontSize)))")
    assert smallest >= 12
    shots = Path(os.environ.get("LAYER_SANDBOX_SCREENSHOTS") or tmp_path)
    shot = shots / f"dashboard-{width}.png"
    page.locator("#credits-table button.opener").first.click()  # closed again for the picture
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    watched.clean(server.base_url)
