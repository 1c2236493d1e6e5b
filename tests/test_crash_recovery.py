"""--state-file across SIGKILL (issue 6, point 4): no acknowledged write is lost, and a damaged
file is never started from.

The process is killed with SIGKILL, which runs no handler and saves nothing: whatever survives
is what the snapshot and the log beside it held when the signal landed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import httpx
import pytest

from support import SandboxProcess, credits_path, report, sandbox_command, stable_line

AUTH = {"Authorization": "Bearer t"}


def _state(base: str, namespace: str = "default") -> dict:
    document = httpx.get(f"{base}/__sandbox/state", headers={"X-Sandbox-Namespace": namespace}).json()["data"]
    return {k: v for k, v in document.items() if k != "clock"}


def _kill(server: SandboxProcess) -> None:
    server.process.send_signal(signal.SIGKILL)
    assert server.process.wait(timeout=10) == -signal.SIGKILL
    server.stop()


def _create_body(business: dict, n: int, **extra) -> dict:
    return {"customer_id": business["customers"][0]["id"], "memo": f"write {n}", "external_id": f"crash-{n}",
            "line_items": [stable_line("SALES", 100 + n)], **extra}


def test_a_killed_sandbox_restarts_with_exactly_the_state_it_acknowledged(tmp_path):
    """Writes of every kind (create, upsert, update with new tags, delete, a new namespace), then
    SIGKILL with no save: the restarted state is the same, byte for byte, id generator included."""
    state_file = tmp_path / "state.json"
    server = SandboxProcess(tmp_path, "--state-file", str(state_file))
    base = server.base_url
    business = httpx.get(f"{base}/__sandbox/businesses").json()["data"][0]
    path = f"{base}{credits_path(business['id'])}"
    ids = []
    for n in range(12):
        response = httpx.post(path, json=_create_body(business, n), headers=AUTH)
        assert response.status_code == 201
        ids.append(response.json()["data"]["id"])
    assert httpx.post(path, json=_create_body(business, 3, memo="upserted"), headers=AUTH).status_code == 200
    assert httpx.patch(f"{path}/{ids[4]}", headers=AUTH, json={
        "memo": "tagged", "tags": [{"key": "crash-test", "value": "new-value"}]}).status_code == 200
    assert httpx.delete(f"{path}/{ids[5]}", headers=AUTH).status_code == 200
    other = {**AUTH, "X-Sandbox-Namespace": "ci-job-7"}
    assert httpx.post(path, json=_create_body(business, 99), headers=other).status_code == 201
    before, before_other = _state(base), _state(base, "ci-job-7")
    _kill(server)

    # Restarted with other flags: the saved state wins, for the namespace made after the last
    # snapshot too (its creation is logged with its whole seeded state).
    again = SandboxProcess(tmp_path, "--state-file", str(state_file), "--seed", "2", "--scenario", "paging")
    try:
        assert _state(again.base_url) == before
        assert _state(again.base_url, "ci-job-7") == before_other
        fetched = httpx.get(f"{again.base_url}{credits_path(business['id'], ids[4])}", headers=AUTH).json()["data"]
        assert fetched["transaction_tags"][0]["key"] == "crash-test"
    finally:
        again.stop()


def test_no_acknowledged_write_is_lost_to_sigkill_mid_stream(tmp_path):
    """Clients keep writing while the process is killed, three times over; after each restart every
    write that got its answer is there as answered, and the clients go on from there."""
    state_file = tmp_path / "state.json"
    acknowledged: dict[str, dict | None] = {}  # credit id -> its last acknowledged body (None: deleted)
    in_flight: dict[str, dict | None] = {}  # credit id -> a change sent but never answered (None: delete)
    failures: list[str] = []
    rounds, counter = 3, iter(range(1_000_000))
    lock = threading.Lock()
    for _ in range(rounds):
        server = SandboxProcess(tmp_path, "--state-file", str(state_file))
        base = server.base_url
        business = httpx.get(f"{base}/__sandbox/businesses").json()["data"][0]
        path = f"{base}{credits_path(business['id'])}"
        # What the previous rounds were told is still true.
        _check(path, acknowledged, in_flight)

        stop = threading.Event()

        def writer() -> None:
            mine: list[str] = []
            with httpx.Client(headers=AUTH, timeout=10) as client:
                while not stop.is_set():
                    n = next(counter)
                    target, change = None, None
                    try:
                        if n % 5 == 4 and mine:
                            target = mine.pop(0)
                            response = client.delete(f"{path}/{target}")
                        elif n % 5 == 3 and mine:
                            target, change = mine[-1], {"memo": f"update {n}"}
                            response = client.patch(f"{path}/{target}", json=change)
                        else:
                            response = client.post(path, json=_create_body(business, n))
                    except httpx.TransportError:
                        # The process is gone: this change was never acknowledged, and may or
                        # may not have been made (an unknown create is never looked for).
                        if target is not None:
                            with lock:
                                in_flight[target] = change
                        return
                    if response.status_code not in (200, 201):
                        with lock:
                            failures.append(f"{response.request.method} {response.request.url}: "
                                            f"{response.status_code} {response.text[:300]}")
                        return
                    credit = response.json()["data"]
                    with lock:
                        acknowledged[credit["id"]] = None if credit.get("deleted_at") else credit
                    if response.status_code == 201:
                        mine.append(credit["id"])

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 60 * (_ + 1) and time.monotonic() < deadline:
            time.sleep(0.01)
        server.process.send_signal(signal.SIGKILL)  # writes in flight, mid-stream
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        assert server.process.wait(timeout=10) == -signal.SIGKILL
        server.stop()
        assert not failures, failures[:5]

    final = SandboxProcess(tmp_path, "--state-file", str(state_file))
    try:
        business = httpx.get(f"{final.base_url}/__sandbox/businesses").json()["data"][0]
        path = f"{final.base_url}{credits_path(business['id'])}"
        _check(path, acknowledged, in_flight)
        deleted = sum(1 for body in acknowledged.values() if body is None)
        report(f"crash recovery: {rounds} SIGKILLs mid-stream, {len(acknowledged)} credits written and "
               f"acknowledged ({deleted} deleted), every one found as acknowledged after restart")
    finally:
        final.stop()


def _check(path: str, acknowledged: dict, in_flight: dict) -> None:
    """Every credit is as its last acknowledged write left it, or, when a later change to it was
    in flight at the kill, as that change would have left it."""
    for credit_id, body in acknowledged.items():
        found = httpx.get(f"{path}/{credit_id}", headers=AUTH)
        now = found.json()["data"] if found.status_code == 200 else None
        if now == body:
            continue
        assert credit_id in in_flight, (credit_id, body, now)
        change = in_flight.pop(credit_id)
        if change is None:
            assert now is None, credit_id  # the delete was made
        else:
            assert now is not None and now["memo"] == change["memo"], credit_id
            assert {k: v for k, v in now.items() if k not in ("memo", "updated_at")} == \
                   {k: v for k, v in body.items() if k not in ("memo", "updated_at")}
        acknowledged[credit_id] = now  # what the next round must find


def _start(tmp_path, state_file) -> subprocess.CompletedProcess:
    return subprocess.run(sandbox_command() + ["--state-file", str(state_file), "--port", "0"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.fixture
def saved(tmp_path):
    """A state file and its log holding three logged writes, left by a killed process."""
    state_file = tmp_path / "state.json"
    server = SandboxProcess(tmp_path, "--state-file", str(state_file))
    business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
    for n in range(3):
        httpx.post(f"{server.base_url}{credits_path(business['id'])}", json=_create_body(business, n),
                   headers=AUTH).raise_for_status()
    _kill(server)
    log = state_file.with_name("state.json.log")
    assert len(log.read_bytes().splitlines()) == 4  # the header and three writes
    return state_file, log, business


def test_a_torn_last_line_is_dropped_and_the_rest_kept(tmp_path, saved):
    state_file, log, business = saved
    whole = log.read_bytes()
    log.write_bytes(whole[:-40])  # killed in the middle of writing the last record
    server = SandboxProcess(tmp_path, "--state-file", str(state_file))
    try:
        listing = httpx.get(f"{server.base_url}{credits_path(business['id'])}", params={"limit": 1000},
                            headers=AUTH).json()["data"]
        assert {c["external_id"] for c in listing} >= {"crash-0", "crash-1"}
        assert "crash-2" not in {c["external_id"] for c in listing}
    finally:
        server.stop()
    assert "torn line" in server.stderr


@pytest.mark.parametrize("damage, message", [
    (lambda lines: [lines[0], lines[1][:12] + b"X" + lines[1][13:], *lines[2:]], "line 2 of 4 is damaged"),
    (lambda lines: [b'00000000 {"not": "a header"}', *lines[1:]], "does not start with a layer-sandbox log header"),
    # A header edited without its checksum is damage too.
    (lambda lines: [lines[0].replace(b'"generation":', b'"generation":1'), *lines[1:]],
     "does not start with a layer-sandbox log header"),
])
def test_a_damaged_log_is_refused_with_a_clear_message(tmp_path, saved, damage, message):
    state_file, log, _business = saved
    damaged = b"\n".join(damage(log.read_bytes().splitlines())) + b"\n"
    log.write_bytes(damaged)
    snapshot = state_file.read_bytes()
    result = _start(tmp_path, state_file)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr
    assert log.read_bytes() == damaged and state_file.read_bytes() == snapshot  # left for the user


def test_a_log_newer_than_its_snapshot_is_refused(tmp_path, saved):
    """The snapshot was swapped for an older copy: starting would silently lose the log's writes."""
    state_file, log, _business = saved
    document = json.loads(state_file.read_bytes())
    document["generation"] -= 1
    state_file.write_text(json.dumps(document))
    result = _start(tmp_path, state_file)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "the snapshot was replaced or removed" in result.stderr


