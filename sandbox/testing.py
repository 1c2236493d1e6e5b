"""Using the sandbox from another service's tests: a sandbox process, and a handle on a namespace.

Nothing here imports the server (connexion, Flask, openapi-core) or anything outside the
standard library, and nothing here warns: a consumer's test process loads this module, and
its own dependency versions and `-W error` must stay its own. The sandbox runs in its own process:
`SandboxProcess` starts the `layer-sandbox` console script on a port the kernel picks, or
`RunningSandbox` uses one already running (a CI service container).

`SandboxHandle` is what a test gets: `base_url` points at the test's own namespace
(`http://127.0.0.1:PORT/__ns/NAME`), so the code under test needs only a base URL; the
namespace is made on first use, a copy of the seeded scenario; `assert_requests` checks what the
code under test sent, in the spirit of WireMock's `verify`; `violation_report` says which
requests broke the contract.
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

NAMESPACE_HEADER = "X-Sandbox-Namespace"


class SandboxUnavailable(RuntimeError):
    """No sandbox to test against: it could not be started or reached."""


class ControlError(RuntimeError):
    """A control route answered with an error."""


class _Answer:
    """A control route's answer: status and JSON body."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.content = body

    def json(self):
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class ControlClient:
    """JSON over one kept-alive HTTP/1.1 connection to a sandbox (http.client: no third-party
    client, and about a fifth of the cost of one per call; a test makes two or three a test)."""

    def __init__(self, root_url: str, admin_token: str | None = None, timeout: float = 30.0) -> None:
        parts = urlsplit(root_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SandboxUnavailable(f"{root_url!r} is not an http:// or https:// URL")
        self.root_url = root_url.rstrip("/")
        self._prefix = parts.path.rstrip("/")
        self._connect = lambda: (http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection)(
            parts.hostname, parts.port, timeout=timeout)
        self._headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
        self._local = threading.local()

    def request(self, method: str, path: str, *, body=None, params: dict | None = None,
                namespace: str | None = None) -> _Answer:
        url = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        headers = dict(self._headers)
        if namespace is not None:
            headers[NAMESPACE_HEADER] = namespace
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        kept = getattr(self._local, "connection", None)
        connection = kept or self._connect()
        self._local.connection = connection
        try:
            return self._send(connection, method, url, data, headers)
        except _GONE:
            if kept is None:
                raise SandboxUnavailable(f"{method} {self.root_url}{url}: the connection was refused or closed") from None
        except (http.client.HTTPException, OSError) as exc:  # a timeout may follow a request that arrived:
            self._drop()                                    # never sent twice
            raise SandboxUnavailable(f"{method} {self.root_url}{url}: {exc}") from None
        # A kept-alive connection the sandbox had closed before the request reached it: once more,
        # on a new one.
        self._drop()
        connection = self._local.connection = self._connect()
        try:
            return self._send(connection, method, url, data, headers)
        except (http.client.HTTPException, OSError) as exc:
            self._drop()
            raise SandboxUnavailable(f"{method} {self.root_url}{url}: {exc}") from None

    @staticmethod
    def _send(connection, method: str, url: str, data: bytes | None, headers: dict) -> _Answer:
        connection.request(method, url, body=data, headers=headers)
        response = connection.getresponse()
        return _Answer(response.status, response.read())

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None

    def data(self, method: str, path: str, **kwargs):
        """The `data` of a successful answer; ControlError otherwise."""
        answer = self.request(method, path, **kwargs)
        if answer.status_code >= 400:
            raise ControlError(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json()["data"]

    def close(self) -> None:
        self._drop()


# What a kept-alive connection the server closed while it was idle looks like: the request never
# reached the server, so it can be sent again. A new connection refused is no sandbox at all.
_GONE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionRefusedError)


def sandbox_command() -> list[str]:
    """The `layer-sandbox` console script beside this interpreter, else on PATH."""
    script = Path(sys.executable).with_name("layer-sandbox")
    if script.exists():
        return [str(script)]
    found = shutil.which("layer-sandbox")
    if found:
        return [found]
    raise SandboxUnavailable(
        "no layer-sandbox to start: install it (pip install layer-sandbox), name one with "
        "--layer-sandbox-command (LAYER_SANDBOX_COMMAND), or use a running sandbox with "
        "--layer-sandbox-url (LAYER_SANDBOX_URL)")


class RunningSandbox:
    """A sandbox started elsewhere (a CI service container, a developer's terminal)."""

    def __init__(self, url: str, admin_token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.control = ControlClient(self.url, admin_token)
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                answer = self.control.request("GET", "/__sandbox/health")
                if answer.status_code == 200:
                    self.health = answer.json()["data"]
                    return self.health
                last = f"health answered {answer.status_code}"
            except SandboxUnavailable as exc:
                last = str(exc)
            if time.monotonic() > deadline:
                raise SandboxUnavailable(f"no layer-sandbox answers at {self.url} ({last})")
            time.sleep(0.05)

    def handle(self, namespace: str) -> SandboxHandle:
        return SandboxHandle(self.url, namespace, self.control)

    def stop(self) -> None:
        self.control.close()


class SandboxProcess(RunningSandbox):
    """`layer-sandbox` started for this test session, on a loopback port the kernel picks; what
    it prints goes to files (its log never mixes with the tests' output), and it is stopped
    (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, args: list[str] = (), command: list[str] | str | None = None,
                 admin_token: str | None = None, timeout: float = 60.0, environment: dict | None = None) -> None:
        if isinstance(command, str):
            command = shlex.split(command)
        self.command = list(command or sandbox_command()) + ["--host", "127.0.0.1", "--port", "0", *args]
        self.log_dir = Path(tempfile.mkdtemp(prefix="layer-sandbox-"))
        self._out = open(self.log_dir / "stdout.log", "w+b")
        self._err = open(self.log_dir / "stderr.log", "w+b")
        try:
            self.process = subprocess.Popen(self.command, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL,
                                            env={**(os.environ if environment is None else environment),
                                                 "PYTHONUNBUFFERED": "1"})
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start {shlex.join(self.command)}: {exc}") from None
        deadline = time.monotonic() + timeout
        try:
            port = None
            while port is None:
                found = re.search(rb"listening on http://[^\s]+:(\d+)", (self.log_dir / "stdout.log").read_bytes())
                if found:
                    port = int(found.group(1))
                elif self.process.poll() is not None or time.monotonic() > deadline:
                    raise SandboxUnavailable(f"{shlex.join(self.command)} did not start:\n{self.output()}")
                else:
                    time.sleep(0.02)
            super().__init__(f"http://127.0.0.1:{port}", admin_token, timeout=max(1.0, deadline - time.monotonic()))
        except BaseException:  # never leave a sandbox running that nobody will stop
            self.stop()
            raise

    def output(self) -> str:
        """What the sandbox printed (its log), for a report when something went wrong."""
        text = b""
        for name in ("stdout.log", "stderr.log"):
            path = self.log_dir / name
            text += path.read_bytes() if path.exists() else b""
        return text.decode("utf-8", "replace")[-4000:]

    def stop(self) -> None:
        if hasattr(self, "control"):
            super().stop()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()
        self._err.close()
        shutil.rmtree(self.log_dir, ignore_errors=True)


def json_subset(expected, actual) -> bool:
    """Whether `actual` holds `expected`: every member of an expected object (recursively), lists
    of the same length whose items hold the expected ones in order, equal scalars."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and json_subset(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(actual) == len(expected)
                and all(json_subset(e, a) for e, a in zip(expected, actual)))
    if isinstance(expected, bool) or isinstance(actual, bool):  # True is not 1 in JSON
        return type(expected) is type(actual) and expected == actual
    return expected == actual


class SandboxHandle:
    """One namespace of a sandbox, for one test; made on first use, a fresh copy of the seeded
    scenario (or made at once by `reset`, with another seed or scenario)."""

    def __init__(self, root_url: str, namespace: str, control: ControlClient | None = None) -> None:
        self.root_url = root_url.rstrip("/")
        self.namespace = namespace
        self.base_url = f"{self.root_url}/__ns/{quote(namespace)}"
        self._control = control or ControlClient(self.root_url)
        self._httpx = None
        self.allow_violations = False
        # What this handle did to the namespace, for a pact's provider states (layer_sandbox.pactwriter):
        # each call's kind, what it sent and was answered, and the wall-clock moment just before it
        # was sent, to place it among the journal's entries (their `at`).
        self.calls: list[dict] = []

    def _data(self, method: str, path: str, **kwargs):
        return self._control.data(method, path, namespace=self.namespace, **kwargs)

    def _recorded(self, kind: str, method: str, path: str, body: dict):
        at = _now()
        answer = self._data(method, path, body=body)
        # A copy: the test may change its own dicts afterwards.
        self.calls.append({"kind": kind, "at": at, "body": json.loads(json.dumps(body)), "answer": answer})
        return answer

    @property
    def control(self):
        """An httpx client on `/__sandbox/` for this namespace (httpx imported on first use)."""
        if self._httpx is None:
            import httpx

            self._httpx = httpx.Client(base_url=f"{self.root_url}/__sandbox", timeout=30.0,
                                       headers={NAMESPACE_HEADER: self.namespace, **self._control._headers})
        return self._httpx

    # -------------------------------------------------------------- steering

    def reset(self, *, seed: int | None = None, scenario: str | None = None) -> dict:
        """The namespace, fresh: this seed and scenario, or the sandbox's start-up ones."""
        body = {k: v for k, v in {"seed": seed, "scenario": scenario}.items() if v is not None}
        return self._recorded("reset", "PUT", f"/__sandbox/namespaces/{quote(self.namespace)}", body)

    def health(self) -> dict:
        """What the namespace holds (scenario, seed), or would be made with: asking never makes it."""
        return self._data("GET", "/__sandbox/health")

    def businesses(self) -> list[dict]:
        return self._data("GET", "/__sandbox/businesses")

    def add_fixtures(self, **records) -> dict:
        """Exact records for this test (`customers`, `invoices`, `ledger_accounts`,
        `customer_credits`, with `business` or `business_id`): POST /__sandbox/fixtures, all or
        none. What was added, by kind (ids)."""
        return self._recorded("fixtures", "POST", "/__sandbox/fixtures", records)

    def add_rule(self, **rule) -> dict:
        return self._data("POST", "/__sandbox/rules", body=rule)

    def freeze_clock(self, at: str) -> dict:
        return self._recorded("clock", "POST", "/__sandbox/clock", {"frozen_at": at})

    def state(self) -> dict:
        return self._data("GET", "/__sandbox/state")

    # -------------------------------------------------------------- verifying

    def requests(self, **filters) -> list[dict]:
        """Journal entries of this namespace (filters as `GET /__sandbox/requests` takes them)."""
        return self._data("GET", "/__sandbox/requests", params={k: v for k, v in filters.items() if v is not None})

    def assert_requests(self, method: str | None = None, path: str | None = None, *, count: int | None = None,
                        status: int | None = None, json=None) -> list[dict]:
        """Check how many requests matched: `path` is the whole path or a glob
        (`*/customer-credits/*`); `json` a part of the JSON body they must have sent.

        Without `count`, at least one must match. Returns the matching entries."""
        entries = self.requests(method=method, status=status)
        matching = [e for e in entries if (path is None or fnmatch.fnmatchcase(e["path"], path))
                    and (json is None or json_subset(json, e.get("request_body")))]
        if (count is None and not matching) or (count is not None and len(matching) != count):
            wanted = f"{'exactly ' + str(count) if count is not None else 'at least one'} " \
                     f"{method or 'any'} request{'s' if count != 1 else ''} to {path or 'any path'}" \
                     + (f" answered {status}" if status else "") + (f" with a body holding {json!r}" if json else "")
            made = "\n".join(f"  {e['method']} {e['path']}{'?' + e['query'] if e['query'] else ''} -> {e['status']}"
                             + (f"  {_short(e.get('request_body'))}" if e.get("request_body") is not None else "")
                             for e in entries) or "  (none)"
            dropped = json is not None and any(e.get("bodies_dropped") for e in entries)
            raise AssertionError(f"expected {wanted}, found {len(matching)}; requests made:\n{made}" + (
                "\n(the journal no longer holds the bodies of some of them: see its body budget)" if dropped else ""))
        return matching

    def contract_violations(self) -> list[dict]:
        """Requests that broke the contract (invalid ones, and calls to routes Layer does not
        have) and responses of the sandbox's own that did."""
        return self.requests(contract="violation")

    def violation_report(self) -> str | None:
        """A readable report of the requests that broke the contract, or None."""
        entries = self.contract_violations()
        violations = [e for e in entries if e["request_validation"] == "fail" or e["operation_id"] is None]
        broken_responses = [e for e in entries if e["response_validation"] == "fail"]
        if not violations and not broken_responses:
            return None
        lines = [f"ContractViolation: {len(violations)} request(s) broke Layer's contract (openapi.yaml):"
                 if violations else "ContractViolation: the sandbox's own responses broke the contract (a sandbox bug):"]
        for entry in violations:
            lines.append(f"- {entry['method']} {entry['path']}{'?' + entry['query'] if entry['query'] else ''}"
                         f" -> {entry['status']}")
            lines.append(f"    operation: {entry['operation_id'] or '(none: no such route)'}")
            if entry.get("field"):
                lines.append(f"    field: {entry['field']}")
            lines.append(f"    problem: {entry['error'] or _answered(entry)}")
        for entry in broken_responses:
            lines.append(f"- the sandbox's own response to {entry['method']} {entry['path']} broke the contract: "
                         f"{entry['error']}")
        return "\n".join(lines)

    def close(self) -> None:
        if self._httpx is not None:
            self._httpx.close()
            self._httpx = None

    def drop(self) -> None:
        """Delete this namespace (and its journal entries) from the server, then close. A
        namespace never used was never made: nothing to delete."""
        try:
            answer = self._control.request("DELETE", f"/__sandbox/namespaces/{quote(self.namespace)}")
            if answer.status_code not in (200, 404):
                raise ControlError(f"DELETE namespace {self.namespace}: {answer.status_code} {answer.text}")
        finally:
            self.close()


def _now() -> str:
    """Now, as the journal stamps its entries' `at` (UTC, microseconds), so the two sort together."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _answered(entry: dict) -> str:
    """What a journal entry without a noted error was answered (a route the contract lacks)."""
    errors = entry.get("response_body") if isinstance(entry.get("response_body"), dict) else {}
    described = next((e.get("description") for e in errors.get("errors") or [] if isinstance(e, dict)), None)
    return described or f"answered {entry['status']}"


def _short(body) -> str:
    text = json.dumps(body, separators=(",", ":")) if not isinstance(body, str) else body
    return text if len(text) <= 120 else text[:117] + "..."
