"""Namespaces made on demand as copies of a seeded template, the namespace routes, health per
namespace, starting from an export, and request and response bodies in the journal."""

from __future__ import annotations

import json

import httpx
import pytest

from support import AUTH, SandboxProcess, checking_client, credits_path, stable_line

NS = "X-Sandbox-Namespace"


def export(base_url: str, namespace: str = "default") -> dict:
    state = httpx.get(f"{base_url}/__sandbox/state", headers={NS: namespace}).json()["data"]
    return {k: v for k, v in state.items() if k not in ("namespace", "clock")}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A sandbox that seeded nothing but its default namespace (seed 5, paging)."""
    server = SandboxProcess(tmp_path_factory.mktemp("fresh"), "--seed", "5", "--scenario", "paging")
    yield server
    server.stop()


def test_a_namespace_is_byte_for_byte_what_seeding_makes_even_after_writes_to_others(sandbox, fresh):
    """A new namespace is a copy of a seeded template; writes to earlier copies never reach it."""
    control = httpx.Client(base_url=f"{sandbox.base_url}/__sandbox")
    try:
        made = control.put("/namespaces/tpl-a", json={"seed": 5, "scenario": "paging"})
        assert made.status_code == 201, made.text
        assert made.json()["data"] == {"status": "created", "namespace": "tpl-a", "scenario": "paging", "seed": 5}
        business = control.get("/businesses", headers={NS: "tpl-a"}).json()["data"][0]
        with checking_client(sandbox.base_url, _check(), headers={**AUTH, NS: "tpl-a"}) as client:
            first, second = client.get(credits_path(business["id"])).json()["data"][:2]
            assert client.delete(credits_path(business["id"], first["id"])).status_code == 200
            assert client.patch(credits_path(business["id"], second["id"]), json={
                "memo": "changed in tpl-a", "allocations": []}).status_code == 200
            assert client.post(credits_path(business["id"]), json={
                "customer_id": business["customers"][0]["id"], "line_items": [stable_line("SALES")]}).status_code == 201
        assert control.put("/namespaces/tpl-b", json={"seed": 5, "scenario": "paging"}).status_code == 201
        assert export(sandbox.base_url, "tpl-b") == export(fresh.base_url)
        assert export(sandbox.base_url, "tpl-a") != export(fresh.base_url)
        # PUT on an existing namespace resets it to the seed and scenario asked for.
        again = control.put("/namespaces/tpl-a", json={"seed": 5, "scenario": "paging"})
        assert again.status_code == 200 and again.json()["data"]["status"] == "reset"
        assert export(sandbox.base_url, "tpl-a") == export(fresh.base_url)
    finally:
        for name in ("tpl-a", "tpl-b"):
            control.delete(f"/namespaces/{name}")
        control.close()


def _check():
    from support import ContractCheck

    return ContractCheck.ours()


def test_put_namespace_checks_its_body(sandbox):
    for body, field in (({"seed": -1}, "seed"), ({"scenario": 3}, "scenario"), ({"colour": "red"}, "colour")):
        response = httpx.put(f"{sandbox.base_url}/__sandbox/namespaces/x-body", json=body)
        assert response.status_code == 400 and response.json()["errors"][0]["meta"]["field"] == field, body
    unknown = httpx.put(f"{sandbox.base_url}/__sandbox/namespaces/x-body", json={"scenario": "nope"})
    assert unknown.status_code == 404
    bad_name = httpx.put(f"{sandbox.base_url}/__sandbox/namespaces/-x", json={})
    assert bad_name.status_code == 400
    names = {n["namespace"] for n in httpx.get(f"{sandbox.base_url}/__sandbox/namespaces").json()["data"]}
    assert "x-body" not in names


def test_health_describes_the_namespace_asked_about_without_making_it(sandbox):
    health = httpx.get(f"{sandbox.base_url}/__sandbox/health").json()["data"]
    assert health == {"status": "ok", "namespace": "default", "exists": True, "scenario": "default", "seed": 1}
    unmade = httpx.get(f"{sandbox.base_url}/__sandbox/health", headers={NS: "health-q"}).json()["data"]
    assert unmade == {"status": "ok", "namespace": "health-q", "exists": False, "scenario": "default", "seed": 1}
    by_url = httpx.get(f"{sandbox.base_url}/__ns/health-q/__sandbox/health").json()["data"]
    assert by_url == unmade
    names = {n["namespace"] for n in httpx.get(f"{sandbox.base_url}/__sandbox/namespaces").json()["data"]}
    assert "health-q" not in names
    httpx.put(f"{sandbox.base_url}/__sandbox/namespaces/health-q", json={"seed": 4, "scenario": "empty"})
    try:
        made = httpx.get(f"{sandbox.base_url}/__sandbox/health", headers={NS: "health-q"}).json()["data"]
        assert made == {"status": "ok", "namespace": "health-q", "exists": True, "scenario": "empty", "seed": 4}
    finally:
        httpx.delete(f"{sandbox.base_url}/__sandbox/namespaces/health-q")


def test_the_default_namespace_is_never_deleted(api, business):
    credit = api.get(credits_path(business["id"])).json()["data"][0]
    api.delete(credits_path(business["id"], credit["id"]))
    refused = api.delete("/__sandbox/namespaces/default")
    assert refused.status_code == 409
    assert "POST /__sandbox/reset" in refused.json()["errors"][0]["description"]
    assert api.get(credits_path(business["id"], credit["id"])).status_code == 404  # nothing was wiped


def test_the_journal_keeps_what_was_sent_and_answered(api, business):
    api.delete("/__sandbox/requests")
    body = {"customer_id": business["customers"][0]["id"], "memo": "kept in the journal",
            "line_items": [stable_line("SALES", 1234)]}
    created = api.post(credits_path(business["id"]), json=body)
    api.get(credits_path(business["id"]), params={"limit": 1})
    huge = api.post(credits_path(business["id"]), content=b'{"memo": "' + b"x" * 100_000 + b'"}',
                    headers={"content-type": "application/json"})
    assert huge.status_code == 400
    post, listing, big = api.get("/__sandbox/requests").json()["data"]
    assert post["request_body"] == body
    assert post["response_body"] == created.json()
    assert listing["request_body"] is None and listing["response_body"]["meta"]["pagination"]["has_more"] is True
    assert big.get("bodies_truncated") is True and isinstance(big["request_body"], str)
    assert len(big["request_body"]) == 64 * 1024 and big["response_body"]["errors"]


def test_start_from_an_export(tmp_path, sandbox, business):
    with checking_client(sandbox.base_url, _check(), headers={**AUTH, NS: "to-export"}) as client:
        client.post(credits_path(business["id"]), json={
            "customer_id": business["customers"][0]["id"], "memo": "exported", "line_items": [stable_line("SALES")]})
        exported = client.get("/__sandbox/state")
        assert exported.status_code == 200
        client.delete("/__sandbox/namespaces/to-export")
    saved = tmp_path / "export.json"
    saved.write_bytes(exported.content)  # the answer as it came: {"data": {...}}

    server = SandboxProcess(tmp_path / "a", "--load-state", str(saved), "--seed", "9")
    try:
        state = httpx.get(f"{server.base_url}/__sandbox/state").json()["data"]
        memos = {c["memo"] for b in state["businesses"] for c in b["customer_credits"]}
        assert "exported" in memos and state["seed"] == 1
    finally:
        server.stop()

    # A state file that holds state wins; one that does not yet is started from the export.
    state_file = tmp_path / "b" / "state.json"
    server = SandboxProcess(tmp_path / "b", "--load-state", str(saved), "--state-file", str(state_file))
    try:
        assert "exported" in json.dumps(httpx.get(f"{server.base_url}/__sandbox/state").json())
        httpx.post(f"{server.base_url}/__sandbox/reset")
    finally:
        server.stop()
    server = SandboxProcess(tmp_path / "b", "--load-state", str(saved), "--state-file", str(state_file))
    try:
        assert "exported" not in json.dumps(httpx.get(f"{server.base_url}/__sandbox/state").json())
    finally:
        server.stop()


def test_an_export_given_as_a_state_file_says_what_to_do(tmp_path, sandbox):
    saved = tmp_path / "export.json"
    saved.write_bytes(httpx.get(f"{sandbox.base_url}/__sandbox/state").content)
    import subprocess

    from support import sandbox_command

    result = subprocess.run(sandbox_command() + ["--port", "0", "--state-file", str(saved)], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    assert "is an export of one namespace" in result.stderr and "--load-state" in result.stderr
    assert "Traceback" not in result.stderr
    not_state = tmp_path / "other.json"
    not_state.write_text('{"format": "something else"}')
    result = subprocess.run(sandbox_command() + ["--port", "0", "--load-state", str(not_state)], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1 and "--load-state" in result.stderr and "Traceback" not in result.stderr


def test_the_journal_bounds_the_bodies_it_keeps():
    """The journal's own bookkeeping (a data structure, checked directly): bodies are cut at
    64 KiB; request bodies and response bodies are each held under the budget, the oldest entries
    losing theirs first, large answers never pushing out requests; nothing is kept for entries the
    journal no longer has, even a body still on its way."""
    from layer_sandbox.journal import BODY_LIMIT, Journal

    journal = Journal(size=300, body_budget=1_000_000)
    late = None
    for number in range(1000):
        entry = {"namespace": "default", "method": "POST", "path": f"/p/{number}", "status": 200,
                 "operation_id": "x", "request_validation": "pass", "response_validation": "pass"}
        journal.record(entry, b'{"n": %d, "pad": "%s"}' % (number, b"x" * 1000))
        journal.add_body(entry, b"y" * 20_000)
        journal.add_body(entry, b"z" * (BODY_LIMIT if number == 999 else 0))
        late = late or entry
    journal.add_body(late, b"after it left" * 1000)  # long evicted
    entries = journal.query()
    assert len(entries) == 300
    assert journal._held["request_body"] <= 1_000_000 and journal._held["response_body"] <= 1_000_000
    assert all(e["request_body"]["n"] for e in entries[1:])  # every request body kept: 300 KB in all
    assert entries[0].get("bodies_dropped") and entries[0]["response_body"] is None
    assert entries[-1]["request_body"]["n"] == 999 and entries[-1]["bodies_truncated"]
    assert len(entries[-1]["response_body"]) == BODY_LIMIT
    assert all(len(holding) <= 300 for holding in journal._holding.values())
    assert journal._held["response_body"] == sum(len(e["response_body"] or "") for e in entries)
    journal.clear()
    assert journal._held == {"request_body": 0, "response_body": 0}
    assert not any(journal._holding.values())


def test_a_request_without_a_valid_token_makes_no_namespace(tmp_path):
    server = SandboxProcess(tmp_path, "--token", "good")
    try:
        business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]["id"]
        refused = httpx.get(f"{server.base_url}/__ns/by-a-stranger{credits_path(business)}",
                            headers={"Authorization": "Bearer bad"})
        assert refused.status_code == 401
        names = {n["namespace"] for n in httpx.get(f"{server.base_url}/__sandbox/namespaces").json()["data"]}
        assert names == {"default"}
        made = httpx.get(f"{server.base_url}/__ns/by-a-stranger{credits_path(business)}",
                         headers={"Authorization": "Bearer good"})
        assert made.status_code == 200
    finally:
        server.stop()