def test_a_stale_log_from_a_crash_between_checkpoint_steps_is_ignored(tmp_path, saved):
    """A crash after a checkpoint's new snapshot but before its new log leaves the old log, whose
    writes the snapshot holds already: replayed, they would undo what came after them."""
    state_file, log, business = saved
    stale = log.read_bytes()
    server = SandboxProcess(tmp_path, "--state-file", str(state_file))  # folds the log into a snapshot
    path = f"{server.base_url}{credits_path(business['id'])}"
    listing = httpx.get(path, params={"limit": 1000}, headers=AUTH).json()["data"]
    first = next(c for c in listing if c["external_id"] == "crash-0")
    assert httpx.patch(f"{path}/{first['id']}", json={"memo": "after the crash"}, headers=AUTH).status_code == 200
    server.stop()  # SIGTERM: a new snapshot holds the update
    log.write_bytes(stale)  # as if the crash had come between the snapshot and the new log
    again = SandboxProcess(tmp_path, "--state-file", str(state_file))
    try:
        listing = httpx.get(f"{again.base_url}{credits_path(business['id'])}", params={"limit": 1000},
                            headers=AUTH).json()["data"]
        found = [c for c in listing if c["external_id"] in ("crash-0", "crash-1", "crash-2")]
        assert sorted(c["external_id"] for c in found) == ["crash-0", "crash-1", "crash-2"]
        assert next(c for c in found if c["external_id"] == "crash-0")["memo"] == "after the crash"
    finally:
        again.stop()


