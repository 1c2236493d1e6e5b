"""Graceful shutdown (issue 6, point 6): SIGTERM lets in-flight requests finish within
--shutdown-grace, saves --state-file, and exits 0; a request slower than the grace is cut off
and the exit is still clean and saved.

In-flight requests are made slow with `Prefer: delay=...`, which the sandbox applies after the
handler ran: the write is made, its answer waits.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time

import httpx

from support import SandboxProcess, credits_path, stable_line

AUTH = {"Authorization": "Bearer t"}


def _body(business: dict, external_id: str) -> dict:
    return {"customer_id": business["customers"][0]["id"], "external_id": external_id, "memo": "in flight",
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


def _saved_external_ids(state_file) -> set[str]:
    document = json.loads(state_file.read_bytes())
    return {c["external_id"] for b in document["namespaces"]["default"]["businesses"]
            for c in b["customer_credits"] if c.get("external_id")}


def test_sigterm_finishes_in_flight_requests_saves_and_exits_0(tmp_path):
    state_file = tmp_path / "state.json"
    server = SandboxProcess(tmp_path, "--state-file", str(state_file), "--shutdown-grace", "20")
    business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
    path = f"{server.base_url}{credits_path(business['id'])}"
    slow = {**AUTH, "Prefer": "delay=3000"}
    results: dict = {}
    threads = [
        _in_flight(results, "create", "POST", path, json=_body(business, "made-during-shutdown"), headers=slow),
        _in_flight(results, "list", "GET", path, params={"limit": 50}, headers=slow),
    ]
    time.sleep(0.5)  # both requests are in (the sandbox answers in milliseconds), and waiting
    signalled = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # While they finish (their answers wait 3 s), the sandbox takes no new connection.
    assert all(thread.is_alive() for thread in threads)
    try:
        httpx.get(f"{server.base_url}/__sandbox/health", timeout=2)
        refused = False
    except httpx.TransportError:
        refused = True
    assert refused, "a new connection was accepted during shutdown"
    for thread in threads:
        thread.join(timeout=30)
    assert server.process.wait(timeout=30) == 0
    took = time.monotonic() - signalled
    server.stop()

    assert results["create"].status_code == 201, results["create"]
    assert results["create"].json()["data"]["external_id"] == "made-during-shutdown"
    assert results["list"].status_code == 200 and results["list"].json()["data"]
    assert took < 20, f"shutdown took {took:.1f} s"
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
    time.sleep(0.5)
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
    time.sleep(0.5)
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
    assert error["error_enum"] == "ServiceUnavailable" and "not processed" in error["description"]
    assert "never-finished" not in _saved_external_ids(state_file)
    assert "Traceback" not in server.stderr
