"""--state-file: load at start, atomic save on SIGTERM/SIGINT and on POST /__sandbox/save."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import httpx
import pytest

from support import SandboxProcess, credits_path, sandbox_command, stable_line

AUTH = {"Authorization": "Bearer t"}


def create(server, business, memo, namespace="default"):
    response = httpx.post(server.base_url + credits_path(business["id"]), headers={**AUTH, "X-Sandbox-Namespace": namespace},
                          json={"customer_id": business["customers"][0]["id"], "memo": memo,
                                "line_items": [stable_line("SALES", 300)]})
    assert response.status_code == 201
    return response.json()["data"]


def memos(server, business, namespace="default"):
    listing = httpx.get(server.base_url + credits_path(business["id"]), params={"limit": 1000},
                        headers={**AUTH, "X-Sandbox-Namespace": namespace})
    return {c["memo"] for c in listing.json()["data"]}


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_state_survives_a_restart(tmp_path, stop_signal):
    state = tmp_path / "state" / "sandbox.json"
    server = SandboxProcess(tmp_path, "--state-file", str(state))
    business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
    create(server, business, "saved by request")
    saved = httpx.post(f"{server.base_url}/__sandbox/save").json()["data"]
    assert saved["namespaces"] == ["default"] and saved["bytes"] == state.stat().st_size
    assert json.loads(state.read_text())["format"] == "layer-sandbox/state-file-v1"
    create(server, business, "saved at shutdown")
    create(server, business, "in another namespace", namespace="ci-job")
    server.process.send_signal(stop_signal)
    assert server.process.wait(timeout=20) == 0
    server.stop()

    again = SandboxProcess(tmp_path, "--state-file", str(state))
    try:
        assert {"saved by request", "saved at shutdown"} <= memos(again, business)
        assert "in another namespace" in memos(again, business, "ci-job")
        assert "in another namespace" not in memos(again, business)
    finally:
        again.stop()


def test_save_without_a_state_file_is_409(api):
    response = api.post("/__sandbox/save")
    assert response.status_code == 409
    assert "--state-file" in response.json()["errors"][0]["description"]


@pytest.mark.parametrize("content, message", [
    (b'{"format": "layer-sandbox/state-file-v1", "namespaces": {"default": {"businesses": [', "not readable JSON"),
    (b'{"something": "else"}', "not a layer-sandbox state file"),
    (b'{"format": "layer-sandbox/state-file-v1", "namespaces": {"default": {"format": "layer-sandbox/state-v1", '
     b'"businesses": [{"id": "x"}]}}}', "namespace 'default'"),
])
def test_a_bad_state_file_is_refused_with_a_clear_message(tmp_path, content, message):
    state = tmp_path / "state.json"
    state.write_bytes(content)
    result = subprocess.run(sandbox_command() + ["--state-file", str(state), "--port", "0"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert state.read_bytes() == content  # left as it was for the user to inspect


@pytest.mark.parametrize("crash_in", ["os.fsync", "os.replace"])
def test_a_crash_while_saving_leaves_the_old_file_whole(tmp_path, crash_in):
    """Kill the process (os._exit, no cleanup) in the middle of a save: the target keeps its old,
    complete content."""
    state = tmp_path / "state.json"
    old = b'{"format": "layer-sandbox/state-file-v1", "namespaces": {}}'
    state.write_bytes(old)
    script = textwrap.dedent(f"""
        import os
        from layer_sandbox import persistence
        module, name = {crash_in!r}.split(".")
        def crash(*args, **kwargs):
            os._exit(9)
        setattr(os, name, crash)
        persistence.StateFile({str(state)!r}).checkpoint({{"default": {{"x": "y" * 100000}}}}, {{}})
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 9, result.stderr
    assert state.read_bytes() == old
