"""Test support: run the real sandbox as a process and check every exchange with it.

`SandboxProcess` starts the installed `layer-sandbox` console script (from a scratch directory,
so that nothing is read from the checkout by accident) on a loopback port of the kernel's choosing and waits for
`/__sandbox/health`. `ContractCheck` re-validates, in the test process, every `/v1` response the
tests receive against openapi.yaml with openapi-core, independently of what the sandbox reports.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "openapi.yaml"
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CREDITS = "/v1/businesses/{business}/invoices/customer-credits"


def share_tls_context() -> None:
    """Every httpx client the tests make (each `httpx.get(...)` makes one) builds a TLS context,
    loading the whole CA bundle: ~20 ms, for clients that only ever speak plain HTTP to
    127.0.0.1, hundreds of times a run. The tests share one context instead. (A test-suite
    shortcut into httpx's transport module; left alone where that module differs.)"""
    import functools

    try:
        from httpx._transports import default
    except ImportError:
        return
    make = getattr(default, "create_ssl_context", None)
    if make is None or getattr(make, "shared", False):
        return
    shared = functools.lru_cache(maxsize=None)(lambda trust_env: make(verify=True, cert=None, trust_env=trust_env))

    def create_ssl_context(verify=True, cert=None, trust_env=True, **kwargs):
        if verify is True and cert is None and not kwargs:
            return shared(trust_env)
        return make(verify=verify, cert=cert, trust_env=trust_env, **kwargs)

    create_ssl_context.shared = True
    default.create_ssl_context = create_ssl_context


def credits_path(business_id: str, credit_id: str | None = None) -> str:
    path = CREDITS.format(business=business_id)
    return path if credit_id is None else f"{path}/{credit_id}"


def line(account: dict, amount: int = 1000, **extra) -> dict:
    return {"amount": amount, "revenue_account_identifier": {"type": "AccountId", "id": account["id"]}, **extra}


def stable_line(stable_name: str, amount: int = 1000, **extra) -> dict:
    return {
        "amount": amount,
        "revenue_account_identifier": {"type": "StableName", "stable_name": stable_name},
        **extra,
    }


def customer_with_invoices(business: dict, minimum: int = 1) -> tuple[dict, list[dict]]:
    """A seeded customer with at least `minimum` open invoices (largest open balance first)."""
    for customer in business["customers"]:
        invoices = sorted(
            (i for i in business["invoices"] if i["customer_id"] == customer["id"] and i["outstanding_balance"] > 0),
            key=lambda i: -i["outstanding_balance"],
        )
        if len(invoices) >= minimum:
            return customer, invoices
    raise AssertionError("the seed has no customer with enough open invoices")


def account(business: dict, stable_name: str) -> dict:
    return next(a for a in business["ledger_accounts"] if a["stable_name"] == stable_name)


def copy_of_repository(destination: Path) -> Path:
    """The repository's files as a clone would have them (tracked, and new ones not ignored; no
    venv, no node_modules): for what builds or installs from a checkout, away from this one."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, destination / name)
    return destination


def sandbox_command() -> list[str]:
    script = Path(sys.executable).with_name("layer-sandbox")
    if script.exists():
        return [str(script)]
    found = shutil.which("layer-sandbox")
    return [found] if found else [sys.executable, "-m", "layer_sandbox"]


def unused_address() -> tuple[socket.socket, str]:
    """A loopback URL nothing answers on (connections are refused), held for as long as the
    returned socket stays open: bound, never listening, so no other process can take the port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


class SandboxProcess:
    """One running sandbox; `stdout`/`stderr` hold what it printed once it is stopped.

    It listens on a port the kernel picks (`--port 0`) and says which one on its first line: a port
    found free here and handed over could be taken by someone else before the sandbox binds it."""

    def __init__(self, workdir: Path, *args: str, env: dict | None = None,
                 command: list[str] | None = None, port_via_env: bool = False, subcommand: str | None = None):
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self._out = tempfile.NamedTemporaryFile("w+", dir=workdir, prefix="sandbox-", suffix=".out", delete=False)
        self._err = open(self._out.name.removesuffix(".out") + ".err", "w+")
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if port_via_env:
            full_env["LAYER_SANDBOX_PORT"] = "0"
            port_args = []
        else:
            port_args = ["--port", "0"]
        self.process = subprocess.Popen(
            (command or sandbox_command()) + ([subcommand] if subcommand else []) + port_args + list(args),
            cwd=workdir, stdout=self._out, stderr=self._err, env=full_env,
        )
        self.port = self._announced_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.wait_healthy()

    def _announced_port(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"listening on http://[^\s]+:(\d+)", Path(self._out.name).read_text())
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"sandbox exited with {self.process.returncode}: {self.stderr}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sandbox did not say where it listens within {timeout}s: {self.stderr}")

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sandbox exited with {self.process.returncode}: {self.stderr}")
            try:
                if httpx.get(f"{self.base_url}/__sandbox/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sandbox not healthy within {timeout}s: {self.stderr}")

    @property
    def stdout(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return Path(self._out.name).read_text()

    @property
    def stderr(self) -> str:
        if not self._err.closed:
            self._err.flush()
        return Path(self._err.name).read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()
        self._err.close()


class _Request:
    def __init__(self, request: httpx.Request) -> None:
        url = urlsplit(str(request.url))
        self.host_url = f"{url.scheme}://{url.netloc}"
        self.path = request.url.path
        self.method = request.method.lower()
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
        )
        self.content_type = request.headers.get("content-type", "").lower()
        self.body = request.content or None


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.headers = Headers(list(response.headers.items()))
        self.content_type = response.headers.get("content-type", "").lower()
        self.data = response.content


