"""`layer-sandbox proxy`: forwarding to a (fake) Layer on loopback, validating both ways, reporting drift."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import threading
import xml.etree.ElementTree as ElementTree
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import yaml

from support import SandboxProcess, load_spec, sandbox_command, unused_address

SPEC = load_spec()
CREDIT = SPEC["components"]["examples"]["Credit"]["value"]  # a body that conforms
BUSINESS = "cd613e30-d8f1-4adf-91b7-584a2265b1f5"
GOOD, DRIFT, BARE, TEAPOT = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
                             "33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444")
NOT_UTF8 = "55555555-5555-4555-8555-555555555555"
BASE = f"/v1/businesses/{BUSINESS}/invoices/customer-credits"


def drifting_credit():
    body = copy.deepcopy(CREDIT)
    body["data"]["deleted_at"] = 5
    del body["data"]["customer"]["type"]
    return body


class FakeLayer(BaseHTTPRequestHandler):
    """Answers like Layer would, and sometimes not."""

    seen: list[tuple[str, str, str | None]] = []
    bodies: list[bytes] = []

    def _answer(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Upstream", "fake-layer")
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        FakeLayer.seen.append(("GET", self.path, self.headers.get("Authorization")))
        if self.path.endswith(NOT_UTF8):
            data = b"\xff\xfe"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif self.path.endswith(GOOD):
            self._answer(200, CREDIT)
        elif self.path.endswith(DRIFT):
            self._answer(200, drifting_credit())
        elif self.path.endswith(BARE):
            self._answer(200, CREDIT["data"])
        elif "limit=0" in self.path:
            self._answer(400, {"errors": [{"type": "Validation", "description": "limit", "error_enum": "SpecifiedBadRequest"}]})
        else:
            self._answer(200, {"data": [CREDIT["data"]], "meta": {"pagination": {
                "cursor": None, "has_more": False, "sort_by": "created_at", "sort_order": "ASC", "total_count": None}}})

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        FakeLayer.seen.append(("POST", self.path, self.headers.get("Content-Encoding")))
        FakeLayer.bodies.append(raw)
        self._answer(201, CREDIT)

    def do_OPTIONS(self):  # noqa: N802
        FakeLayer.seen.append(("OPTIONS", self.path, None))
        self.send_response(204)
        self.end_headers()

    def do_DELETE(self):  # noqa: N802
        FakeLayer.seen.append(("DELETE", self.path, self.headers.get("Authorization")))
        self._answer(418, {"errors": [{"type": "Teapot", "description": "no", "error_enum": "Teapot"}]})

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_layer():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLayer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def stop(proxy: SandboxProcess) -> tuple[int, str]:
    """SIGTERM, then the exit status and what the proxy printed (its summary)."""
    proxy.process.send_signal(signal.SIGTERM)
    status = proxy.process.wait(timeout=30)
    proxy.stop()
    return status, proxy.stdout


def test_the_proxy_forwards_validates_and_reports(fake_layer, tmp_path):
    junit = tmp_path / "drift.xml"
    proxy = SandboxProcess(tmp_path, "--upstream", fake_layer, "--junit-xml", str(junit), subcommand="proxy")
    base = proxy.base_url
    try:
        auth = {"Authorization": "Bearer real-layer-token"}
        good = httpx.get(f"{base}{BASE}/{GOOD}", headers=auth)
        drift = httpx.get(f"{base}{BASE}/{DRIFT}", headers=auth)
        bare = httpx.get(f"{base}{BASE}/{BARE}", headers=auth)
        bad_request = httpx.get(f"{base}{BASE}", params={"limit": 0}, headers=auth)
        teapot = httpx.delete(f"{base}{BASE}/{TEAPOT}", headers=auth)
        listing = httpx.get(f"{base}{BASE}", params={"limit": 5}, headers=auth)
        unknown = httpx.get(f"{base}/v1/whoami", headers=auth)
        journal = httpx.get(f"{base}/__sandbox/requests").json()["data"]
        drifted = httpx.get(f"{base}/__sandbox/requests", params={"contract": "fail"}).json()["data"]
    finally:
        status, stdout = stop(proxy)
    assert status == 0, proxy.stderr

    # Layer's answers reach the client unchanged (status, body, headers), marked with the outcome.
    assert good.status_code == 200 and good.json() == CREDIT and good.headers["x-upstream"] == "fake-layer"
    assert good.headers["x-sandbox-contract"] == "request=pass; response=pass"
    assert drift.status_code == 200 and drift.json() == drifting_credit()
    assert drift.headers["x-sandbox-contract"] == "request=pass; response=fail"
    assert bare.headers["x-sandbox-contract"] == "request=pass; response=fail"
    assert bad_request.status_code == 400 and bad_request.headers["x-sandbox-contract"] == "request=fail; response=pass"
    assert teapot.status_code == 418 and teapot.headers["x-sandbox-contract"] == "request=pass; response=fail"
    assert listing.headers["x-sandbox-contract"] == "request=pass; response=pass"
    assert unknown.headers["x-sandbox-contract"] == "request=skipped; response=skipped"
    # The token went to Layer, as it came.
    assert ("GET", f"{BASE}/{GOOD}", "Bearer real-layer-token") in FakeLayer.seen

    # The journal keeps every drift with what was wrong.
    assert len(journal) == 7
    by_path = {(e["method"], e["path"], e["query"]): e for e in drifted}
    assert {(m, p) for m, p, _ in by_path} == {("GET", f"{BASE}/{DRIFT}"), ("GET", f"{BASE}/{BARE}"),
                                               ("GET", BASE), ("DELETE", f"{BASE}/{TEAPOT}")}
    drift_entry = by_path[("GET", f"{BASE}/{DRIFT}", "")]
    assert any("deleted_at" in v for v in drift_entry["violations"]["response"])
    assert any("type" in v for v in drift_entry["violations"]["response"])
    assert any("limit" in v for v in by_path[("GET", BASE, "limit=0")]["violations"]["request"])
    assert any("418" in v for v in by_path[("DELETE", f"{BASE}/{TEAPOT}", "")]["violations"]["response"])

    # The summary printed on exit, and the JUnit file.
    assert "7 exchange(s)" in stdout and "5 with drift" in stdout
    assert f"GET {BASE}/{DRIFT} -> 200" in stdout and "response: response body data.deleted_at" in stdout
    assert "no operation of openapi.yaml has this method and path" in stdout
    suite = ElementTree.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "7" and suite.get("failures") == "5"
    failures = [case for case in suite.iter("testcase") if case.find("failure") is not None]
    assert {case.get("classname") for case in failures} >= {"business.invoices.customer-credits.get_one",
                                                              "business.invoices.customer-credits.delete"}


def test_an_unreachable_upstream_is_a_502_and_a_drift(tmp_path):
    held, dead = unused_address()
    proxy = SandboxProcess(tmp_path, "--upstream", dead, "--timeout", "2", subcommand="proxy")
    try:
        response = httpx.get(f"{proxy.base_url}{BASE}/{GOOD}", headers={"Authorization": "Bearer t"})
    finally:
        _, stdout = stop(proxy)
        held.close()
    assert response.status_code == 502
    [error] = response.json()["errors"]
    assert error["type"] == "BadGateway" and "error_enum" not in error  # a 5xx: Layer sends error_enum on 4xx only
    assert "1 with drift" in stdout


def test_the_upstream_must_be_a_url(tmp_path):
    result = subprocess.run(sandbox_command() + ["proxy", "--upstream", "sandbox.layerfi.com"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "http://" in result.stderr


def test_the_proxy_passes_paths_bodies_and_encodings_through(fake_layer, tmp_path):
    import gzip

    junit = tmp_path / "drift.xml"
    proxy = SandboxProcess(tmp_path, "--upstream", fake_layer, "--junit-xml", str(junit), subcommand="proxy")
    base = proxy.base_url
    auth = {"Authorization": "Bearer t"}
    try:
        encoded = httpx.get(f"{base}{BASE}/abc%3Fx%3D1%2Fy", headers=auth)
        compressed = gzip.compress(json.dumps({"customer_id": BUSINESS, "line_items": [
            {"amount": 1, "revenue_account_identifier": {"type": "StableName", "stable_name": "SALES"}}]}).encode())
        posted = httpx.post(f"{base}{BASE}", content=compressed,
                            headers={**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"})
        not_utf8 = httpx.get(f"{base}{BASE}/{NOT_UTF8}", headers=auth)
        control = httpx.get(f"{base}{BASE}/x\x01y".replace("\x01", "%01"), headers=auth)
        options = httpx.options(f"{base}{BASE}")
        only_404 = httpx.get(f"{base}/__sandbox/requests", params={"status": 404})
    finally:
        status, _ = stop(proxy)
    assert status == 0, proxy.stderr
    # The path reaches Layer as the client wrote it.
    assert ("GET", f"{BASE}/abc%3Fx%3D1%2Fy", "Bearer t") in FakeLayer.seen
    assert encoded.status_code == 200
    # A gzip request body goes up with its Content-Encoding.
    assert ("POST", BASE, "gzip") in FakeLayer.seen and compressed in FakeLayer.bodies
    assert posted.status_code == 201
    # A body that is not even text is a drift, not a crash.
    assert not_utf8.status_code == 200 and not_utf8.content == b"\xff\xfe"
    assert not_utf8.headers["x-sandbox-contract"].endswith("response=fail")
    assert control.status_code == 200
    # Preflights are not drift; the journal filters by status.
    assert options.status_code == 204 and options.headers["x-sandbox-contract"] == "request=skipped; response=skipped"
    assert only_404.status_code == 200 and only_404.json()["data"] == []
    root = ElementTree.parse(junit).getroot()  # well-formed even with control characters in paths
    names = [case.get("name") for case in root.iter("testcase")]
    assert any("\\x01" in name or "%01" in name for name in names)
    assert "OPTIONS" not in "".join(case.get("name") for case in root.iter("testcase") if case.find("failure") is not None)


PROXY_VARIABLES = [("--upstream", "LAYER_SANDBOX_PROXY_UPSTREAM"), ("--host", "LAYER_SANDBOX_PROXY_HOST"),
                   ("--port", "LAYER_SANDBOX_PROXY_PORT"), ("--junit-xml", "LAYER_SANDBOX_PROXY_JUNIT_XML"),
                   ("--timeout", "LAYER_SANDBOX_PROXY_TIMEOUT"), ("--journal-size", "LAYER_SANDBOX_PROXY_JOURNAL_SIZE"),
                   ("--spec", "LAYER_SANDBOX_PROXY_SPEC")]


def test_proxy_help_lists_every_flag_with_its_own_variable_and_port():
    result = subprocess.run(sandbox_command() + ["proxy", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # help wraps lines
    for flag, variable in PROXY_VARIABLES:
        assert flag in text and f"[env {variable}]" in text, flag
    # Its own default port, not the sandbox's 8088, and none of the sandbox's variables.
    assert "default: 8089" in text
    assert "[env LAYER_SANDBOX_HOST]" not in text and "[env LAYER_SANDBOX_PORT]" not in text


def test_a_proxy_configured_by_environment_alone(fake_layer, tmp_path):
    """Every option from its LAYER_SANDBOX_PROXY_* variable; the sandbox's own variables, set in the
    same environment for a sandbox beside it, are not the proxy's."""
    spec = load_spec()
    del spec["paths"]["/v1/businesses/{businessId}/invoices/customer-credits/{customerCreditId}"]
    spec_path = tmp_path / "without-get-one.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    junit = tmp_path / "from-env.xml"
    proxy = SandboxProcess(tmp_path, subcommand="proxy", port_via_env=True, env={
        "LAYER_SANDBOX_PROXY_UPSTREAM": fake_layer, "LAYER_SANDBOX_PROXY_HOST": "127.0.0.1",
        "LAYER_SANDBOX_PROXY_PORT": "0", "LAYER_SANDBOX_PROXY_JUNIT_XML": str(junit),
        "LAYER_SANDBOX_PROXY_TIMEOUT": "5", "LAYER_SANDBOX_PROXY_JOURNAL_SIZE": "1",
        "LAYER_SANDBOX_PROXY_SPEC": str(spec_path),
        "LAYER_SANDBOX_HOST": "256.0.0.1",  # would not even bind, were it read
    })
    auth = {"Authorization": "Bearer t"}
    try:
        one = httpx.get(f"{proxy.base_url}{BASE}/{GOOD}", headers=auth)
        listing = httpx.get(f"{proxy.base_url}{BASE}", headers=auth)
        journal = httpx.get(f"{proxy.base_url}/__sandbox/requests").json()["data"]
    finally:
        status, stdout = stop(proxy)
    assert status == 0, proxy.stderr
    assert f"layer-sandbox proxy listening on http://127.0.0.1:{proxy.port} -> {fake_layer}" in stdout
    assert one.status_code == 200 and one.json() == CREDIT  # forwarded to the upstream from the environment
    # Checked against the spec from the environment, which lacks the get-one operation.
    assert one.headers["x-sandbox-contract"] == "request=skipped; response=skipped"
    assert listing.headers["x-sandbox-contract"] == "request=pass; response=pass"
    assert len(journal) == 1 and journal[0]["path"] == BASE  # LAYER_SANDBOX_PROXY_JOURNAL_SIZE=1
    assert f"JUnit XML written to {junit}" in stdout
    assert ElementTree.parse(junit).getroot().find("testsuite").get("tests") == "2"
