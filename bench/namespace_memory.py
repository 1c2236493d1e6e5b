"""Resident memory of one sandbox process per namespace (default scenario), printed as figures.

    .venv/bin/python bench/namespace_memory.py [--namespaces 50] [--scenario default]

Starts `layer-sandbox` on a free loopback port, reads its VmRSS from /proc, creates namespaces
one request at a time, and prints the RSS before, after, and per namespace.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--namespaces", type=int, default=50)
    parser.add_argument("--scenario", default="default")
    args = parser.parse_args()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = shutil.which("layer-sandbox") or str(Path(sys.executable).with_name("layer-sandbox"))
    process = subprocess.Popen([script, "--port", str(port), "--scenario", args.scenario,
                                "--max-namespaces", str(args.namespaces + 1)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/__sandbox/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        business = httpx.get(f"{base}/__sandbox/businesses").json()["data"][0]["id"]
        path = f"{base}/v1/businesses/{business}/invoices/customer-credits"
        httpx.get(path, headers={"Authorization": "Bearer b"})
        before = rss_kib(process.pid)
        started = time.perf_counter()
        for number in range(args.namespaces):
            httpx.get(path, headers={"Authorization": "Bearer b", "X-Sandbox-Namespace": f"bench-{number}"})
        elapsed = time.perf_counter() - started
        after = rss_kib(process.pid)
    finally:
        process.terminate()
        process.wait()
    per = (after - before) / args.namespaces
    print(f"scenario {args.scenario}: RSS {before / 1024:.1f} MiB with 1 namespace, {after / 1024:.1f} MiB with "
          f"{args.namespaces + 1}; {per:.0f} KiB per namespace; first request in a new namespace "
          f"{elapsed / args.namespaces * 1000:.1f} ms on average (includes seeding it)")


if __name__ == "__main__":
    main()
