"""The Redis store across processes and through Redis failures (issue 15), with real processes:
sandboxes started as `layer-sandbox --store redis://... --store-prefix ...` and Debian's
redis-server (AOF, fsync always), everything on 127.0.0.1.

Claimed and checked:

- Two sandbox processes on one Redis and prefix serve one sandbox (and so do the two workers of
  `--workers 2`): eight client threads, four
  on each process, run test_concurrency's mixed workload (its `Worker`) and every invariant of
  that test holds across both (no acknowledged create lost, each contested credit deleted by
  exactly one thread, allocations within credit and invoice totals, paged walks never repeat a
  credit nor skip one that lived throughout). A write through one process is what the next read
  through the other sees, and a reset through one is what the other serves next.
- Two processes as replicas share what sits beside the data: a token issued by one passes the
  other, a rule's `count` is spent once across both, `--rate-limit` counts a token's requests
  across both within each one-second window, and the journal read through one holds both's
  requests.
- Redis killed (SIGKILL) under a stream of creates and restarted on the same port and folder
  (replaying its AOF): every 5xx the clients saw was a 503 with `Retry-After` and a
  `store_unavailable` reason, never a 500 nor a dropped connection; every create acknowledged
  (201) before, during or after is there afterwards, once; a create answered 503 is not there,
  even one in flight at the very kill (Redis applied and fsynced its EXEC, then died before
  replying): that write waits for Redis's return and its write marker says it was applied, so it
  is answered 201 (its worker answers nothing else meanwhile, so the outage may show as a pause
  rather than as 503s). The sandbox serves again by itself within seconds of Redis's return.
- Redis unreachable at start: one line, `Error: cannot reach Redis at ...`, and exit 1; the
  flags that cannot go with a Redis store (--state-file) or are not a store (`--store bogus`),
  and `--workers 2` on the memory store, are usage errors, exit 2.
- `--namespace-ttl`: an idle namespace expires and its data is swept; the default one stays.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

import test_concurrency
from redis_server import RedisServer, RedisUnavailable
from support import SandboxProcess, credits_path, report, sandbox_command, stable_line
from test_concurrency import Race, tally

AUTH = test_concurrency.AUTH
THREADS = 8
STEPS = 60  # per thread (test_concurrency runs 150 on one process)


def own_redis(folder: Path) -> RedisServer:
    try:
        return RedisServer(folder)
    except RedisUnavailable as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(str(exc))


def restart_on_same_port(server: RedisServer, timeout: float = 10.0) -> None:
    """A new redis-server with the arguments RedisServer gave the first: same port, same folder,
    so that it replays the AOF the killed one left."""
    binary = shutil.which("redis-server")
    server.process = subprocess.Popen(
        [binary, "--port", str(server.port), "--bind", "127.0.0.1", "--dir", str(server.folder), "--save", "",
         "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--logfile", "redis.log"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.process.poll() is None:
        if server._answers():
            return
        time.sleep(0.02)
    log = server.folder / "redis.log"
    raise AssertionError(f"redis-server did not come back on port {server.port}: "
                         f"{log.read_text()[-2000:] if log.exists() else '(no log)'}")


def all_credits(client: httpx.Client, path: str) -> list[dict]:
    """Every live credit, walked 100 at a time."""
    found, cursor = [], None
    while True:
        page = client.get(path, params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        document = page.json()
        found += document["data"]
        cursor = document["meta"]["pagination"].get("cursor")
        if not document["meta"]["pagination"].get("has_more"):
            return found


def assert_store_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers.get("retry-after"), response.headers
    error, = response.json()["errors"]
    assert error["type"] == "ServiceUnavailable" and error["meta"]["reason"] == "store_unavailable", error


# ------------------------------------------------------------------------------ two processes


@pytest.fixture(params=["two-processes", "workers-2"])
def two_sandboxes(request, redis_server, tmp_path):
    """Two sandbox processes on one Redis and prefix (as two replicas would be), or one sandbox
    started with `--workers 2` (both "processes" are then its one port, served by two workers)."""
    prefix = f"two-{uuid.uuid4().hex[:12]}"
    args = ("--store", redis_server.url, "--store-prefix", prefix)
    if request.param == "workers-2":
        both = SandboxProcess(tmp_path / "w", *args, "--workers", "2")
        assert "2 workers serving" in both.stderr, both.stderr
        yield both, both
        both.stop()
        return
    a = SandboxProcess(tmp_path / "a", *args)
    try:
        b = SandboxProcess(tmp_path / "b", *args)
    except BaseException:
        a.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


def test_two_processes_on_one_redis_keep_every_invariant_under_concurrent_writes(two_sandboxes, monkeypatch):
    a, b = two_sandboxes
    monkeypatch.setattr(test_concurrency, "STEPS", STEPS)  # Worker.run reads the module's STEPS
    api_a = httpx.Client(base_url=a.base_url, headers=AUTH, timeout=30)
    api_b = httpx.Client(base_url=b.base_url, headers=AUTH, timeout=30)
    assert api_b.get("/__sandbox/businesses").json()["data"][0] == api_a.get("/__sandbox/businesses").json()["data"][0], \
        "B serves another sandbox"
    race = Race.set_up(api_a)

    started = time.monotonic()
    workers = race.run([a.base_url if i < THREADS // 2 else b.base_url for i in range(THREADS)], timeout=120)
    report(f"redis, two processes: {THREADS} threads (4 on each) in {time.monotonic() - started:.1f} s, {tally(workers)}")
    assert any(w.created for w in workers[:4]) and any(w.created for w in workers[4:]), "both processes took writes"
    # Every invariant of test_concurrency, read through each process (which must agree).
    race.check(workers, [api_a, api_b])
    business, customer, path, seeded = race.business, race.customer, race.path, race.seeded
    created = {cid for w in workers for cid in w.created}
    deleted = {cid for w in workers for cid in w.deleted}

    # A write through one process is the next read through the other.
    made = api_a.post(path, json={"customer_id": customer["id"], "external_id": "cross-1", "memo": "via A",
                                  "line_items": [stable_line("SALES", 2500)]})
    assert made.status_code == 201, made.text
    credit = made.json()["data"]
    seen = api_b.get(f"{path}/{credit['id']}")
    assert seen.status_code == 200 and seen.json()["data"] == credit
    patched = api_b.patch(f"{path}/{credit['id']}", json={"memo": "via B"})
    assert patched.status_code == 200, patched.text
    assert api_a.get(f"{path}/{credit['id']}").json()["data"] == patched.json()["data"]
    assert api_a.get(f"{path}/{credit['id']}").json()["data"]["memo"] == "via B"
    assert api_a.delete(f"{path}/{credit['id']}").status_code == 200
    assert api_b.get(f"{path}/{credit['id']}").status_code == 404

    # A reset through B is what A serves next: the seeded credits, none of the threads'.
    survivor = next(iter(set(created) - set(deleted)))
    reset = httpx.post(f"{b.base_url}/__sandbox/reset", json={})
    assert reset.status_code == 200, reset.text
    assert api_a.get(f"{path}/{survivor}").status_code == 404
    assert [c["id"] for c in api_a.get(path, params={"limit": 1000}).json()["data"]] == seeded
    assert api_a.get("/__sandbox/businesses").json()["data"][0] == business

    api_a.close()
    api_b.close()


# ------------------------------------------------------------------------------ Redis killed


class Writer:
    """Creates credits one after another, each with an external id of its own, and remembers
    what it was told for each."""

    def __init__(self, index: int, base: str, path: str, customer: dict, stop: threading.Event) -> None:
        self.index, self.path, self.customer, self.stop = index, path, customer, stop
        self.client = httpx.Client(base_url=base, headers=AUTH, timeout=10)
        self.acked: dict[str, tuple[float, str]] = {}   # external id -> (when, credit id)
        self.refused: list[tuple[float, float, str]] = []  # 503s: (sent, answered, external id)
        self.transport: list[str] = []
        self.wrong: list[str] = []                        # anything else: a 500, a 4xx, a 503 without Retry-After

    def run(self) -> None:
        n = 0
        try:
            while not self.stop.is_set():
                external_id = f"w{self.index}-{n}"
                n += 1
                sent = time.monotonic()
                try:
                    response = self.client.post(self.path, json={
                        "customer_id": self.customer["id"], "external_id": external_id, "memo": external_id,
                        "line_items": [stable_line("SALES", 1000 + n)]})
                except httpx.TransportError as exc:
                    self.transport.append(f"{external_id}: {exc!r}")
                    time.sleep(0.02)
                    continue
                if response.status_code in (200, 201):
                    self.acked[external_id] = (time.monotonic(), response.json()["data"]["id"])
                elif response.status_code == 503:
                    try:
                        assert_store_unavailable(response)
                    except (AssertionError, ValueError) as exc:
                        self.wrong.append(f"{external_id}: {exc}")
                    self.refused.append((sent, time.monotonic(), external_id))
                    time.sleep(0.02)
                else:
                    self.wrong.append(f"{external_id}: {response.status_code} {response.text[:300]}")
        except Exception as exc:  # noqa: BLE001 -- reported by the test, not lost in the thread
            self.wrong.append(f"writer {self.index}: {exc!r}")
        finally:
            self.client.close()


def test_redis_killed_and_restarted_mid_run_loses_no_acknowledged_write(tmp_path):
    redis_folder = tmp_path / "redis"
    redis_folder.mkdir()
    server = own_redis(redis_folder)
    sandbox = None
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        sandbox = SandboxProcess(tmp_path / "sandbox", "--store", server.url, "--store-prefix", "killed")
        api = httpx.Client(base_url=sandbox.base_url, headers=AUTH, timeout=10)
        business = api.get("/__sandbox/businesses").json()["data"][0]
        customer = business["customers"][0]
        path = credits_path(business["id"])
        seeded = {c["id"] for c in all_credits(api, path)}

        writers = [Writer(i, sandbox.base_url, path, customer, stop) for i in range(4)]
        threads = [threading.Thread(target=w.run) for w in writers]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        killed_at = time.monotonic()

        # While Redis is gone a read is a 503 too. The probe runs on its own thread: a worker that
        # waits to learn whether an in-doubt commit was applied answers nothing else meanwhile, and
        # the restart must not wait for it.
        probes: list[httpx.Response] = []
        probe = threading.Thread(target=lambda: probes.append(api.get(path)))
        time.sleep(0.3)
        probe.start()
        time.sleep(0.7)

        restart_on_same_port(server)
        probe.join(timeout=30)
        assert probes and probes[0].status_code in (200, 503), probes
        if probes[0].status_code == 503:
            assert_store_unavailable(probes[0])
        back_at = time.monotonic()
        time.sleep(1.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in threads), "a writer hung"
        assert sandbox.process.poll() is None, f"the sandbox died: {sandbox.stderr[-2000:]}"

        wrong = [x for w in writers for x in w.wrong]
        transport = [x for w in writers for x in w.transport]
        acked = {ext: found for w in writers for ext, found in w.acked.items()}
        refused = [r for w in writers for r in w.refused]
        before = sum(1 for when, _ in acked.values() if when < killed_at)
        after = [when for when, _ in acked.values() if when > back_at]
        recovered_in = min(after) - back_at if after else None

        # Everything acknowledged is there (and nothing twice), read through the list.
        live = all_credits(api, path)
        by_external = Counter(c["external_id"] for c in live if c["id"] not in seeded)
        missing = [ext for ext in acked if by_external[ext] != 1]
        ids = {c["external_id"]: c["id"] for c in live if c["id"] not in seeded}
        moved = [ext for ext, (_, credit_id) in acked.items() if ids.get(ext) not in (None, credit_id)]
        # A 503 changed nothing: a write whose EXEC Redis applied (and fsynced) just before it died,
        # the reply lost with it, waits for Redis's return and is answered as applied (its write
        # marker says so), since Redis came back within the write's timeout.
        refused_but_there = [(sent, answered, ext) for sent, answered, ext in refused if ext in by_external]
        report(f"redis killed and restarted: {len(acked)} creates acknowledged ({before} before the kill, "
               f"{len(after)} after the restart), {len(refused)} answered 503 with Retry-After "
               f"({len(refused_but_there)} of them applied all the same), {len(transport)} transport errors, "
               f"{len(wrong)} wrong answers; first acknowledged create "
               + (f"{recovered_in * 1000:.0f} ms after Redis was back" if after else "never after Redis was back"))

        assert not wrong, wrong[:10]
        assert not transport, transport[:10]
        # The kill lands in the middle of the writes. (A write whose commit was in flight at the kill
        # waits for Redis to learn whether it was applied, and its worker answers nothing else
        # meanwhile: then the outage shows as a pause, not as 503s.)
        assert before > 0 and after, "the kill must land in the middle of the writes"
        assert not missing, f"acknowledged creates lost: {missing[:10]} of {len(acked)}"
        assert not moved, moved[:10]
        assert max(by_external.values()) == 1, "an external id twice"
        assert set(by_external) <= set(acked) | {ext for _, _, ext in refused}, "a credit nobody was told of"
        assert not refused_but_there, f"a 503 changed something: {refused_but_there[:10]}"
        assert after and recovered_in < 3.0, f"no create succeeded within 3 s of Redis's return ({recovered_in})"
        # And it keeps serving: a fresh create, a fetch, and an upsert by external id.
        again = api.post(path, json={"customer_id": customer["id"], "external_id": "after-restart",
                                     "line_items": [stable_line("SALES", 777)]})
        assert again.status_code == 201, again.text
        assert api.get(f"{path}/{again.json()['data']['id']}").status_code == 200
        some_ext, (_, some_id) = next(iter(acked.items()))
        upsert = api.post(path, json={"customer_id": customer["id"], "external_id": some_ext,
                                      "line_items": [stable_line("SALES", 1000)]})
        assert upsert.status_code == 200 and upsert.json()["data"]["id"] == some_id, upsert.text
        api.close()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        if sandbox is not None:
            sandbox.stop()
        server.stop()


# ------------------------------------------------------------------------------ Redis down at start


def run_sandbox(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(sandbox_command() + ["--port", "0", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_redis_unreachable_at_start_is_one_line_and_exit_1(tmp_path):
    with socket.socket() as closed:  # bound, never listening: connections to it are refused
        closed.bind(("127.0.0.1", 0))
        url = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
        started = time.monotonic()
        down = run_sandbox("--store", url)
        took = time.monotonic() - started
        assert down.returncode == 1, (down.returncode, down.stdout, down.stderr)
        lines = down.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: cannot reach Redis at {url}"), down.stderr
        assert "Traceback" not in down.stdout + down.stderr

        with_state = run_sandbox("--store", url, "--state-file", str(tmp_path / "x"))
        assert with_state.returncode == 2, (with_state.returncode, with_state.stderr)
        assert "--state-file" in with_state.stderr
        assert not (tmp_path / "x").exists()

    bogus = run_sandbox("--store", "bogus")
    assert bogus.returncode == 2, (bogus.returncode, bogus.stderr)
    assert "--store" in bogus.stderr
    workers = run_sandbox("--workers", "2")  # on the memory store, each worker would be a sandbox of its own
    assert workers.returncode == 2 and "--workers" in workers.stderr, (workers.returncode, workers.stderr)
    report(f"redis down at start: exit 1 with one line in {took:.1f} s; --state-file, --store bogus and "
           "--workers 2 on the memory store exit 2")


# ------------------------------------------------------------------------------ --namespace-ttl


def test_an_idle_namespace_expires_and_its_data_is_swept(redis_server, tmp_path):
    """--namespace-ttl 2: a namespace without requests for 2 s is gone (listed no more, made
    afresh on its next use) and, a grace later, its data is unlinked from Redis; the default
    namespace never expires."""
    import redis

    prefix = f"ttl-{uuid.uuid4().hex[:8]}"
    sandbox = SandboxProcess(tmp_path / "ttl", "--store", redis_server.url, "--store-prefix", prefix,
                             "--namespace-ttl", "2")
    client = redis.Redis.from_url(redis_server.url)
    try:
        api = httpx.Client(base_url=sandbox.base_url, headers={**AUTH, "X-Sandbox-Namespace": "ci-job-1"}, timeout=10)
        default = httpx.Client(base_url=sandbox.base_url, headers=AUTH, timeout=10)
        business = api.get("/__sandbox/businesses").json()["data"][0]
        path = credits_path(business["id"])
        made = api.post(path, json={"customer_id": business["customers"][0]["id"],
                                    "line_items": [stable_line("SALES", 100)]})
        assert made.status_code == 201, made.text
        kept = default.post(path, json={"customer_id": business["customers"][0]["id"],
                                        "line_items": [stable_line("SALES", 200)]}).json()["data"]["id"]
        generation = client.hget(f"{prefix}:ns:ci-job-1", "uid").decode()
        assert client.exists(f"{prefix}:d:{generation}:ids")
        names = lambda: {n["namespace"] for n in httpx.get(f"{sandbox.base_url}/__sandbox/namespaces").json()["data"]}
        assert "ci-job-1" in names()

        deadline = time.monotonic() + 20
        while client.exists(f"{prefix}:d:{generation}:ids") and time.monotonic() < deadline:
            time.sleep(0.5)
            assert default.get(path, params={"limit": 1}).status_code == 200  # requests drive the sweeper
        assert not client.exists(f"{prefix}:d:{generation}:ids"), "the expired namespace's data was not swept"
        assert not client.keys(f"{prefix}:d:{generation}:*")
        assert "ci-job-1" not in names()
        assert default.get(f"{path}/{kept}").status_code == 200, "the default namespace expired"
        again = api.get(path, params={"limit": 1000}).json()["data"]  # made afresh, as seeded
        assert made.json()["data"]["id"] not in {c["id"] for c in again}
        report(f"namespace ttl: an idle namespace expired after 2 s and its data was swept within "
               f"{20 - (deadline - time.monotonic()):.1f} s; the default namespace kept its writes")
    finally:
        client.close()
        sandbox.stop()


# ------------------------------------------------------------------------------ what replicas share


def test_replicas_share_tokens_rules_rate_limits_and_the_journal(redis_server, tmp_path):
    """Two sandbox processes on one Redis, as two replicas behind a load balancer: a token issued
    by one is accepted by the other and names the same client; a rule added through one forces the
    other's answers and its `count` is spent once across both; `--rate-limit` counts each token's
    requests across both; the journal holds both's requests."""
    import base64

    prefix = f"share-{uuid.uuid4().hex[:8]}"
    args = ("--store", redis_server.url, "--store-prefix", prefix, "--rate-limit", "5",
            "--client", "backend:s3cret")
    a = SandboxProcess(tmp_path / "a", *args)
    b = SandboxProcess(tmp_path / "b", *args)
    try:
        basic = {"Authorization": "Basic " + base64.b64encode(b"backend:s3cret").decode()}
        issued = httpx.post(f"{a.base_url}/oauth2/token", data={"grant_type": "client_credentials"}, headers=basic)
        assert issued.status_code == 200, issued.text
        bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
        who = [httpx.get(f"{base}/whoami", headers=bearer) for base in (a.base_url, b.base_url)]
        assert [w.status_code for w in who] == [200, 200], [w.text for w in who]
        assert who[0].json() == who[1].json()

        business = httpx.get(f"{a.base_url}/__sandbox/businesses").json()["data"][0]
        path = credits_path(business["id"])
        rule = httpx.post(f"{a.base_url}/__sandbox/rules", json={"method": "GET", "path": "*/customer-credits",
                                                                 "code": 500, "count": 2})
        assert rule.status_code == 201, rule.text
        forced = [httpx.get(f"{base}{path}", headers=bearer).status_code for base in (b.base_url, a.base_url, b.base_url)]
        assert forced == [500, 500, 200], forced  # the rule's two uses, spent across both processes
        assert httpx.get(f"{b.base_url}/__sandbox/rules").json()["data"] == []

        # Bursts across both processes: within one rate window (X-RateLimit-Reset names it), at
        # most 5 requests of the token pass, whichever process took them.
        passed: Counter = Counter()
        sent = 0
        deadline = time.monotonic() + 2.5  # bounded: spans two or three one-second windows
        while time.monotonic() < deadline and sent < 400:
            answer = httpx.get(f"{(a, b)[sent % 2].base_url}{path}/{'0' * 8}-0000-4000-8000-{'0' * 12}",
                               headers=bearer)
            sent += 1
            assert answer.status_code in (404, 429), answer.text
            if answer.status_code == 404:
                passed[answer.headers["x-ratelimit-reset"]] += 1
        assert passed and max(passed.values()) <= 5, passed
        assert sum(passed.values()) < sent, "the limit never bit"

        journal = httpx.get(f"{a.base_url}/__sandbox/requests", params={"path": "/customer-credits"}).json()["data"]
        assert len(journal) >= min(sent, 1000), len(journal)  # both processes' requests, read through one
        report(f"replicas share: a token issued by one accepted by the other; a 2-use rule spent across both; "
               f"rate limit 5/s held across both ({sum(passed.values())} of {sent} passed in {len(passed)} windows); "
               f"the journal read through one held {len(journal)} requests of both")
    finally:
        a.stop()
        b.stop()