def test_a_long_log_is_folded_into_a_new_snapshot(tmp_path, monkeypatch):
    """Past COMPACT_AFTER lines the log is folded into the next generation's snapshot between two
    requests; the state read back is the same."""
    from layer_sandbox import persistence

    monkeypatch.setattr(persistence, "COMPACT_AFTER", 5)
    from layer_sandbox.app import create_app
    from layer_sandbox.config import Config

    state_file = tmp_path / "state.json"
    app = create_app(Config(state_file=state_file))
    with app.test_client() as client:
        business = client.get("/__sandbox/businesses").json()["data"][0]
        for n in range(12):
            assert client.post(credits_path(business["id"]), json=_create_body(business, n),
                               headers=AUTH).status_code == 201
        before = client.get("/__sandbox/state").json()["data"]
    log = state_file.with_name("state.json.log")
    generation = json.loads(state_file.read_bytes())["generation"]
    assert generation >= 3  # start-up, then a fold after every fifth write
    assert len(log.read_bytes().splitlines()) - 1 < 5
    again = create_app(Config(state_file=state_file))
    with again.test_client() as client:
        assert client.get("/__sandbox/state").json()["data"] == before


def test_a_failed_log_write_leaves_no_half_line(tmp_path, monkeypatch):
    """A full disk in the middle of a record: the record is cut back off the log and the error
    raised (the client gets a 500), and the next record is whole and read back."""
    import errno
    import os

    from layer_sandbox import persistence

    state = persistence.StateFile(tmp_path / "state.json")
    state.checkpoint({}, {})
    state.append(persistence.namespace_record("one", {"n": 1}, 0))
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(persistence.os, "write", half_then_full)
    with pytest.raises(OSError):
        state.append(persistence.namespace_record("two", {"n": 2}, 0))
    monkeypatch.setattr(persistence.os, "write", real_write)
    state.append(persistence.namespace_record("three", {"n": 3}, 0))
    state.close()
    assert persistence.StateFile(tmp_path / "state.json").load() == {"one": {"n": 1}, "three": {"n": 3}}


def test_a_failed_checkpoint_makes_writes_fail_loudly_not_vanish(tmp_path, monkeypatch):
    """The snapshot of the next generation is written but its log is not: a write must not go to
    the old log, which a restart would ignore as older than the snapshot."""
    from layer_sandbox import persistence

    state = persistence.StateFile(tmp_path / "state.json")
    state.checkpoint({}, {})
    real_replace = persistence._replace

    def snapshot_only(path, data):
        if path.name.endswith(".log"):
            raise OSError("disk full")
        real_replace(path, data)

    monkeypatch.setattr(persistence, "_replace", snapshot_only)
    with pytest.raises(OSError):
        state.checkpoint({"one": {"n": 1}}, {})
    with pytest.raises(persistence.StateFileError, match="not open"):
        state.append(persistence.namespace_record("lost?", {}, 0))
    monkeypatch.setattr(persistence, "_replace", real_replace)
    state.checkpoint({"one": {"n": 1}}, {})  # POST /__sandbox/save, once the disk has room
    state.append(persistence.namespace_record("two", {"n": 2}, 0))
    state.close()
    assert persistence.StateFile(tmp_path / "state.json").load() == {"one": {"n": 1}, "two": {"n": 2}}
