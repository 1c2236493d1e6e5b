"""The benchmark keeps working (a smoke run of every part), and the serving details it led to."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from sandbox.cli import _listening_socket
from sandbox.config import NO_VALIDATION_VARIABLE
from sandbox.fastschema import _exclusive
from support import SandboxProcess, credits_path

ROOT = Path(__file__).resolve().parent.parent
AUTH = {"Authorization": "Bearer bench"}


def test_accepted_connections_have_nagle_turned_off():
    """asyncio sets TCP_NODELAY only on sockets whose protocol says TCP; with Nagle on, every
    response waited ~40 ms for a delayed ACK between its head and its body."""
    listener = _listening_socket("127.0.0.1", 0)

    async def accepted_nodelay() -> int:
        seen: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_connection(_reader, writer) -> None:
            seen.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname())
            value = await asyncio.wait_for(seen, 10)
            writer.close()
            return value

    assert asyncio.run(accepted_nodelay()) != 0


def _first_business(server: SandboxProcess) -> str:
    return httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]["id"]


def test_the_benchmark_switch_turns_validation_off_and_says_so(tmp_path):
    server = SandboxProcess(tmp_path, env={NO_VALIDATION_VARIABLE: "1"})
    try:
        business_id = _first_business(server)
        response = httpx.get(f"{server.base_url}{credits_path(business_id)}", params={"limit": 2}, headers=AUTH)
        journal = httpx.get(f"{server.base_url}/__sandbox/requests").json()["data"]
    finally:
        server.stop()
    assert response.status_code == 200
    assert response.headers["X-Sandbox-Contract"] == "request=skipped; response=skipped"
    assert journal[-1]["request_validation"] == "skipped" and journal[-1]["response_validation"] == "skipped"
    assert "NOT checked against openapi.yaml" in server.stderr


def test_only_the_value_1_switches_validation_off(tmp_path):
    server = SandboxProcess(tmp_path, env={NO_VALIDATION_VARIABLE: "yes"})
    try:
        business_id = _first_business(server)
        response = httpx.get(f"{server.base_url}{credits_path(business_id)}", params={"limit": 2}, headers=AUTH)
    finally:
        server.stop()
    assert response.headers["X-Sandbox-Contract"] == "request=pass; response=pass"


def _branch(enum: list, typed: bool = True) -> dict:
    branch = {"required": ["type"], "properties": {"type": {"type": "string", "enum": enum}}}
    return {"type": "object", **branch} if typed else branch


def test_one_of_becomes_any_of_only_when_no_value_can_match_two_branches():
    assert _exclusive([_branch(["AccountId"]), _branch(["StableName"])])
    assert not _exclusive([_branch(["AccountId", "StableName"]), _branch(["StableName"])])  # overlapping
    assert not _exclusive([_branch(["AccountId"], typed=False), _branch(["StableName"])])  # a string matches both
    assert not _exclusive([_branch(["AccountId"]), {"type": "object", "required": ["id"]}])  # no shared key


@pytest.mark.skipif(shutil.which("wrk") is None and os.geteuid() != 0,
                    reason="the benchmark needs wrk (apt-get install wrk); .ci/run installs it")
def test_a_quick_run_of_the_benchmark_measures_every_part(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads((tmp_path / "results.json").read_text())
    for kind in ("sandbox", "sandbox-unvalidated"):
        row = figures["load"][kind]["1"]
        assert row["requests_per_second"] > 0 and row["p50_ms"] > 0
        assert row["non_2xx"] == 0, f"the workload's requests must all succeed against {kind}"
        assert row["socket_errors"] is None
    assert figures["cold_start"]["sandbox"]["median_s"] > 0
    assert set(figures["list_latency"]) == {"100", "1000"}
    assert figures["memory"]["rss_mib_with_1000_credits"] > 0
    assert (tmp_path / "load.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 1 | sandbox |" in (tmp_path / "results.md").read_text()
