"""CORS and Swagger UI in a real headless Chromium (Debian's `chromium`, installed by .ci/run)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
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


# What Layer's React SDK (@layerfi/components 0.1.144, tests/sdk) sends: every call carries the
# bearer token, Layer-Locale and Layer-React-Version (authenticatedHttp.ts); GETs add
# `Content-Type: application/json`, writes `Cache-Control: no-cache` as well.
SDK_HEADERS = ["Authorization", "Content-Type", "Layer-Locale", "Layer-React-Version", "Cache-Control"]

SCOPED_PAGE = """<!doctype html><html><body><p id="own">pending</p><p id="other">pending</p>
<p id="unknown">pending</p><p id="write">pending</p><p id="forged">pending</p><script>
const api = __API__, business = __BUSINESS__, other = __OTHER__, token = __TOKEN__;
const unknown = "00000000-0000-4000-8000-000000000000";
const sdk = t => ({"Authorization": "Bearer " + t, "Content-Type": "application/json",
                   "Layer-Locale": "en-US", "Layer-React-Version": "0.1.144"});
function show(id, url, init) {
  return fetch(url, init).then(r => r.json().then(j => {
    const rows = Array.isArray(j.data) ? j.data : [];
    document.getElementById(id).textContent = id + ": status=" + r.status
      + " rows=" + rows.length
      + " businesses=" + [...new Set(rows.map(i => i.business_id))].join(",")
      + " error=" + (j.errors ? j.errors[0].type : "none")
      + " contract=" + r.headers.get("X-Sandbox-Contract");
  })).catch(e => { document.getElementById(id).textContent = id + ": failed: " + e; });
}
show("own", api + "/v1/businesses/" + business + "/invoices?limit=100", {headers: sdk(token)})
  .then(() => show("other", api + "/v1/businesses/" + other + "/invoices", {headers: sdk(token)}))
  .then(() => show("unknown", api + "/v1/businesses/" + unknown + "/invoices", {headers: sdk(token)}))
  .then(() => show("write", api + "/v1/businesses/" + business + "/customers", {
      method: "POST", headers: {...sdk(token), "Cache-Control": "no-cache"},
      body: JSON.stringify({external_id: "browser-1", individual_name: "Browser Customer"})}))
  .then(() => show("forged", api + "/v1/businesses/" + business + "/invoices", {headers: sdk("made-up-token")}));
</script></body></html>"""


def business_token(base_url: str, business_id: str, client=("browser-app", "s3cret")) -> str:
    """A business-scoped token, as a backend mints one for its browser app: a client token from
    the sandbox's authorization server, then the business's auth-token route."""
    answer = httpx.post(f"{base_url}/oauth2/token", auth=client,
                        data={"grant_type": "client_credentials", "scope": "https://sandbox.layerfi.com/sandbox"})
    assert answer.status_code == 200, answer.text
    minted = httpx.post(f"{base_url}/v1/businesses/{business_id}/auth-token", json={"session_duration": 900},
                        headers={"Authorization": f"Bearer {answer.json()['access_token']}"})
    assert minted.status_code == 200 and minted.json()["expires_in"] == 900, minted.text
    return minted.json()["access_token"]


def test_a_page_with_a_business_scoped_token_reaches_its_business_only(tmp_path, page_server):
    """Cross-origin, with the headers Layer's React SDK sends, on a sandbox that takes only the
    tokens it issued (--client): the business's invoices; for another business the 404 an unknown
    one gets; a write with the SDK's write headers; and a made-up token refused."""
    site, origin = page_server
    server = SandboxProcess(tmp_path / "clients", "--client", "browser-app:s3cret")
    try:
        own, other = (b["id"] for b in httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][:2])
        token = business_token(server.base_url, own)
        invoices = httpx.get(f"{server.base_url}/v1/businesses/{own}/invoices?limit=100",
                             headers={"Authorization": f"Bearer {token}"}).json()["data"]
        assert invoices
        page = SCOPED_PAGE
        for name, value in {"API": server.base_url, "BUSINESS": own, "OTHER": other, "TOKEN": token}.items():
            page = page.replace(f"__{name}__", json.dumps(value))
        (site / "scoped.html").write_text(page)
        dom = dump_dom(f"{origin}/scoped.html", tmp_path / "profile")
        passed = "contract=request=pass; response=pass"
        assert f"own: status=200 rows={len(invoices)} businesses={own} error=none {passed}" in dom, dom
        # Another business answers as one that does not exist would.
        other_line = re.search(r"other: (status=404 rows=0 businesses= error=NotFound [^<]*)<", dom)
        assert other_line, dom
        assert f"unknown: {other_line.group(1)}<" in dom, dom
        assert f"write: status=201 rows=0 businesses= error=none {passed}" in dom, dom
        assert "forged: status=401 rows=0 businesses= error=Unauthorized" in dom, dom
        # What the page wrote is there, in its business.
        customers = httpx.get(f"{server.base_url}/v1/businesses/{own}/customers?q=browser-1",
                              headers={"Authorization": f"Bearer {token}"}).json()["data"]
        assert [c["individual_name"] for c in customers] == ["Browser Customer"]
    finally:
        server.stop()


@pytest.mark.parametrize("method", ["GET", "POST", "PATCH", "DELETE", "token"])
def test_a_preflight_allows_the_headers_layers_react_sdk_sends(sandbox, page_server, method):
    """Each of the SDK's calls, and (`token`) its request to the auth URL when given an app id and
    secret instead of a business token: Basic credentials and a form body, from the browser."""
    _, origin = page_server
    business_id, credit_id = a_credit(sandbox.base_url)
    url = sandbox.base_url + credits_path(business_id, credit_id)
    if method == "token":
        url, method = sandbox.base_url + "/oauth2/token", "POST"
    preflight = httpx.options(url, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": ", ".join(h.lower() for h in SDK_HEADERS)})
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == origin
    assert method in preflight.headers["access-control-allow-methods"].split(", ")
    allowed = {h.strip().lower() for h in preflight.headers["access-control-allow-headers"].split(",")}
    assert {h.lower() for h in SDK_HEADERS} <= allowed
