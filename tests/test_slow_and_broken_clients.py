"""Body size limits, slow and broken clients (issue 6, points 2 and 3), against a real process with
small limits: `--max-body-bytes 4096 --client-timeout 2`."""

from __future__ import annotations

import http.client
import json
import socket
import time

import httpx
import pytest

from support import SandboxProcess, credits_path

LIMIT = 4096
TIMEOUT = 2.0  # short to keep the tests quick, long enough that a stalled test process is not cut off
AUTH = {"Authorization": "Bearer t"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = SandboxProcess(tmp_path_factory.mktemp("limits"), "--max-body-bytes", str(LIMIT),
                             "--client-timeout", str(TIMEOUT), "--journal-size", "10000")
    yield process
    process.stop()


@pytest.fixture
def base(server):
    httpx.post(f"{server.base_url}/__sandbox/reset", json={}).raise_for_status()
    return server.base_url


def _business(base: str) -> dict:
    return httpx.get(f"{base}/__sandbox/businesses").json()["data"][0]


def _state(base: str) -> dict:
    document = httpx.get(f"{base}/__sandbox/state").json()
    return {k: v for k, v in document.items() if k not in ("exported_at",)}


def _connect(base: str) -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _status_and_body(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def _create_body(business: dict, memo: str = "x", **extra) -> dict:
    return {"customer_id": business["customers"][0]["id"], "memo": memo, **extra,
            "line_items": [{"amount": 100, "revenue_account_identifier": {"type": "StableName", "stable_name": "SALES"}}]}


@pytest.mark.parametrize("path", ["v1", "/__sandbox/state", "/__sandbox/reset"])
def test_a_body_over_the_limit_gets_413_and_changes_nothing(base, path):
    business = _business(base)
    url = f"{base}{credits_path(business['id'])}" if path == "v1" else f"{base}{path}"
    before = _state(base)
    body = json.dumps(_create_body(business, memo="m" * (LIMIT + 10))).encode()
    method = "PUT" if path == "/__sandbox/state" else "POST"
    response = httpx.request(method, url, content=body, headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["errors"][0]["error_enum"] == "PayloadTooLarge"
    assert response.headers["connection"] == "close"
    assert _state(base) == before


def test_a_chunked_body_over_the_limit_gets_413_too(base):
    business = _business(base)

    def chunks():
        for _ in range(LIMIT // 512 + 2):
            yield b" " * 512

    response = httpx.post(f"{base}{credits_path(business['id'])}", content=chunks(),
                          headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_body_just_under_the_limit_is_read(base):
    business = _business(base)
    body = json.dumps(_create_body(business, memo="m" * 100)).encode()
    assert len(body) < LIMIT
    response = httpx.post(f"{base}{credits_path(business['id'])}", content=body,
                          headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 201


def test_headers_sent_a_byte_at_a_time_are_cut_off_while_others_are_served(base):
    business = _business(base)
    slow = _connect(base)
    request = f"GET {credits_path(business['id'])} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n".encode()
    started = time.monotonic()
    served = []
    closed_after = None
    for index in range(len(request)):
        try:
            slow.sendall(request[index:index + 1])
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - started
            break
        # Another client meanwhile: answered at once, not held up by the slow one.
        if index % 10 == 0:
            served.append(httpx.get(f"{base}/__sandbox/health", timeout=5).status_code)
        time.sleep(0.1)
        if time.monotonic() - started > TIMEOUT * 6:
            break
    answer = _read_all(slow)
    slow.close()
    assert served and set(served) == {200}
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    status, body = _status_and_body(answer)
    assert status == 408 and body["errors"][0]["error_enum"] == "RequestTimeout"
    assert closed_after is None or closed_after < TIMEOUT * 6


def test_a_connection_that_sends_nothing_is_closed(base):
    idle = _connect(base)
    idle.settimeout(TIMEOUT * 8)
    answer = _read_all(idle)
    idle.close()
    assert answer.startswith(b"HTTP/1.1 408")


def test_an_idle_keep_alive_connection_outlives_client_pools(base):
    """Between requests a connection may idle longer than common client pools keep one (httpx 5 s):
    a server that closes it first races the client's next request on it, which then fails."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        used = []
        for turn in range(2):
            if turn:
                time.sleep(6)  # idle, past uvicorn's default of 5 s
            connection.request("GET", "/__sandbox/health")
            response = connection.getresponse()  # RemoteDisconnected if the server closed it
            assert response.status == 200 and json.loads(response.read())["data"]["status"] == "ok"
            used.append(connection.sock.getsockname())
        assert used[0] == used[1], "the second request went on a new connection"
    finally:
        connection.close()


def test_a_head_over_64_kib_gets_431(base):
    sock = _connect(base)
    sock.sendall(b"GET /__sandbox/health HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    answer = _read_all(sock)
    sock.close()
    status, body = _status_and_body(answer)
    assert status == 431 and body["errors"][0]["error_enum"] == "RequestHeaderFieldsTooLarge"


def test_a_body_that_stalls_gets_408_and_nothing_is_created(base):
    business = _business(base)
    before = _state(base)
    body = json.dumps(_create_body(business, external_id="stalled")).encode()
    sock = _connect(base)
    sock.sendall(f"POST {credits_path(business['id'])} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:20])
    answer = _read_all(sock)
    sock.close()
    status, error = _status_and_body(answer)
    assert status == 408 and error["errors"][0]["error_enum"] == "RequestTimeout"
    assert _state(base) == before


def test_a_client_that_hangs_up_mid_body_changes_nothing(base):
    business = _business(base)
    before = _state(base)
    body = json.dumps(_create_body(business, external_id="half-sent")).encode()
    sock = _connect(base)
    sock.sendall(f"POST {credits_path(business['id'])} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])
    sock.close()
    time.sleep(0.3)
    assert _state(base) == before


def test_a_client_that_hangs_up_mid_response_gets_its_change_whole(base):
    """The change is made before the first byte of the answer leaves: hanging up while reading it
    cannot leave half of it applied."""
    business = _business(base)
    body = json.dumps(_create_body(business, external_id="hung-up", memo="whole")).encode()
    sock = _connect(base)
    sock.sendall(f"POST {credits_path(business['id'])} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
                 f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    sock.recv(20)  # the start of the status line, then hang up
    sock.close()
    time.sleep(0.2)
    listing = httpx.get(f"{base}{credits_path(business['id'])}", params={"limit": 100}, headers=AUTH).json()["data"]
    created = [c for c in listing if c.get("external_id") == "hung-up"]
    assert len(created) == 1
    assert created[0]["memo"] == "whole" and created[0]["line_items"][0]["amount"] == 100
