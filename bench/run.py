"""Side-by-side load benchmark: layer-sandbox against Prism on the same openapi.yaml.

    .venv/bin/python bench/run.py                 # 1, 8 and 32 connections, 10 s each after a warm-up
    .venv/bin/python bench/run.py --duration 2 --connections 1 --skip-prism   # a smoke run

Both servers run on 127.0.0.1, one after the other, driven by wrk (Debian's `wrk`, installed with
apt-get when missing and run as root) with bench/workload.lua: list (limit 20) 60%, fetch 20%,
create 10%, update 5%, delete 5%. Prism (`@stoplight/prism-cli` from the npm registry) is
installed into bench/.prism on first use. Figures go to stdout and to bench/out/load.json and
bench/out/load.md; they are measurements, never assertions.

This is the load part of the benchmark (issue 5); cold start, list latency at 100k credits,
memory and the cost of validation are still to come.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PRISM_DIR = BENCH / ".prism"
PRISM_VERSION = "5"
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("wrk is missing: apt-get install wrk")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk")


def ensure_prism() -> Path:
    prism = PRISM_DIR / "node_modules" / ".bin" / "prism"
    if not prism.exists():
        PRISM_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(PRISM_DIR),
                        f"@stoplight/prism-cli@{PRISM_VERSION}"], check=True)
    return prism


def wait_until(check, timeout: float = 60.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            if check():
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise RuntimeError("server did not become ready")


def sandbox_script() -> str:
    return shutil.which("layer-sandbox") or str(Path(sys.executable).with_name("layer-sandbox"))


def seeded_ids(base_url: str) -> dict:
    business = httpx.get(f"{base_url}/__sandbox/businesses").json()["data"][0]
    listing = httpx.get(f"{base_url}/v1/businesses/{business['id']}/invoices/customer-credits",
                        params={"limit": 1000}, headers={"Authorization": "Bearer bench-token"}).json()["data"]
    return {"business": business["id"], "customer": business["customers"][0]["id"],
            "credits": [c["id"] for c in listing]}


def write_ids(ids: dict) -> None:
    credits = ", ".join(f'"{c}"' for c in ids["credits"])
    (BENCH / "bench_ids.lua").write_text(
        f'return {{business = "{ids["business"]}", customer = "{ids["customer"]}", credits = {{{credits}}}}}\n')


def parse_wrk(output: str) -> dict:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
        return round(float(number) * UNITS[unit], 3)

    percentiles = {p: ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M)}
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": percentiles.get("50"), "p99_ms": percentiles.get("99"),
        "requests": requests, "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else None,
    }


def run_wrk(wrk: str, url: str, connections: int, duration: float) -> dict:
    result = subprocess.run(
        [wrk, f"-t{min(2, connections)}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
         "-s", str(BENCH / "workload.lua"), url],
        capture_output=True, text=True, env={**os.environ, "BENCH_DIR": str(BENCH)}, timeout=duration + 120,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr or result.stdout)
    return parse_wrk(result.stdout)


def start(server: str, port: int, prism: Path | None):
    if server == "sandbox":
        process = subprocess.Popen([sandbox_script(), "--port", str(port)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        ready = lambda: httpx.get(f"http://127.0.0.1:{port}/__sandbox/health").status_code == 200  # noqa: E731
    else:
        process = subprocess.Popen([str(prism), "mock", "-h", "127.0.0.1", "-p", str(port), str(ROOT / "openapi.yaml")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        ready = lambda: httpx.get(f"http://127.0.0.1:{port}/v1/businesses/00000000-0000-4000-8000-000000000000/"  # noqa: E731
                                  "invoices/customer-credits", headers={"Authorization": "Bearer b"}).status_code == 200
    return process, wait_until(ready)


def stop(process) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM) if process.pid == os.getpgid(process.pid) else process.terminate()
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per concurrency level")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up before measuring")
    parser.add_argument("--connections", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--skip-prism", action="store_true", help="measure the sandbox only")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    args = parser.parse_args()
    levels = [int(c) for c in args.connections.split(",")]
    wrk = ensure_wrk()
    prism = None if args.skip_prism else ensure_prism()

    results: dict[str, dict] = {}
    ids = None
    for server in ["sandbox"] + ([] if args.skip_prism else ["prism"]):
        port = free_port()
        process, ready_after = start(server, port, prism)
        base = f"http://127.0.0.1:{port}"
        try:
            if server == "sandbox":
                ids = seeded_ids(base)
                write_ids(ids)
            results[server] = {"ready_after_s": round(ready_after, 3), "load": {}}
            if args.warmup:
                run_wrk(wrk, base, 8, args.warmup)
            for connections in levels:
                if server == "sandbox":
                    httpx.post(f"{base}/__sandbox/reset")  # the same starting state for every level
                results[server]["load"][connections] = run_wrk(wrk, base, connections, args.duration)
        finally:
            stop(process)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(json.dumps(results, indent=2))
    table = ["| connections | server | req/s | p50 ms | p99 ms | non-2xx | sandbox/Prism req/s |",
             "|---|---|---|---|---|---|---|"]
    for connections in levels:
        sandbox = results["sandbox"]["load"][connections]
        prism_row = results.get("prism", {}).get("load", {}).get(connections)
        ratio = f"{sandbox['requests_per_second'] / prism_row['requests_per_second']:.2f}" if prism_row else "-"
        for name, row in (("sandbox", sandbox), ("prism", prism_row)):
            if row:
                table.append(f"| {connections} | {name} | {row['requests_per_second']:.0f} | {row['p50_ms']} | "
                             f"{row['p99_ms']} | {row['non_2xx']} | {ratio if name == 'sandbox' else ''} |")
    text = "\n".join(table)
    (args.out / "load.md").write_text(text + "\n")
    print(text)
    print(f"\nwritten: {args.out / 'load.json'}, {args.out / 'load.md'}")


if __name__ == "__main__":
    main()
