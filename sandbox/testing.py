"""Using the sandbox from another service's tests: a background server and a handle on it.

`BackgroundSandbox` runs the sandbox in a thread of the test process on a loopback port the kernel picks.
`SandboxHandle` is what a test gets: `base_url` points at the test's own namespace
(`http://127.0.0.1:PORT/__ns/NAME`), so the code under test needs only a base URL; `control`
steers that namespace; `assert_requests` checks what the code under test sent, in the spirit of
WireMock's `verify`; `contract_violations` lists the requests that broke the contract.
"""

from __future__ import annotations

import fnmatch
import threading
import time
from dataclasses import dataclass

import httpx

from .config import Config


class BackgroundSandbox:
    """The sandbox app served by uvicorn in a daemon thread (no signals, no stdout).

    Its socket is bound here, on port 0 unless one is given, so the port is the kernel's pick and
    held from the start: parallel test runs (pytest-xdist, several CI jobs) never race for one."""

    def __init__(self, **config) -> None:
        import uvicorn

        from .app import create_app
        from .serving import listening_socket, uvicorn_options

        config.setdefault("host", "127.0.0.1")
        config.setdefault("port", 0)
        self._socket = listening_socket(config["host"], config["port"])
        config["port"] = self._socket.getsockname()[1]
        self.config = Config(**config)
        shown_host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        self.url = f"http://{shown_host}:{self.config.port}"
        try:
            self.app = create_app(self.config)
        except BaseException:
            self._socket.close()
            raise
        self._server = uvicorn.Server(uvicorn.Config(self.app, **uvicorn_options(self.config)))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="layer-sandbox", daemon=True)

    def start(self, timeout: float = 30.0) -> BackgroundSandbox:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"layer-sandbox did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def handle(self, namespace: str, *, seed: int | None = None, scenario: str | None = None) -> SandboxHandle:
        """A freshly reset namespace of this server."""
        handle = SandboxHandle(self.url, namespace)
        handle.reset(seed=seed, scenario=scenario)
        return handle


class ContractViolation(AssertionError):
    """The code under test sent requests that break Layer's contract."""


@dataclass
class SandboxHandle:
    root_url: str
    namespace: str

    def __post_init__(self) -> None:
        self.base_url = f"{self.root_url}/__ns/{self.namespace}"
        self.control = httpx.Client(base_url=f"{self.root_url}/__sandbox",
                                    headers={"X-Sandbox-Namespace": self.namespace}, timeout=30.0)

    def _data(self, response: httpx.Response):
        if response.status_code >= 400:
            raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
        return response.json()["data"]

    # -------------------------------------------------------------- steering

    def reset(self, *, seed: int | None = None, scenario: str | None = None) -> dict:
        body = {k: v for k, v in {"seed": seed, "scenario": scenario}.items() if v is not None}
        result = self._data(self.control.post("/reset", json=body))
        self.control.delete("/requests")
        return result

    def businesses(self) -> list[dict]:
        return self._data(self.control.get("/businesses"))

    def add_rule(self, **rule) -> dict:
        return self._data(self.control.post("/rules", json=rule))

    def freeze_clock(self, at: str) -> dict:
        return self._data(self.control.post("/clock", json={"frozen_at": at}))

    def state(self) -> dict:
        return self._data(self.control.get("/state"))

    # -------------------------------------------------------------- verifying

    def requests(self, **filters) -> list[dict]:
        """Journal entries of this namespace (filters as `GET /__sandbox/requests` takes them)."""
        return self._data(self.control.get("/requests", params={k: v for k, v in filters.items() if v is not None}))

    def assert_requests(self, method: str | None = None, path: str | None = None, *, count: int | None = None,
                        status: int | None = None) -> list[dict]:
        """Check how many requests matched `path`: the whole path, or a glob (`*/customer-credits/*`).

        Without `count`, at least one must match. Returns the matching entries."""
        entries = self.requests(method=method, status=status)
        matching = [e for e in entries if path is None or fnmatch.fnmatchcase(e["path"], path)]
        if (count is None and not matching) or (count is not None and len(matching) != count):
            wanted = f"{'exactly ' + str(count) if count is not None else 'at least one'} " \
                     f"{method or 'any'} request{'s' if count != 1 else ''} to {path or 'any path'}" \
                     + (f" answered {status}" if status else "")
            made = "\n".join(f"  {e['method']} {e['path']}{'?' + e['query'] if e['query'] else ''} -> {e['status']}"
                             for e in entries) or "  (none)"
            raise AssertionError(f"expected {wanted}, found {len(matching)}; requests made:\n{made}")
        return matching

    def contract_violations(self) -> list[dict]:
        """Requests that broke the contract: invalid ones, and calls to routes Layer does not have."""
        return [e for e in self.requests() if e["request_validation"] == "fail" or e["operation_id"] is None]

    def violation_report(self) -> str | None:
        """A readable report of the requests that broke the contract, or None."""
        entries = self.requests()
        violations = [e for e in entries if e["request_validation"] == "fail" or e["operation_id"] is None]
        broken_responses = [e for e in entries if e["response_validation"] == "fail"]
        if not violations and not broken_responses:
            return None
        lines = [f"{len(violations)} request(s) broke Layer's contract (openapi.yaml):" if violations
                 else "The sandbox's own responses broke the contract (a sandbox bug):"]
        for entry in violations:
            lines.append(f"- {entry['method']} {entry['path']}{'?' + entry['query'] if entry['query'] else ''}"
                         f" -> {entry['status']}")
            lines.append(f"    operation: {entry['operation_id'] or '(none: no such route)'}")
            if entry.get("field"):
                lines.append(f"    field: {entry['field']}")
            lines.append(f"    problem: {entry['error']}")
        for entry in broken_responses:
            lines.append(f"- the sandbox's own response to {entry['method']} {entry['path']} broke the contract: "
                         f"{entry['error']}")
        return "\n".join(lines)

    def close(self) -> None:
        self.control.close()

    def drop(self) -> None:
        """Delete this namespace (and its journal entries) from the server, then close."""
        try:
            self.control.delete(f"{self.root_url}/__sandbox/namespaces/{self.namespace}")
        finally:
            self.close()