class ContractCheck:
    """openapi-core in the test process, on a spec given as a dict (ours, or a reverted copy)."""

    def __init__(self, spec: dict) -> None:
        self.openapi = OpenAPI.from_dict(spec)

    @classmethod
    def ours(cls) -> "ContractCheck":
        return cls(load_spec())

    def request_errors(self, request: httpx.Request) -> list[str]:
        return [_describe(e) for e in self.openapi.request_validator.iter_errors(_Request(request))]

    def response_errors(self, response: httpx.Response) -> list[str]:
        return [
            _describe(e)
            for e in self.openapi.response_validator.iter_errors(_Request(response.request), _Response(response))
        ]


def _describe(error: BaseException) -> str:
    text = str(error)
    cause = error.__cause__
    while cause is not None:
        text += f" <- {cause}"
        for inner in getattr(cause, "schema_errors", []) or []:
            text += f" [{'/'.join(map(str, inner.absolute_path))}: {inner.message}]"
        cause = cause.__cause__
    return text


def load_spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


class Checked:
    """Counts what the suite checked: every /v1 response is validated here and by the sandbox."""

    checked = 0
    violations_expected = 0
    figures: list[str] = []  # what a test tried and what held, printed at the end of the run


def report(line: str) -> None:
    """A figure for the end-of-run summary (how many cases were tried, how many requests made)."""
    Checked.figures.append(line)


def checking_client(base_url: str, check: ContractCheck, *, headers=AUTH, expect_violation=False) -> httpx.Client:
    """An httpx client that fails the test on any /v1 response that breaks the contract.

    Two independent checks per response: the sandbox's own `X-Sandbox-Contract` report, and
    openapi-core run here on the exchange as received.
    """

    def verify(response: httpx.Response) -> None:
        if not response.request.url.path.startswith(("/v1/", "/oauth2/", "/whoami")):
            return
        response.read()
        report = response.headers.get("x-sandbox-contract")
        if expect_violation:
            Checked.violations_expected += 1
            return
        if report == "request=skipped; response=skipped":
            # Only a path or method outside the contract may go unchecked.
            assert response.status_code in (404, 405), (response.request.url, response.status_code)
            assert response.request.method == "HEAD" or "errors" in response.json()
            return
        assert report is not None and report.endswith("response=pass"), (
            f"{response.request.method} {response.request.url} -> {response.status_code}: "
            f"sandbox reports {report!r}: {response.text[:500]}"
        )
        errors = check.response_errors(response)
        assert not errors, f"{response.request.method} {response.request.url}: {errors}"
        Checked.checked += 1

    return httpx.Client(base_url=base_url, headers=headers, timeout=10.0,
                        event_hooks={"response": [verify]})
