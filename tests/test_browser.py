"""CORS and Swagger UI in a real headless Chromium (Debian's `chromium`, installed by .ci/run)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading

import httpx
import pytest

from support import SandboxProcess, credits_path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI"):
    raise RuntimeError("CI must have Debian's chromium: .ci/run installs it")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium here; .ci/run installs it for CI")


def dump_dom(url: str, profile) -> str:
    """The page's DOM after its scripts ran (virtual time lets fetches finish)."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic",
         f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture
def page_server(tmp_path):
    """A static page on another localhost origin (another port) that calls the sandbox."""
    site = tmp_path / "site"
    site.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield site, f"http://localhost:{server.server_address[1]}"
    server.shutdown()


PAGE = """<!doctype html><html><body><p id="out">pending</p><script>
fetch("{url}", {{headers: {{"Authorization": "Bearer browser-token", "X-Sandbox-Namespace": "browser"}}}})
  .then(r => r.json().then(j => {{
    document.getElementById("out").textContent =
      "status=" + r.status + " id=" + j.data.id + " contract=" + r.headers.get("X-Sandbox-Contract");
  }}))
  .catch(e => {{ document.getElementById("out").textContent = "failed: " + e; }});
</script></body></html>"""


def write_page(site, sandbox_url, business_id, credit_id):
    (site / "index.html").write_text(PAGE.format(url=sandbox_url + credits_path(business_id, credit_id)))


def a_credit(base_url):
    business = httpx.get(f"{base_url}/__sandbox/businesses").json()["data"][0]
    credit = httpx.get(base_url + credits_path(business["id"]), headers={"Authorization": "Bearer t"}).json()["data"][0]
    return business["id"], credit["id"]


def test_a_page_on_another_localhost_origin_reads_a_credit(sandbox, page_server, tmp_path):
    site, origin = page_server
    business_id, credit_id = a_credit(sandbox.base_url)
    write_page(site, sandbox.base_url, business_id, credit_id)
    dom = dump_dom(f"{origin}/index.html", tmp_path / "profile")
    assert f"status=200 id={credit_id} contract=request=pass; response=pass" in dom


def test_an_origin_outside_the_allowed_list_is_blocked(tmp_path, page_server):
    site, origin = page_server
    server = SandboxProcess(tmp_path / "strict", "--cors-origin", "http://app.example.test")
    try:
        business_id, credit_id = a_credit(server.base_url)
        write_page(site, server.base_url, business_id, credit_id)
        dom = dump_dom(f"{origin}/index.html", tmp_path / "profile")
        assert "failed: TypeError" in dom
        # The allowed origin gets its preflight answered.
        preflight = httpx.options(server.base_url + credits_path(business_id, credit_id), headers={
            "Origin": "http://app.example.test", "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type, prefer, x-sandbox-namespace"})
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "http://app.example.test"
    finally:
        server.stop()


def test_swagger_ui_renders_every_operation_with_bearer_auth(sandbox, tmp_path):
    dom = dump_dom(f"{sandbox.base_url}/ui/", tmp_path / "profile")
    assert "swagger-ui" in dom
    for method, path in [("get", "/v1/businesses/{businessId}/invoices/customer-credits"),
                         ("post", "/v1/businesses/{businessId}/invoices/customer-credits"),
                         ("get", "/v1/businesses/{businessId}/invoices/customer-credits/{customerCreditId}"),
                         ("patch", "/v1/businesses/{businessId}/invoices/customer-credits/{customerCreditId}"),
                         ("delete", "/v1/businesses/{businessId}/invoices/customer-credits/{customerCreditId}")]:
        assert f"opblock-{method}" in dom and path.replace("{", "").replace("}", "") in dom.replace("\u200b", "").replace("{", "").replace("}", ""), (method, path)
    assert "authorize" in dom.lower()
