"""The console script, `python -m layer_sandbox`, flags and environment variables."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx

from support import SandboxProcess, sandbox_command


def test_help_lists_every_flag_with_its_environment_variable():
    result = subprocess.run(sandbox_command() + ["--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for flag, variable in [("--host", "LAYER_SANDBOX_HOST"), ("--port", "LAYER_SANDBOX_PORT"),
                           ("--seed", "LAYER_SANDBOX_SEED"), ("--token", "LAYER_SANDBOX_TOKEN"),
                           ("--scenario", "LAYER_SANDBOX_SCENARIO"), ("--clock", "LAYER_SANDBOX_CLOCK"),
                           ("--state-file", "LAYER_SANDBOX_STATE_FILE"), ("--cors-origin", "LAYER_SANDBOX_CORS_ORIGINS"),
                           ("--rate-limit", "LAYER_SANDBOX_RATE_LIMIT"), ("--journal-size", "LAYER_SANDBOX_JOURNAL_SIZE"),
                           ("--max-namespaces", "LAYER_SANDBOX_MAX_NAMESPACES"), ("--spec", "LAYER_SANDBOX_SPEC"),
                           ("--admin-token", "LAYER_SANDBOX_ADMIN_TOKEN"), ("--max-body-bytes", "LAYER_SANDBOX_MAX_BODY_BYTES"),
                           ("--client-timeout", "LAYER_SANDBOX_CLIENT_TIMEOUT")]:
        assert flag in result.stdout and variable in result.stdout, flag


def test_it_prints_where_it_listens_and_the_seeded_business_ids(tmp_path):
    server = SandboxProcess(tmp_path)
    try:
        world = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"]
    finally:
        server.stop()
    assert f"listening on http://127.0.0.1:{server.port}" in server.stdout
    for business in world:
        assert business["id"] in server.stdout
    assert "Traceback" not in server.stderr


def test_python_dash_m_and_environment_configuration(tmp_path):
    server = SandboxProcess(tmp_path, command=[sys.executable, "-m", "layer_sandbox"], port_via_env=True,
                            env={"LAYER_SANDBOX_TOKEN": "from-env", "LAYER_SANDBOX_HOST": "127.0.0.1"})
    try:
        business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
        path = f"{server.base_url}/v1/businesses/{business['id']}/invoices/customer-credits"
        assert httpx.get(path, headers={"Authorization": "Bearer from-env"}).status_code == 200
        assert httpx.get(path, headers={"Authorization": "Bearer other"}).status_code == 401
    finally:
        server.stop()


def test_a_busy_port_is_a_clear_error(tmp_path):
    server = SandboxProcess(tmp_path)
    try:
        result = subprocess.run(sandbox_command() + ["--port", str(server.port)], capture_output=True,
                                text=True, timeout=60, cwd=tmp_path)
    finally:
        server.stop()
    assert result.returncode != 0
    assert re.search(rf"cannot listen on 127.0.0.1:{server.port}", result.stderr)
    assert "Traceback" not in result.stderr


def test_bad_flag_values_are_refused(tmp_path):
    for args in (["--port", "70000"], ["--seed", "abc"], ["--rate-limit", "0"], ["--spec", str(tmp_path / "missing.yaml")]):
        result = subprocess.run(sandbox_command() + args, capture_output=True,
                                text=True, timeout=60, cwd=tmp_path)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr
