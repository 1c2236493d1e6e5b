"""The benchmark: layer-sandbox side by side with Prism on the same openapi.yaml, in one run.

    .venv/bin/python bench/run.py            # the full run (about 8 minutes here)
    .venv/bin/python bench/run.py --quick    # a smoke run of every part (seconds; the tests run it)
    .venv/bin/python bench/run.py --parts routes   # one part only: load, cold, sizes, routes, namespaces, pact, stores

Everything runs on 127.0.0.1, one server at a time. It measures:

- load: the mixed workload of bench/workload.lua (list limit 20 60%, fetch 20%, create 10%,
  update 5%, delete 5%; valid requests with a bearer token), driven by wrk after a warm-up at 1, 8
  and 32 connections, against the sandbox, the sandbox with validation switched off (the
  benchmark-only LAYER_SANDBOX_BENCH_NO_VALIDATION=1), and Prism (`prism mock`);
- cold start: process start to the first 200 from /__sandbox/health (Prism: to its first answer),
  the median of several starts;
- list latency: one connection listing the first page (limit 20) of a business with 1,000 and with
  100,000 credits (a scenario file written for the run);
- memory: the resident set (VmRSS) with 100,000 credits, and what each further namespace adds;
- list routes: one connection listing customers, invoices and credits (limit 100) of the first
  business, in the default scenario (8 customers, 12 invoices, 24 credits) and in `paging` (40
  customers, 60 invoices, 1,000 credits), the same way as the list latency above;
- namespaces: what a fresh namespace costs on the server (a copy of the seeded template), and
  what the pytest plugin adds to a consumer's suite: the same 500 tests (each makes one API call)
  run with a fresh namespace per test, against one shared namespace, and a no-sandbox baseline
  whose tests make no call at all;
- stores: the same mixed workload (32 connections) on the memory store (one process), on the Redis
  store with one worker and with two (`--workers 2`), beside Prism, with a redis-server of the run's
  own (Debian's, AOF with fsync always): throughput, p50/p99, and the CPU each request costs the
  sandbox's processes and redis-server (the inputs of the README's scaling estimate);
- pact: `layer-sandbox verify-pact` on a pact of 50 interactions (a consumer's flow: list
  customers, fetch an invoice, apply a credit, read the invoice again; each with its provider
  states), against a running sandbox (`--url`) and with a sandbox started for the run: the wall
  time of the command, and interactions verified per second.

wrk (Debian) and Prism (`@stoplight/prism-cli` from the npm registry, into bench/.prism) are
installed when missing. The figures go to stdout, bench/out/results.json, bench/out/results.md and
bench/out/load.png: they are measurements, never assertions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
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
TOKEN = {"Authorization": "Bearer bench-token"}
NO_VALIDATION = "LAYER_SANDBOX_BENCH_NO_VALIDATION"
SERVERS = {"sandbox": "sandbox", "sandbox-unvalidated": "sandbox, validation off", "prism": "Prism"}
PARTS = ["load", "cold", "sizes", "routes", "namespaces", "pact", "stores"]  # --parts: which to run, in this order


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


def sandbox_script() -> str:
    return shutil.which("layer-sandbox") or str(Path(sys.executable).with_name("layer-sandbox"))


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS")


class Server:
    """One server process on a free loopback port; `ready_after` is start to first good answer."""

    def __init__(self, kind: str, *, prism: Path | None = None, scenario: str | None = None,
                 timeout: float = 60.0, flags: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        if kind == "prism":
            command = [str(prism), "mock", "-h", "127.0.0.1", "-p", str(self.port), str(ROOT / "openapi.yaml")]
            probe = (f"{self.base}/v1/businesses/00000000-0000-4000-8000-000000000000/invoices/customer-credits",
                     {"Authorization": "Bearer b"})
        else:
            command = [sandbox_script(), "--port", str(self.port), "--max-namespaces", "1000"]
            command += ["--scenario", scenario] if scenario else []
            command += list(flags)
            if kind == "sandbox-unvalidated":
                env[NO_VALIDATION] = "1"
            probe = (f"{self.base}/__sandbox/health", {})
        started = time.perf_counter()
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        env=env, start_new_session=True)
        with httpx.Client(timeout=5) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{kind} exited with status {self.process.returncode}")
                try:
                    if client.get(probe[0], headers=probe[1]).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - started > timeout:
                    self.stop()
                    raise RuntimeError(f"{kind} was not ready after {timeout} s")
                time.sleep(0.005)
        self.ready_after = time.perf_counter() - started

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a sandbox's --workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                pass
    return found


class RedisServer:
    """The run's own redis-server (Debian's), on a free loopback port, with the durability the
    Redis store documents (AOF, fsync always)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server is missing: apt-get install redis-server")
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
             "--appendonly", "yes", "--appendfsync", FSYNC, "--logfile", "redis.log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


FSYNC = os.environ.get("BENCH_REDIS_FSYNC", "always")
STORE_SETUPS = {"memory": ("memory store, 1 process", ()), "redis-1": ("Redis store, 1 worker", ("redis", 1)),
                "redis-2": ("Redis store, 2 workers", ("redis", 2))}


def measure_stores(wrk: str, prism: Path | None, connections: int, duration: float, warmup: float,
                   out: Path) -> dict:
    """The mixed workload on each store set-up (and Prism), with CPU per request of the sandbox's
    processes (t_w) and of redis-server (t_r)."""
    shutil.rmtree(out / "redis", ignore_errors=True)  # a fresh Redis: an old run's AOF would be replayed
    redis = RedisServer(out / "redis")
    results = {}
    try:
        for number, (name, (_label, setup)) in enumerate(STORE_SETUPS.items()):
            flags = () if not setup else ("--store", redis.url, "--store-prefix", f"bench{number}",
                                          "--workers", str(setup[1]))
            with Server("sandbox", flags=flags) as server:
                write_ids(server.base)
                if warmup:
                    run_wrk(wrk, server.base, 8, warmup, BENCH / "workload.lua")
                    # Requests wrk sent before it stopped may still be queued: a late delete after the
                    # reset would take a credit the measured run makes again (ids repeat after a reset).
                    time.sleep(1.0)
                httpx.post(f"{server.base}/__sandbox/reset")
                pids = [server.process.pid, *children(server.process.pid)]
                before = sum(cpu_seconds(pid) for pid in pids), cpu_seconds(redis.process.pid)
                row = run_wrk(wrk, server.base, connections, duration, BENCH / "workload.lua")
                after = sum(cpu_seconds(pid) for pid in pids), cpu_seconds(redis.process.pid)
                row["processes"] = len(pids)
                row["sandbox_cpu_ms_per_request"] = round((after[0] - before[0]) / max(row["requests"], 1) * 1000, 3)
                row["redis_cpu_ms_per_request"] = (round((after[1] - before[1]) / max(row["requests"], 1) * 1000, 3)
                                                   if setup else None)
                results[name] = row
                print(f"  stores {name:>8} @ {connections} connections: {row['requests_per_second']:.0f} req/s", flush=True)
        if prism is not None:
            with Server("prism", prism=prism) as server:
                results["prism"] = run_wrk(wrk, server.base, connections, duration, BENCH / "workload.lua")
    finally:
        redis.stop()
    return {"connections": connections, "rows": results}


def first_business(base: str) -> dict:
    return httpx.get(f"{base}/__sandbox/businesses").json()["data"][0]


def write_ids(base: str) -> None:
    """The seeded ids the Lua workload uses, for the sandbox at `base` (Prism takes any id)."""
    business = first_business(base)
    listing = httpx.get(f"{base}/v1/businesses/{business['id']}/invoices/customer-credits",
                        params={"limit": 1000}, headers=TOKEN).json()["data"]
    credits = ", ".join(f'"{c["id"]}"' for c in listing)
    (BENCH / "bench_ids.lua").write_text(
        f'return {{business = "{business["id"]}", customer = "{business["customers"][0]["id"]}", '
        f'credits = {{{credits}}}}}\n')


def parse_wrk(output: str) -> dict:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()
        return round(float(number) * UNITS[unit], 3)

    def size(value: str) -> float:
        number, unit = re.match(r"([\d.]+)([KMG]?B)", value).groups()
        return float(number) * {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}[unit]

    percentiles = {p: ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M)}
    done = re.search(r"(\d+) requests in [\d.]+\w+, ([\d.]+[KMG]?B) read", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    requests = int(done.group(1))
    return {
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "mean_ms": ms(re.search(r"Latency\s+(\S+)", output).group(1)),
        "p50_ms": percentiles.get("50"), "p99_ms": percentiles.get("99"),
        "requests": requests, "bytes_per_response": round(size(done.group(2)) / max(requests, 1)),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": errors.group(1).strip() if errors else None,
    }


def run_wrk(wrk: str, url: str, connections: int, duration: float, script: Path | None = None,
            headers: dict | None = None) -> dict:
    # --timeout: wrk counts a request slower than its default 2 s as a socket error; a stall of the
    # machine is latency, which the percentiles should show.
    command = [wrk, f"-t{min(2, connections)}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency",
               "--timeout", "30s"]
    command += ["-s", str(script)] if script else []
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    result = subprocess.run(command + [url], capture_output=True, text=True, timeout=duration + 120,
                            env={**os.environ, "BENCH_DIR": str(BENCH)})
    if result.returncode != 0:
        raise RuntimeError(result.stderr or result.stdout)
    return parse_wrk(result.stdout)


def measure_load(wrk: str, servers: list[str], prism: Path | None, levels: list[int], duration: float,
                 warmup: float) -> dict:
    results = {}
    for kind in servers:
        with Server(kind, prism=prism) as server:
            if kind != "prism":
                write_ids(server.base)
            if warmup:
                run_wrk(wrk, server.base, 8, warmup, BENCH / "workload.lua")
            results[kind] = {}
            for connections in levels:
                if kind != "prism":
                    httpx.post(f"{server.base}/__sandbox/reset")  # the same starting state for every level
                results[kind][connections] = run_wrk(wrk, server.base, connections, duration, BENCH / "workload.lua")
                print(f"  load {SERVERS[kind]:>24} @ {connections:>2} connections: "
                      f"{results[kind][connections]['requests_per_second']:.0f} req/s", flush=True)
    return results


def measure_cold_start(servers: list[str], prism: Path | None, starts: int) -> dict:
    results = {}
    for kind in servers:
        times = []
        for _ in range(starts):
            with Server(kind, prism=prism) as server:
                times.append(server.ready_after)
        results[kind] = {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3),
                         "max_s": round(max(times), 3), "starts": starts}
        print(f"  cold start {SERVERS[kind]:>18}: median {results[kind]['median_s']} s", flush=True)
    return results


def scenario_file(out: Path, credits: int) -> Path:
    path = out / f"scenario-{credits}-credits.yaml"
    path.write_text(f"description: bench/run.py, one business with {credits} credits\nextends: default\n"
                    f"businesses:\n  - {{credits: {credits}, customers: 200, invoices: 200, deleted: 0}}\n")
    return path


def measure_sizes(wrk: str, sizes: list[int], duration: float, namespaces: int, out: Path) -> tuple[dict, dict]:
    """List latency at each size, the RSS at each size, and the RSS per extra namespace."""
    latency, memory = {}, {}
    for credits in sizes:
        with Server("sandbox", scenario=str(scenario_file(out, credits)), timeout=900) as server:
            business = first_business(server.base)["id"]
            url = f"{server.base}/v1/businesses/{business}/invoices/customer-credits?limit=20"
            run_wrk(wrk, url, 1, min(duration, 2), headers=TOKEN)  # warm-up
            latency[credits] = run_wrk(wrk, url, 1, duration, headers=TOKEN)
            latency[credits]["seeded_in_s"] = round(server.ready_after, 2)
            memory[f"rss_mib_with_{credits}_credits"] = rss_mib(server.process.pid)
            print(f"  list @ {credits} credits: p50 {latency[credits]['p50_ms']} ms; "
                  f"RSS {memory[f'rss_mib_with_{credits}_credits']} MiB", flush=True)
    with Server("sandbox") as server:
        business = first_business(server.base)["id"]
        url = f"{server.base}/v1/businesses/{business}/invoices/customer-credits"
        for number in range(3):  # the first namespaces reuse memory start-up freed: not counted
            httpx.get(url, headers={**TOKEN, "X-Sandbox-Namespace": f"warm-{number}"}).raise_for_status()
        before = rss_mib(server.process.pid)
        for number in range(namespaces):
            httpx.get(url, headers={**TOKEN, "X-Sandbox-Namespace": f"bench-{number}"}).raise_for_status()
        after = rss_mib(server.process.pid)
    memory["rss_mib_default_one_namespace"] = before
    memory["mib_per_namespace"] = round((after - before) / namespaces, 3)
    memory["namespaces_added"] = namespaces
    return latency, memory


# The list routes side by side: (label, path under /v1/businesses/{id}/); the same query for each.
ROUTES = [("customers", "customers"), ("invoices", "invoices"), ("credits", "invoices/customer-credits")]
ROUTE_SCENARIOS = ["default", "paging"]
ROUTE_LIMIT = 100


def measure_routes(wrk: str, scenarios: list[str], duration: float, rounds: int) -> dict:
    """Per-request cost of GET customers, invoices and credits (limit 100) of the first business,
    one connection, as the list latency: a warm-up, then wrk for `duration` seconds a route. The
    seconds are split into `rounds` that take the routes in turn, so that a drift of the machine's
    speed falls on all three alike; each figure is the median of the rounds' (req/s also its range)."""
    results = {}
    for scenario in scenarios:
        with Server("sandbox", scenario=scenario) as server:
            business = first_business(server.base)["id"]
            urls, items = {}, {}
            for label, path in ROUTES:
                urls[label] = f"{server.base}/v1/businesses/{business}/{path}?limit={ROUTE_LIMIT}"
                sample = httpx.get(urls[label], headers=TOKEN)  # one checked answer: what the page holds
                sample.raise_for_status()
                contract = sample.headers.get("X-Sandbox-Contract")
                if contract != "request=pass; response=pass":
                    raise RuntimeError(f"{label} in {scenario}: X-Sandbox-Contract {contract}")
                items[label] = len(sample.json()["data"])
                run_wrk(wrk, urls[label], 1, min(duration, 2), headers=TOKEN)  # warm-up
            runs, load = {label: [] for label in urls}, {label: [] for label in urls}
            cpu = dict.fromkeys(urls, 0.0)
            for _ in range(rounds):
                for label, url in urls.items():
                    load[label].append(os.getloadavg()[0])  # others' work on the machine, for the reader
                    before = cpu_seconds(server.process.pid)
                    runs[label].append(run_wrk(wrk, url, 1, duration / rounds, headers=TOKEN))
                    cpu[label] += cpu_seconds(server.process.pid) - before
            results[scenario] = {}
            for label, done in runs.items():
                row = {key: statistics.median(r[key] for r in done)
                       for key in ("requests_per_second", "mean_ms", "p50_ms", "p99_ms", "bytes_per_response")}
                row.update({
                    "requests_per_second_range": [min(r["requests_per_second"] for r in done),
                                                  max(r["requests_per_second"] for r in done)],
                    "rounds": rounds, "requests": sum(r["requests"] for r in done), "items": items[label],
                    "non_2xx": sum(r["non_2xx"] for r in done),
                    "socket_errors": next((r["socket_errors"] for r in done if r["socket_errors"]), None),
                    "load_average_1min": [round(min(load[label]), 2), round(max(load[label]), 2)],
                    # the server's own CPU time a request: what others' work on the machine changes least
                    "server_cpu_ms_per_request": round(cpu[label] * 1000 / max(1, sum(r["requests"] for r in done)), 3),
                })
                results[scenario][label] = row
                print(f"  list {label:>9} ({scenario}, {row['items']} on the page): "
                      f"{row['requests_per_second']:.0f} req/s ({row['requests_per_second_range'][0]:.0f} to "
                      f"{row['requests_per_second_range'][1]:.0f}), mean {row['mean_ms']} ms, p50 {row['p50_ms']} ms, "
                      f"p99 {row['p99_ms']} ms; server CPU {row['server_cpu_ms_per_request']} ms a request", flush=True)
    return results


PLUGIN_SUITE = """
import http.client, os, pytest
from urllib.parse import urlsplit

N = int(os.environ["BENCH_TESTS"])
MODE = os.environ["BENCH_MODE"]
LIST = "/v1/businesses/{business}/invoices/customer-credits?limit=1"


def call(base_url):
    url = urlsplit(base_url + LIST.format(business=os.environ["BENCH_BUSINESS"]))
    connection = http.client.HTTPConnection(url.hostname, url.port)
    connection.request("GET", url.path + "?" + url.query, headers={"Authorization": "Bearer bench"})
    assert connection.getresponse().status == 200
    connection.close()


if MODE == "namespace_per_test":
    @pytest.mark.parametrize("n", range(N))
    def test_one(layer_sandbox, n):
        call(layer_sandbox.base_url)
elif MODE == "shared_namespace":
    @pytest.mark.parametrize("n", range(N))
    def test_one(n):
        call(os.environ["LAYER_SANDBOX_URL"])
else:
    @pytest.mark.parametrize("n", range(N))
    def test_one(n):
        pass
"""
# Plugins of the benchmark's own environment that a consumer's suite would not load.
NOT_A_CONSUMERS = ["-p", "no:cacheprovider", "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio",
                   "-p", "no:Faker", "-p", "no:xdist"]


def measure_namespaces(tests: int, rounds: int, out: Path) -> dict:
    """A fresh namespace: its cost on the server, and per test of a pytest suite using the plugin."""
    import http.client

    results = {}
    with Server("sandbox") as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port)

        def timed(method: str, path: str, body: bytes | None = None) -> float:
            started = time.perf_counter()
            connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            assert response.status < 300, (method, path, response.status)
            return (time.perf_counter() - started) * 1000

        for _ in range(20):  # warm-up: the template is seeded once, by the first of these
            timed("PUT", "/__sandbox/namespaces/warm", b"{}")
        health = [timed("GET", "/__sandbox/health") for _ in range(rounds)]
        made = []
        for number in range(rounds):
            made.append(timed("PUT", f"/__sandbox/namespaces/ns-{number}", b"{}"))
            timed("DELETE", f"/__sandbox/namespaces/ns-{number}")
        connection.close()
        results["server"] = {
            "put_namespace_p50_ms": round(statistics.median(made), 3),
            "health_p50_ms": round(statistics.median(health), 3),
            "namespace_copy_ms": round(statistics.median(made) - statistics.median(health), 3),
            "rounds": rounds,
        }
        print(f"  a new namespace (PUT, default scenario): p50 {results['server']['put_namespace_p50_ms']} ms "
              f"against {results['server']['health_p50_ms']} ms for a health check", flush=True)

        suite = out / "plugin_suite"
        suite.mkdir(exist_ok=True)
        (suite / "test_suite.py").write_text(PLUGIN_SUITE)
        (suite / "pytest.ini").write_text("[pytest]\n")  # the suite's own root: not this project's settings
        env = {**os.environ, "BENCH_TESTS": str(tests), "LAYER_SANDBOX_URL": server.base,
               "BENCH_BUSINESS": first_business(server.base)["id"]}
        seconds = {}
        for mode in ("baseline", "shared_namespace", "namespace_per_test"):
            ran = subprocess.run([sys.executable, "-m", "pytest", "-q", *NOT_A_CONSUMERS, "test_suite.py"], cwd=suite,
                                 env={**env, "BENCH_MODE": mode}, capture_output=True, text=True, timeout=600)
            found = re.search(rf"{tests} passed in ([\d.]+)s", ran.stdout)
            if not found:
                raise RuntimeError(f"the {mode} suite failed:\n{ran.stdout[-2000:]}{ran.stderr[-2000:]}")
            seconds[mode] = float(found.group(1))
            print(f"  {tests} tests, {mode.replace('_', ' ')}: {seconds[mode]} s", flush=True)
    results["suite"] = {
        "tests": tests, "seconds": seconds,
        "ms_per_test_namespace": round((seconds["namespace_per_test"] - seconds["shared_namespace"]) / tests * 1000, 3),
        "ms_per_test_over_baseline": round((seconds["namespace_per_test"] - seconds["baseline"]) / tests * 1000, 3),
    }
    return results


def bench_pact(interactions: int) -> dict:
    """A V4 pact of `interactions` interactions, four kinds in turn, each with its own ids."""
    business = "b0000000-0000-4000-8000-000000000000"
    items = []
    for n in range(interactions):
        customer, invoice = f"c0000000-0000-4000-8000-{n:012d}", f"10000000-0000-4000-8000-{n:012d}"
        states = [{"name": "a business exists", "params": {"id": business}},
                  {"name": "an invoice exists", "params": {"id": invoice, "customer_id": customer,
                                                           "total_amount": 100000}}]
        root = f"/v1/businesses/{business}"
        kind = n % 4
        if kind == 0:
            request, status, body = {"method": "GET", "path": f"{root}/customers"}, 200, {"data": [{"id": customer}]}
        elif kind == 1:
            request, status, body = ({"method": "GET", "path": f"{root}/invoices/{invoice}"}, 200,
                                     {"data": {"id": invoice, "outstanding_balance": 100000, "status": "SAVED"}})
        elif kind == 2:
            create = {"customer_id": customer, "line_items": [{"amount": 2500, "revenue_account_identifier": {
                "type": "StableName", "stable_name": "SALES"}}], "allocations": [{"invoice_id": invoice, "amount": 2500}]}
            request = {"method": "POST", "path": f"{root}/invoices/customer-credits",
                       "headers": {"Content-Type": ["application/json"]},
                       "body": {"content": create, "contentType": "application/json", "encoded": False}}
            status, body = 201, {"data": {"allocations": [{"invoice_id": invoice, "amount": 2500}]}}
        else:
            states.append({"name": "a customer credit exists", "params": {
                "customer_id": customer, "amount": 2500, "allocations": [{"invoice_id": invoice, "amount": 2500}]}})
            request, status, body = ({"method": "GET", "path": f"{root}/invoices/{invoice}"}, 200,
                                     {"data": {"outstanding_balance": 97500, "status": "PARTIALLY_PAID"}})
        request.setdefault("headers", {})["Authorization"] = ["Bearer bench-token"]
        items.append({"type": "Synchronous/HTTP", "description": f"interaction {n:03d}", "providerStates": states,
                      "request": request, "response": {
                          "status": status, "headers": {"Content-Type": ["application/json"]},
                          "body": {"content": body, "contentType": "application/json", "encoded": False}}})
    return {"consumer": {"name": "bench-consumer"}, "provider": {"name": "layer"}, "interactions": items,
            "metadata": {"pactSpecification": {"version": "4.0"}}}


def measure_pact(interactions: int, runs: int, out: Path) -> dict:
    """verify-pact's wall time on one pact, against a running sandbox and with one started for it."""
    path = out / "bench-pact.json"
    path.write_text(json.dumps(bench_pact(interactions)))
    command = [sandbox_script(), "verify-pact", str(path), "--format", "json"]
    figures = {}
    with Server("sandbox") as server:
        for label, extra in (("running sandbox (--url)", ["--url", server.base]), ("sandbox started for the run", [])):
            walls, inner = [], []
            for _ in range(runs):
                started = time.perf_counter()
                done = subprocess.run(command + extra, capture_output=True, text=True, timeout=600)
                walls.append(time.perf_counter() - started)
                report = json.loads(done.stdout) if done.returncode == 0 else {"summary": {"passed": None}}
                if done.returncode != 0 or report["summary"]["passed"] != interactions:
                    raise SystemExit(f"verify-pact did not pass the benchmark's pact: {done.stdout[-2000:]}{done.stderr}")
                inner.append(report["summary"]["seconds"])
            wall, verified = statistics.median(walls), statistics.median(inner)
            figures[label] = {"interactions": interactions, "runs": runs, "wall_s": round(wall, 2),
                              "verification_s": round(verified, 2),
                              "interactions_per_second": round(interactions / verified, 1),
                              "interactions_per_second_wall": round(interactions / wall, 1)}
    return figures


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


def markdown(results: dict) -> str:
    """The figures of the parts that ran, as markdown."""
    lines = []
    levels = results["levels"]
    if "load" in results:
        load = results["load"]
        lines += ["", "### Load (bench/workload.lua)", "",
                  "| connections | server | req/s | p50 ms | p99 ms | bytes/response | non-2xx | req/s vs Prism |",
                  "|---|---|---|---|---|---|---|---|"]
        for connections in levels:
            prism_rps = load.get("prism", {}).get(connections, {}).get("requests_per_second")
            for kind, rows in load.items():
                row = rows[connections]
                lines.append(f"| {connections} | {SERVERS[kind]} | {row['requests_per_second']:.0f} | {row['p50_ms']} | "
                             f"{row['p99_ms']} | {row['bytes_per_response']} | {row['non_2xx']} | "
                             f"{ratio(row['requests_per_second'], prism_rps) if kind != 'prism' else ''} |")
        if "sandbox" in load and "sandbox-unvalidated" in load:
            lines += ["", "Validation's cost per request (1 / req/s, validated minus unvalidated): " + ", ".join(
                f"{(1 / load['sandbox'][c]['requests_per_second'] - 1 / load['sandbox-unvalidated'][c]['requests_per_second']) * 1000:.2f} ms "
                f"at {c}" for c in levels)]
    if "cold_start" in results:
        cold = results["cold_start"]
        lines += ["", "### Cold start (process start to first good answer)", "", "| server | median s | min s | max s |",
                  "|---|---|---|---|"]
        lines += [f"| {SERVERS[k]} | {v['median_s']} | {v['min_s']} | {v['max_s']} |" for k, v in cold.items()]
        if "prism" in cold:
            lines += ["", f"sandbox / Prism: {ratio(cold['sandbox']['median_s'], cold['prism']['median_s'])}"]
    if "list_latency" in results:
        lat = results["list_latency"]
        lines += ["", "### First page (limit 20), one connection", "",
                  "| credits in the business | req/s | mean ms | p50 ms | p99 ms | seeded and ready in s |", "|---|---|---|---|---|---|"]
        lines += [f"| {n} | {r['requests_per_second']:.0f} | {r['mean_ms']} | {r['p50_ms']} | {r['p99_ms']} | {r['seeded_in_s']} |"
                  for n, r in lat.items()]
        sizes = list(lat)
        if len(sizes) > 1:
            lines += ["", f"p50 at {sizes[-1]} / p50 at {sizes[0]}: {ratio(lat[sizes[-1]]['p50_ms'], lat[sizes[0]]['p50_ms'])}"]
    if "memory" in results:
        lines += ["", "### Memory (VmRSS)", ""] + [f"- {k.replace('_', ' ')}: {v}" for k, v in results["memory"].items()]
    if "routes" in results:
        lines += ["", f"### List routes (limit {ROUTE_LIMIT}, first business), one connection", "",
                  "| scenario | route | on the page | bytes/response | req/s | req/s range | mean ms | p50 ms | p99 ms "
                  "| server CPU ms/request | non-2xx |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for scenario, rows in results["routes"].items():
            lines += [f"| {scenario} | list {label} | {r['items']} | {r['bytes_per_response']:.0f} | "
                      f"{r['requests_per_second']:.0f} | {r['requests_per_second_range'][0]:.0f} to "
                      f"{r['requests_per_second_range'][1]:.0f} | {r['mean_ms']} | {r['p50_ms']} | {r['p99_ms']} | "
                      f"{r['server_cpu_ms_per_request']} | {r['non_2xx']} |" for label, r in rows.items()]
        every = [r for rows in results["routes"].values() for r in rows.values()]
        rounds = every[0]["rounds"]
        lines += ["", f"Medians of {rounds} round{'s' if rounds != 1 else ''} taking the routes in turn; the "
                  f"1-minute load average before them: {min(r['load_average_1min'][0] for r in every)} to "
                  f"{max(r['load_average_1min'][1] for r in every)}"]
    if "namespaces" in results:
        server, suite = results["namespaces"]["server"], results["namespaces"]["suite"]
        lines += ["", "### A fresh namespace per test", "",
                  f"- PUT /__sandbox/namespaces/NAME (default scenario): p50 {server['put_namespace_p50_ms']} ms, "
                  f"a health check {server['health_p50_ms']} ms: the copy costs about {server['namespace_copy_ms']} ms",
                  f"- {suite['tests']} tests, each one API call: {suite['seconds']['namespace_per_test']} s with a fresh "
                  f"namespace per test (the pytest plugin), {suite['seconds']['shared_namespace']} s on one shared "
                  f"namespace, {suite['seconds']['baseline']} s for the same tests with no sandbox and no call",
                  f"- the plugin's namespace per test: {suite['ms_per_test_namespace']} ms a test; everything over the "
                  f"no-sandbox baseline (the API call included): {suite['ms_per_test_over_baseline']} ms a test"]
    if "stores" in results:
        stores = results["stores"]
        rows = stores["rows"]
        prism_rps = rows.get("prism", {}).get("requests_per_second")
        lines += ["", f"### Stores (bench/workload.lua, {stores['connections']} connections)", "",
                  "| set-up | req/s | p50 ms | p99 ms | non-2xx | sandbox CPU ms/request | redis-server CPU ms/request "
                  "| req/s vs Prism |", "|---|---|---|---|---|---|---|---|"]
        for name, row in rows.items():
            label = "Prism" if name == "prism" else STORE_SETUPS[name][0]
            lines.append(f"| {label} | {row['requests_per_second']:.0f} | {row['p50_ms']} | {row['p99_ms']} | "
                         f"{row['non_2xx']} | {row.get('sandbox_cpu_ms_per_request', '')} | "
                         f"{row.get('redis_cpu_ms_per_request') or ''} | "
                         f"{ratio(row['requests_per_second'], prism_rps) if name != 'prism' else ''} |")
    if "pact" in results:
        lines += ["", "### verify-pact", "", "| sandbox | interactions | wall s (the command) | verification s (both "
                  "checks, all interactions) | interactions/s | interactions/s, wall |", "|---|---|---|---|---|---|"]
        lines += [f"| {label} | {r['interactions']} | {r['wall_s']} | {r['verification_s']} | "
                  f"{r['interactions_per_second']} | {r['interactions_per_second_wall']} |"
                  for label, r in results["pact"].items()]
        lines += ["", f"Medians of {next(iter(results['pact'].values()))['runs']} runs."]
    return "\n".join(lines[1:]) + "\n"


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is missing (pip install '.[bench]'): no plot", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    load, levels = results["load"], results["levels"]
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(load)
    for index, (kind, rows) in enumerate(load.items()):
        xs = [position + index * width for position in range(len(levels))]
        color = f"C{index}"  # one color per server in both charts
        throughput.bar(xs, [rows[c]["requests_per_second"] for c in levels], width, label=SERVERS[kind], color=color)
        latency.plot(range(len(levels)), [rows[c]["p50_ms"] for c in levels], marker="o", color=color,
                     label=f"{SERVERS[kind]} p50")
        latency.plot(range(len(levels)), [rows[c]["p99_ms"] for c in levels], marker="^", linestyle="--", color=color,
                     label=f"{SERVERS[kind]} p99")
    for axis in (throughput, latency):
        axis.set_xlabel("connections")
    throughput.set_xticks([p + width * (len(load) - 1) / 2 for p in range(len(levels))], [str(c) for c in levels])
    latency.set_xticks(range(len(levels)), [str(c) for c in levels])
    throughput.set_ylabel("requests / s")
    throughput.set_title("Throughput, mixed workload")
    latency.set_ylabel("ms (log scale)")
    latency.set_yscale("log")
    latency.set_title("Latency")
    throughput.legend(fontsize=8)
    latency.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up before each load series")
    parser.add_argument("--connections", default="1,8,32", help="comma-separated concurrency levels")
    parser.add_argument("--starts", type=int, default=5, help="cold starts per server")
    parser.add_argument("--credits", default="1000,100000", help="business sizes for the list latency")
    parser.add_argument("--namespaces", type=int, default=50, help="namespaces added for the memory figure")
    parser.add_argument("--plugin-tests", type=int, default=500, help="tests in the pytest plugin's suite")
    parser.add_argument("--skip-prism", action="store_true", help="measure the sandbox only")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 s, one connection, small businesses, no Prism")
    parser.add_argument("--route-rounds", type=int, default=3,
                        help="rounds the list routes take in turn (their --duration split between them)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"comma-separated parts to run (default: all): {', '.join(PARTS)}")
    parser.add_argument("--out", type=Path, default=BENCH / "out")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))} (known: {', '.join(PARTS)})")
    if args.quick:
        args.duration, args.warmup, args.connections, args.starts = 1.0, 0.0, "1", 2
        args.route_rounds = 1
        args.credits, args.namespaces, args.skip_prism, args.plugin_tests = "100,1000", 2, True, 20
    levels = [int(c) for c in args.connections.split(",")]
    sizes = [int(c) for c in args.credits.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    wrk = ensure_wrk()
    prism = None if args.skip_prism or not {"load", "cold", "stores"} & set(parts) else ensure_prism()
    servers = ["sandbox", "sandbox-unvalidated"] + ([] if args.skip_prism else ["prism"])

    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "wrk": subprocess.run([wrk, "-v"], capture_output=True, text=True).stdout.split("\n")[0].strip()},
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "levels": levels,
    }
    if "load" in parts:
        print("load ...", flush=True)
        results["load"] = measure_load(wrk, servers, prism, levels, args.duration, args.warmup)
    if "cold" in parts:
        print("cold start ...", flush=True)
        results["cold_start"] = measure_cold_start([s for s in servers if s != "sandbox-unvalidated"], prism, args.starts)
    if "sizes" in parts:
        print("list latency and memory ...", flush=True)
        results["list_latency"], results["memory"] = measure_sizes(wrk, sizes, args.duration, args.namespaces, args.out)
    if "routes" in parts:
        print("list routes ...", flush=True)
        results["routes"] = measure_routes(wrk, ROUTE_SCENARIOS, max(args.duration, args.route_rounds),
                                           args.route_rounds)
    if "namespaces" in parts:
        print("namespaces ...", flush=True)
        results["namespaces"] = measure_namespaces(args.plugin_tests, 20 if args.quick else 500, args.out)
    if "stores" in parts:
        print("stores ...", flush=True)
        results["stores"] = measure_stores(wrk, prism, 1 if args.quick else 32, args.duration, args.warmup, args.out)
    if "pact" in parts:
        print("verify-pact ...", flush=True)
        results["pact"] = measure_pact(8 if args.quick else 50, 1 if args.quick else 3, args.out)

    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (args.out / "results.md").write_text(text)
    plotted = "load" in results and plot(results, args.out / "load.png")
    print()
    print(text)
    print(f"written: {args.out / 'results.json'}, {args.out / 'results.md'}" + (f", {args.out / 'load.png'}" if plotted else ""))


if __name__ == "__main__":
    main()
