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

from layer_sandbox.cli import _listening_socket
from layer_sandbox.config import NO_VALIDATION_VARIABLE
from layer_sandbox.fastschema import _exclusive
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
    assert list(figures["routes"]) == ["default", "paging"]
    for scenario, rows in figures["routes"].items():
        assert list(rows) == ["customers", "invoices", "credits"], scenario
        for route, row in rows.items():
            assert row["requests_per_second"] > 0 and row["p50_ms"] > 0 and row["items"] > 0, (scenario, route)
            assert row["non_2xx"] == 0 and row["socket_errors"] is None, (scenario, route)
    assert [figures["routes"]["paging"][r]["items"] for r in ("customers", "invoices", "credits")] == [40, 60, 100]
    assert (tmp_path / "load.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| 1 | sandbox |" in (tmp_path / "results.md").read_text()
    assert "| paging | list invoices | 60 |" in (tmp_path / "results.md").read_text()
    # verify-pact passed every interaction of the benchmark's pact (it stops the run otherwise).
    assert list(figures["pact"]) == ["running sandbox (--url)", "sandbox started for the run"]
    for row in figures["pact"].values():
        assert row["interactions"] == 8 and row["interactions_per_second"] > 0 and row["wall_s"] > row["verification_s"]


def test_the_benchmark_refuses_a_part_it_does_not_have():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--parts", "routes,nope"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown parts: nope" in result.stderr


def test_handlers_answer_alike_with_openapi_cores_values_and_with_connexions_parsing(tmp_path):
    """With validation on, handlers get the parameters and body openapi-core parsed (see
    sandbox/operations.py); with it off, connexion parses them itself. The same requests must
    get byte-identical answers either way."""
    frozen = ("--clock", "frozen=2026-03-01T12:00:00Z")
    checked = SandboxProcess(tmp_path / "checked", *frozen)
    parsed = SandboxProcess(tmp_path / "parsed", *frozen, env={NO_VALIDATION_VARIABLE: "1"})
    try:
        business = httpx.get(f"{checked.base_url}/__sandbox/businesses").json()["data"][0]
        customer = business["customers"][0]["id"]
        path = credits_path(business["id"])
        first = httpx.get(checked.base_url + path, params={"limit": 1}, headers={"Authorization": "Bearer t"}).json()
        credit = first["data"][0]["id"]
        exchanges = [
            ("GET", path, {"limit": 3, "sort_by": "sent_at", "sort_order": "DESC", "show_total_count": "true"}, None),
            ("GET", path, {"limit": 2, "cursor": first["meta"]["pagination"]["cursor"]}, None),
            ("GET", path, {"customer_id": customer, "memo_contains": "e", "sent_at_start": "2025-01-01"}, None),
            ("GET", path, {"reference_numbers": "CR-00001,CR-00002", "limit": 50}, None),
            ("GET", f"{path}/{credit.upper()}", {}, None),
            ("POST", path, {}, {"customer_id": customer, "external_id": "same-either-way", "memo": "m",
                                "line_items": [{"amount": 250, "revenue_account_identifier":
                                                {"type": "StableName", "stable_name": "SALES"}}]}),
            ("PATCH", f"{path}/{credit}", {}, {"memo": "patched", "reference_number": None}),
            ("DELETE", f"{path}/{credit}", {}, None),
            ("GET", f"{path}/{credit}", {}, None),
        ]
        for method, url, params, body in exchanges:
            answers = [httpx.request(method, server.base_url + url, params=params, json=body,
                                     headers={"Authorization": "Bearer t"}) for server in (checked, parsed)]
            assert answers[0].status_code == answers[1].status_code, (method, url, params)
            assert answers[0].content == answers[1].content, (method, url, params)
            assert answers[0].headers["x-sandbox-contract"] == "request=pass; response=pass"
            assert answers[1].headers["x-sandbox-contract"] == "request=skipped; response=skipped"
    finally:
        checked.stop()
        parsed.stop()
