"""Graceful shutdown (issue 6, point 6): SIGTERM lets in-flight requests finish within
--shutdown-grace, saves --state-file, and exits 0; a request slower than the grace is cut off
and the exit is still clean and saved.

In-flight requests are made slow with `Prefer: delay=...`, which the sandbox applies after the
handler ran: the write is made, its answer waits.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time

import httpx

from support import ContractCheck, SandboxProcess, credits_path, stable_line

AUTH = {"Authorization": "Bearer t"}


def _body(business: dict, external_id: str) -> dict:
    return {"customer_id": business["customers"][0]["id"], "external_id": external_id, "memo": f"in flight {external_id}",
            "line_items": [stable_line("SALES", 700)]}


def _in_flight(results: dict, key: str, method: str, url: str, **kwargs) -> threading.Thread:
    def call() -> None:
        try:
            results[key] = httpx.request(method, url, timeout=60, **kwargs)
        except httpx.TransportError as exc:
            results[key] = exc

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def _wait_until(condition, what: str, timeout: float = 30.0) -> None:
    """Poll the sandbox instead of sleeping: a loaded machine may take any time to get there."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.02)


def _refuses_new_connections(base_url: str) -> bool:
    try:
        httpx.get(f"{base_url}/__sandbox/health", timeout=1)
    except httpx.TransportError:
        return True
    return False


def _saved_external_ids(state_file) -> set[str]:
    document = json.loads(state_file.read_bytes())
    return {c["external_id"] for b in document["namespaces"]["default"]["businesses"]
            for c in b["customer_credits"] if c.get("external_id")}


def _made(path: str, external_id: str) -> bool:
    """Whether the write of an in-flight create is in: its answer waits, the credit is there."""
    found = httpx.get(path, params={"memo": f"in flight {external_id}"}, headers=AUTH).json()["data"]
    return any(credit["external_id"] == external_id for credit in found)


def test_sigterm_finishes_in_flight_requests_saves_and_exits_0(tmp_path):
    state_file = tmp_path / "state.json"
    server = SandboxProcess(tmp_path, "--state-file", str(state_file), "--shutdown-grace", "30")
    business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
    path = f"{server.base_url}{credits_path(business['id'])}"
    seeded = httpx.get(path, params={"limit": 1}, headers=AUTH).json()["data"][0]
    slow = {**AUTH, "Prefer": "delay=6000"}
    results: dict = {}
    threads = [
        _in_flight(results, "create", "POST", path, json=_body(business, "made-during-shutdown"), headers=slow),
        _in_flight(results, "update", "PATCH", f"{path}/{seeded['id']}", json={"memo": "patched in flight"},
                   headers=slow),
    ]
    # Both requests are in: their writes are made and their answers wait 6 s.
    _wait_until(lambda: _made(path, "made-during-shutdown"), "the in-flight create reached the sandbox")
    _wait_until(lambda: httpx.get(f"{path}/{seeded['id']}", headers=AUTH).json()["data"]["memo"]
                == "patched in flight", "the in-flight update reached the sandbox")
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    # While they finish, the sandbox takes no new connection.
    _wait_until(lambda: _refuses_new_connections(server.base_url), "new connections refused after SIGTERM",
                timeout=3)
    assert all(thread.is_alive() for thread in threads), "the in-flight answers did not wait out their delay"
    for thread in threads:
        thread.join(timeout=30)
    assert server.process.wait(timeout=30) == 0
    took = time.monotonic() - signalled
    server.stop()

    assert results["create"].status_code == 201, results["create"]
    assert results["create"].json()["data"]["external_id"] == "made-during-shutdown"
    assert results["update"].status_code == 200, results["update"]
    assert results["update"].json()["data"]["memo"] == "patched in flight"
    assert took < 30, f"shutdown took {took:.1f} s"
    assert "made-during-shutdown" in _saved_external_ids(state_file)
    assert "Traceback" not in server.stderr


def test_when_the_grace_runs_out_a_delayed_answer_goes_at_once(tmp_path):
    """A forced delay longer than the grace: the answer was ready (the write made), so it is sent
    when the grace runs out, not replaced by an error; the exit is clean and the write saved."""
    state_file = tmp_path / "state.json"
    server = SandboxProcess(tmp_path, "--state-file", str(state_file), "--shutdown-grace", "1")
    business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
    path = f"{server.base_url}{credits_path(business['id'])}"
    results: dict = {}
    thread = _in_flight(results, "create", "POST", path, json=_body(business, "slower-than-grace"),
                        headers={**AUTH, "Prefer": "delay=30000"})
    _wait_until(lambda: _made(path, "slower-than-grace"), "the in-flight create reached the sandbox")
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=20) == 0
    took = time.monotonic() - signalled
    thread.join(timeout=30)
    server.stop()

    assert took < 10, f"the grace of 1 s was not kept: shutdown took {took:.1f} s"
    assert results["create"].status_code == 201, results["create"]
    assert results["create"].json()["data"]["external_id"] == "slower-than-grace"
    assert "slower-than-grace" in _saved_external_ids(state_file)
    assert "Traceback" not in server.stderr


def test_when_the_grace_runs_out_a_request_still_arriving_gets_a_layer_503_and_changes_nothing(tmp_path):
    state_file = tmp_path / "state.json"
    server = SandboxProcess(tmp_path, "--state-file", str(state_file), "--shutdown-grace", "1",
                            "--client-timeout", "60")
    business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
    body = json.dumps(_body(business, "never-finished")).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(f"POST {credits_path(business['id'])} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:30])
    # A request answered on another connection after ours was sent means the sandbox has read our
    # head: its one event loop saw our bytes waiting no later than the other request's.
    assert httpx.get(f"{server.base_url}/__sandbox/health", timeout=30).status_code == 200
    server.process.send_signal(signal.SIGTERM)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    assert server.process.wait(timeout=20) == 0
    server.stop()

    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), answer[:300]
    error = json.loads(payload)["errors"][0]
    assert error["type"] == "ServiceUnavailable" and "not processed" in error["description"]
    assert "error_enum" not in error  # Layer sends error_enum on 4xx only
    assert re.search(rb"(?im)^retry-after: *[1-9]", head)
    # The body is one openapi.yaml declares for a 503 of this operation.
    sent = httpx.Request("POST", f"{server.base_url}{credits_path(business['id'])}", headers=AUTH, json={})
    answered = httpx.Response(503, headers={"content-type": "application/json"}, content=payload, request=sent)
    assert ContractCheck.ours().response_errors(answered) == []
    assert "never-finished" not in _saved_external_ids(state_file)
    assert "Traceback" not in server.stderr
