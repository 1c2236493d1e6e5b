"""No sequence of API and control calls leaves a state the sandbox refuses to load (issue 12,
point 1).

A sandbox's state leaves it three ways: the `--state-file` snapshot and its log (read back at
start), and `GET /__sandbox/state` (read back by `PUT /__sandbox/state`). Each is checked by the
importer (sandbox.snapshot), which refuses a document that breaks one of Layer's invariants. So
whatever the API and the control routes let a client do must leave a state that passes those
checks: otherwise a restart under docker-compose is a crash loop, and a saved export a fixture
that cannot be loaded.

The property test drives a real process with hypothesis-generated sequences of writes, clock
moves (to the ends of the clock's range, backwards, forwards), saves, resets, scenario loads,
namespaces made on first use, re-imports of the sandbox's own export, and restarts by SIGTERM and
SIGKILL; after every restart the sandbox must start and hold what it held before.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

from support import SandboxProcess, credits_path, report, stable_line

from layer_sandbox.clock import MAX_OFFSET, Clock

AUTH = {"Authorization": "Bearer t"}
# Bounded for a 2-core CI: each sequence starts one process and restarts it once or more.
EXAMPLES = int(os.environ.get("LAYER_SANDBOX_STATE_EXAMPLES", "10"))
MAX_STEPS = 12

NAMESPACES = ("default", "ci-a", "ci-b")
EXTERNAL_IDS = ("ext-a", "ext-b", "ext-c")
TAGS = (("department", "sales"), ("department", "new-dept"), ("project", "apollo"), ("project", "zeus"))
# Client `sent_at` values, from the first to the last moment a timestamp can name.
SENT_AT = (None, "2020-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
           "2024-02-29T23:30:00.123456+05:30", "1969-12-31T23:59:59Z")
CLOCK_BODIES = (
    {"frozen_at": "2020-01-01T00:00:00Z"},
    {"frozen_at": "1970-01-01T00:00:00Z"},  # the first moment of the clock's range
    {"frozen_at": "9000-01-01T00:00:00Z"},  # and its last
    {"frozen_at": "2026-06-01T12:00:00.5+02:00"},
    {"advance_seconds": -86400},
    {"advance_seconds": 86400.25},
    {"advance_seconds": -3e9},
    {"advance_seconds": 1e-7},
    {"start_at": "8999-01-01T00:00:00Z"},
    {"start_at": "9000-01-01T00:00:00Z"},
    {"start_at": "1970-01-01T00:00:00.000001Z"},
    {"system": True},
    {"freeze": True},
)
START_CLOCKS = (None, "frozen=2020-01-01T00:00:00Z", "start=8999-06-01T12:34:56.789012Z")
SCENARIOS = ("default", "deleted", "empty", "allocations")
PATCH_FIELDS = ("memo", "sent_at", "metadata", "reference_number", "tags", "allocations", "external_id",
                "line_items", "customer_id")

namespaces = st.sampled_from(NAMESPACES)
# kind: (weight, strategy). Writes and clock moves most often; a restart about once a sequence
# besides the one every sequence ends with. (Weighted by sampling kinds: `st.one_of` would fold
# repeated strategies into one.)
_STEPS = {
    "create": (3, st.tuples(st.just("create"), namespaces, st.integers(0, 10**6))),
    "patch": (3, st.tuples(st.just("patch"), namespaces, st.integers(-4, 4),
                           st.dictionaries(st.sampled_from(PATCH_FIELDS), st.integers(0, 10**6), min_size=1, max_size=4))),
    "delete": (2, st.tuples(st.just("delete"), namespaces, st.integers(-4, 4))),
    "clock": (3, st.tuples(st.just("clock"), namespaces, st.sampled_from(CLOCK_BODIES))),
    "save": (1, st.tuples(st.just("save"))),
    "reset": (1, st.tuples(st.just("reset"), namespaces, st.one_of(st.none(), st.integers(0, 3)))),
    "scenario": (1, st.tuples(st.just("scenario"), namespaces, st.sampled_from(SCENARIOS))),
    "reimport": (1, st.tuples(st.just("reimport"), namespaces)),
    "drop": (1, st.tuples(st.just("drop"), st.sampled_from(NAMESPACES[1:]))),
    "restart": (1, st.tuples(st.just("restart"), st.sampled_from(("term", "kill")))),
}
steps = st.sampled_from([kind for kind, (weight, _) in _STEPS.items() for _ in range(weight)]).flatmap(
    lambda kind: _STEPS[kind][1])
# (--clock at start, the steps, how the sequence's last restart stops the process)
sequences = st.tuples(st.sampled_from(START_CLOCKS), st.lists(steps, min_size=2, max_size=MAX_STEPS),
                      st.sampled_from(("term", "kill")))


def _setting(document: dict) -> dict:
    """An export without the clock's live `now` (if it has one), which moves on its own."""
    document.get("clock", {}).pop("now", None)
    return document


def _pick(options, k: int):
    return options[k % len(options)]


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _metadata(k: int) -> dict | None:
    """Metadata of every kind, including what the sandbox can keep only at the edge of its range
    and what it cannot send back (an integer beyond 64 bits, deep nesting), which it must refuse."""
    return _pick((None, {"n": k, "nested": {"ok": True}}, {"min": -(2**63), "max": 2**63 - 1, "f": 1e308},
                  _nested(64), {"n": 2**64}, _nested(65)), k)


class Run:
    """One sandbox process with a --state-file, driven step by step, and what it was told."""

    def __init__(self, workdir, start_clock: str | None, figures: Counter) -> None:
        self.workdir = workdir
        self.args = ["--state-file", str(workdir / "state.json")] + (["--clock", start_clock] if start_clock else [])
        self.figures = figures
        # Namespaces where a refused write may have drawn ids since the last snapshot: after a
        # SIGKILL their id generator is back where the last acknowledged write left it.
        self.ids_drawn_unlogged: set[str] = set()
        self.server = self._start()

    def _start(self) -> SandboxProcess:
        started = time.monotonic()
        server = SandboxProcess(self.workdir, *self.args)  # raises, with its stderr, if it cannot start
        self.figures["starts"] += 1
        self.figures["start seconds"] += time.monotonic() - started
        return server

    # ----------------------------------------------------------------------------- requests

    def call(self, method: str, path: str, namespace: str = "default", **kwargs) -> httpx.Response:
        response = httpx.request(method, self.server.base_url + path, timeout=30,
                                 headers={**AUTH, "X-Sandbox-Namespace": namespace}, **kwargs)
        assert response.status_code < 500, (f"{method} {path} ({namespace}): {response.status_code} "
                                            f"{response.text[:800]}\nsandbox log: {self.server.stderr[-3000:]}")
        self.figures["requests"] += 1
        return response

    def write(self, method: str, path: str, namespace: str, **kwargs) -> httpx.Response:
        response = self.call(method, path, namespace, **kwargs)
        self.figures[f"write {response.status_code}"] += 1
        if response.status_code >= 400:
            self.ids_drawn_unlogged.add(namespace)
        return response

    def checkpointed(self) -> None:
        """A snapshot of every namespace was just written: the id generators are in it."""
        self.ids_drawn_unlogged.clear()

    def business(self, namespace: str) -> dict:
        return self.call("GET", "/__sandbox/businesses", namespace).json()["data"][0]

    def target(self, namespace: str, business: dict, index: int) -> dict | None:
        """A live credit: the oldest ones (seeded, stamped in 2025) or the newest ones."""
        listed = self.call("GET", credits_path(business["id"]), namespace, params={"limit": 100}).json()["data"]
        return listed[index % len(listed)] if listed else None

    def snapshot(self) -> dict[str, dict]:
        """Every namespace's export, with the clock's setting but not its live reading."""
        names = [n["namespace"] for n in self.call("GET", "/__sandbox/namespaces").json()["data"]]
        return {name: _setting(self.call("GET", "/__sandbox/state", name).json()["data"]) for name in names}

    # ----------------------------------------------------------------------------- steps

    def step(self, kind: str, *args) -> None:
        self.figures[f"step {kind}"] += 1
        getattr(self, f"_{kind}")(*args)

    def _line(self, k: int) -> dict:
        tags = [{"key": key, "value": value} for key, value in TAGS[k % 3: k % 3 + (k // 3) % 2]]
        return stable_line("SALES", 100 + k % 5000, **({"tags": tags} if tags else {}))

    def _allocations(self, business: dict, customer_id: str, k: int, total: int) -> list[dict]:
        open_invoices = [i for i in business["invoices"]
                         if i["customer_id"] == customer_id and i["outstanding_balance"] > 0]
        if not open_invoices or k % 2:
            return []
        invoice = _pick(open_invoices, k // 2)
        return [{"invoice_id": invoice["id"], "amount": max(1, min(invoice["outstanding_balance"], total, 1 + k % 700))}]

    def _create(self, namespace: str, k: int) -> None:
        business = self.business(namespace)
        customer = _pick(business["customers"], k)
        line = self._line(k // 7)
        body = {"customer_id": customer["id"], "line_items": [line], "memo": f"created {k}",
                "sent_at": _pick(SENT_AT, k // 11)}
        if k % 3:
            body["external_id"] = _pick(EXTERNAL_IDS, k // 13)  # an upsert when one is live
        if k % 5 == 0:
            body["tags"] = [{"key": key, "value": value} for key, value in TAGS[(k // 5) % 4:][:2]]
        if k % 4 == 0:
            body["metadata"] = _metadata(k // 4)
        allocations = self._allocations(business, customer["id"], k // 17, line["amount"])
        if allocations:
            body["allocations"] = allocations
        self.write("POST", credits_path(business["id"]), namespace, json=body)

    def _patch(self, namespace: str, index: int, fields: dict) -> None:
        business = self.business(namespace)
        credit = self.target(namespace, business, index)
        if credit is None:
            self.figures["no credit to change"] += 1
            return
        body: dict = {}
        for name, k in fields.items():
            if name == "memo":
                body["memo"] = None if k % 3 == 0 else f"patched {k}"
            elif name == "sent_at":
                body["sent_at"] = _pick(SENT_AT, k)
            elif name == "metadata":
                body["metadata"] = _metadata(k)
            elif name == "reference_number":
                body["reference_number"] = None if k % 2 else f"ref-{k}"
            elif name == "tags":
                body["tags"] = [{"key": key, "value": value} for key, value in TAGS[k % 4:][: k % 3]]
            elif name == "allocations":
                total = sum(line["amount"] for line in credit["line_items"])
                body["allocations"] = self._allocations(business, credit["customer"]["id"], k, total)
            elif name == "external_id":
                body["external_id"] = _pick(EXTERNAL_IDS, k)
            elif name == "line_items":
                body["line_items"] = [self._line(k)]
            elif name == "customer_id":  # refused while allocations name the old customer's invoices
                body["customer_id"] = _pick(business["customers"], k)["id"]
        self.write("PATCH", credits_path(business["id"], credit["id"]), namespace, json=body)

    def _delete(self, namespace: str, index: int) -> None:
        business = self.business(namespace)
        credit = self.target(namespace, business, index)
        if credit is None:
            self.figures["no credit to change"] += 1
            return
        response = self.write("DELETE", credits_path(business["id"], credit["id"]), namespace)
        assert response.status_code == 200, response.text
        deleted = response.json()["data"]
        assert deleted["created_at"] <= deleted["updated_at"] == deleted["deleted_at"]

    def _clock(self, namespace: str, body: dict) -> None:
        response = self.call("POST", "/__sandbox/clock", namespace, json=body)
        self.figures[f"clock {response.status_code}"] += 1
        if response.status_code == 200:
            self.checkpointed()

    def _save(self) -> None:
        assert self.call("POST", "/__sandbox/save").status_code == 200
        self.checkpointed()

    def _reset(self, namespace: str, seed: int | None) -> None:
        response = self.call("POST", "/__sandbox/reset", namespace, json={} if seed is None else {"seed": seed})
        assert response.status_code == 200, response.text
        self.checkpointed()

    def _scenario(self, namespace: str, name: str) -> None:
        assert self.call("POST", f"/__sandbox/scenarios/{name}", namespace).status_code == 200
        self.checkpointed()

    def _reimport(self, namespace: str) -> None:
        """PUT the sandbox's own export back: accepted, and nothing changes."""
        exported = self.call("GET", "/__sandbox/state", namespace).json()
        response = self.call("PUT", "/__sandbox/state", namespace, json=exported)
        assert response.status_code == 200, f"own export refused: {response.text[:1500]}"
        self.checkpointed()
        assert self.call("GET", "/__sandbox/state", namespace).json() == exported

    def _drop(self, namespace: str) -> None:
        response = self.call("DELETE", f"/__sandbox/namespaces/{namespace}")
        assert response.status_code in (200, 404), response.text
        if response.status_code == 200:
            self.checkpointed()

    def _restart(self, how: str) -> None:
        before = self.snapshot()
        if how == "term":
            self.server.process.send_signal(signal.SIGTERM)
            assert self.server.process.wait(timeout=20) == 0, self.server.stderr[-3000:]
        else:
            self.server.process.send_signal(signal.SIGKILL)
            assert self.server.process.wait(timeout=10) == -signal.SIGKILL
        self.server.stop()
        assert "Traceback" not in self.server.stderr, self.server.stderr[-3000:]
        self.server = self._start()
        after = self.snapshot()
        assert sorted(after) == sorted(before)
        for name in before:
            if how == "kill" and name in self.ids_drawn_unlogged:
                # Refused writes drew ids that no acknowledged write used; the restarted
                # generator is where the last acknowledged write left it.
                before[name].pop("id_generator"), after[name].pop("id_generator")
                self.figures["id generators not compared (refused writes before a SIGKILL)"] += 1
            assert after[name] == before[name], f"namespace {name} changed across a restart by SIG{how.upper()}"
        self.figures[f"restarts by SIG{how.upper()}"] += 1
        self.checkpointed()

    def finish(self, how: str) -> None:
        """A last restart, then every namespace's own export is accepted back."""
        self._restart(how)
        for name, document in self.snapshot().items():
            response = self.call("PUT", "/__sandbox/state", name, json={"data": document})
            assert response.status_code == 200, f"own export of {name} refused: {response.text[:1500]}"
        self.server.stop()


def test_no_sequence_of_calls_leaves_a_state_that_does_not_load(tmp_path_factory):
    figures: Counter = Counter()

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck), print_blob=True)
    @given(sequence=sequences)
    def run(sequence):
        start_clock, planned, last_restart = sequence
        note(f"--clock {start_clock}; steps:\n" + "\n".join(map(repr, planned)) + f"\nthen SIG{last_restart.upper()}")
        figures["sequences"] += 1
        figures["steps"] += len(planned)
        sandbox = Run(tmp_path_factory.mktemp("state-always-loads"), start_clock, figures)
        try:
            for step in planned:
                sandbox.step(*step)
            sandbox.finish(last_restart)
        finally:
            sandbox.server.stop()

    started = time.monotonic()
    run()
    elapsed = time.monotonic() - started
    # The generated sequences did reach what they are meant to reach.
    for needed in ("write 200", "write 201", "clock 200", "step reimport", "step reset", "step scenario",
                   "restarts by SIGTERM", "restarts by SIGKILL"):
        assert figures[needed], f"no {needed} in {EXAMPLES} generated sequences: {sorted(figures.items())}"

    def counts(prefix: str) -> str:
        return ", ".join(f"{key.removeprefix(prefix)} {count}" for key, count in sorted(figures.items())
                         if key.startswith(prefix))

    report(f"state always loads: {figures['sequences']} generated sequences (fixed seed) of {figures['steps']} steps "
           f"({counts('step ')}), {figures['restarts by SIGTERM']} SIGTERM and {figures['restarts by SIGKILL']} "
           f"SIGKILL restarts, {figures['starts']} starts ({figures['start seconds']:.1f} s of starting), "
           f"{figures['requests']} requests; writes answered {counts('write ')}; clock settings answered "
           f"{counts('clock ')}; every restart held the state it had, every export re-imported; {elapsed:.1f} s")


# ---------------------------------------------------------------------------------- regressions

def _exports(base: str) -> dict[str, dict]:
    names = [n["namespace"] for n in httpx.get(f"{base}/__sandbox/namespaces").json()["data"]]
    return {name: _setting(httpx.get(f"{base}/__sandbox/state", headers={"X-Sandbox-Namespace": name}).json()["data"])
            for name in names}


def _stop(server: SandboxProcess, how: signal.Signals) -> None:
    server.process.send_signal(how)
    assert server.process.wait(timeout=20) == (0 if how == signal.SIGTERM else -how)
    server.stop()


@pytest.mark.parametrize("case, how", [("frozen in 2020, a seeded credit changed", signal.SIGTERM),
                                       ("a day back, a new credit changed and deleted", signal.SIGKILL)])
def test_writes_under_a_clock_set_back_leave_a_state_that_loads(tmp_path, case, how):
    """Issue 12, point 1: a credit changed while the clock reads earlier than its stamps keeps
    created_at <= updated_at <= deleted_at (the write is stamped with the later of the clock and
    the credit's own last stamp), so the state file loads at restart and the export imports."""
    state_file = tmp_path / "state.json"
    server = SandboxProcess(tmp_path, "--state-file", str(state_file))
    base = server.base_url
    business = httpx.get(f"{base}/__sandbox/businesses").json()["data"][0]
    path = f"{base}{credits_path(business['id'])}"
    clock = f"{base}/__sandbox/clock"
    try:
        if how == signal.SIGTERM:
            seeded = httpx.get(path, headers=AUTH, params={"limit": 1}).json()["data"][0]
            assert seeded["updated_at"] > "2025"
            assert httpx.post(clock, json={"frozen_at": "2020-01-01T00:00:00Z"}).status_code == 200
            patched = httpx.patch(f"{path}/{seeded['id']}", headers=AUTH, json={"memo": "changed in 2020"})
            assert patched.status_code == 200, patched.text
            assert patched.json()["data"]["updated_at"] == seeded["updated_at"]
            assert patched.json()["data"]["created_at"] == seeded["created_at"]
        else:
            assert httpx.post(clock, json={"frozen_at": "2026-03-01T12:00:00Z"}).status_code == 200
            created = httpx.post(path, headers=AUTH, json={"customer_id": business["customers"][0]["id"],
                                                           "line_items": [stable_line("SALES")]}).json()["data"]
            assert httpx.post(clock, json={"advance_seconds": -86400}).status_code == 200
            patched = httpx.patch(f"{path}/{created['id']}", headers=AUTH, json={"memo": "a day earlier"}).json()["data"]
            assert patched["created_at"] == patched["updated_at"] == "2026-03-01T12:00:00.000000Z"
            deleted = httpx.delete(f"{path}/{created['id']}", headers=AUTH).json()["data"]
            assert deleted["updated_at"] == deleted["deleted_at"] == "2026-03-01T12:00:00.000000Z"
        own = httpx.get(f"{base}/__sandbox/state").json()
        imported = httpx.put(f"{base}/__sandbox/state", json=own)
        assert imported.status_code == 200, imported.text
        before = _exports(base)
    finally:
        _stop(server, how)

    again = SandboxProcess(tmp_path, "--state-file", str(state_file))  # raised "does not hold" before
    try:
        assert _exports(again.base_url) == before
        # Once the clock is past a credit's stamps, its writes are stamped with the clock again.
        assert httpx.post(f"{again.base_url}/__sandbox/clock", json={"frozen_at": "2027-01-01T00:00:00Z"}).status_code == 200
        target = httpx.get(f"{again.base_url}{credits_path(business['id'])}", headers=AUTH, params={"limit": 1}).json()["data"][0]
        changed = httpx.patch(f"{again.base_url}{credits_path(business['id'], target['id'])}", headers=AUTH,
                              json={"memo": "later"}).json()["data"]
        assert changed["updated_at"] == "2027-01-01T00:00:00.000000Z"
    finally:
        again.stop()


def test_a_clock_run_from_the_end_of_its_range_exports_imports_and_restarts(tmp_path):
    """The clock runs from any time up to 9000-01-01: a start in 8999 is an offset of ~2.2e11 s,
    which the state schema used to bound at 1e11, refusing the sandbox's own export and state file."""
    state_file = tmp_path / "state.json"
    server = SandboxProcess(tmp_path, "--state-file", str(state_file))
    base = server.base_url
    business = httpx.get(f"{base}/__sandbox/businesses").json()["data"][0]
    try:
        assert httpx.post(f"{base}/__sandbox/clock", json={"start_at": "8999-01-01T00:00:00Z"}).status_code == 200
        assert httpx.get(f"{base}/__sandbox/clock").json()["data"]["offset_seconds"] > 2e11
        created = httpx.post(f"{base}{credits_path(business['id'])}", headers=AUTH, json={
            "customer_id": business["customers"][0]["id"], "line_items": [stable_line("SALES")]})
        assert created.json()["data"]["created_at"].startswith("8999-01-01T")
        own = httpx.get(f"{base}/__sandbox/state").json()
        imported = httpx.put(f"{base}/__sandbox/state", json=own)
        assert imported.status_code == 200, imported.text
        before = _exports(base)
        # The import still bounds the offset: by the clock's range, not below it.
        beyond = {**own["data"], "clock": {"mode": "system", "offset_seconds": MAX_OFFSET.total_seconds() * 1.01}}
        refused = httpx.put(f"{base}/__sandbox/state", json=beyond)
        assert refused.status_code == 400 and "offset_seconds" in refused.text
    finally:
        _stop(server, signal.SIGTERM)

    again = SandboxProcess(tmp_path, "--state-file", str(state_file))
    try:
        assert _exports(again.base_url) == before
        assert httpx.get(f"{again.base_url}/__sandbox/clock").json()["data"]["now"].startswith("8999-01-01T")
    finally:
        again.stop()


def test_a_restored_clock_reads_what_the_saved_one_read():
    """An offset of centuries does not fit a float to the microsecond: the clock keeps the offset
    its saved state reads back as, so a restarted clock reads the same time, not up to ~15 us off."""
    real_time = datetime(2026, 5, 17, 8, 30, 1, 123457, tzinfo=UTC)
    moved = 0
    for n in range(40):
        saved = Clock(now=lambda: real_time)
        saved.run_from(datetime(8999, 1, 1, tzinfo=UTC) + timedelta(seconds=n * 1234.567891))
        saved.advance(n * 0.000037)
        restored = Clock(now=lambda: real_time)
        restored.restore(json.loads(json.dumps(saved.state())))
        moved += restored() != saved()
    assert moved == 0, f"{moved} of 40 restored clocks read another time than the saved one"


@pytest.mark.parametrize("metadata, problem", [({"n": 2**64}, "64-bit"), ({"n": -(2**63) - 1}, "64-bit"),
                                               (_nested(65), "levels")])
def test_metadata_the_sandbox_could_not_send_back_is_refused(api, business, metadata, problem):
    """Such a credit used to be stored, logged and answered 500, and every list of its namespace
    after it, across restarts: now it is refused like oversized metadata, written or imported."""
    path = credits_path(business["id"])
    base = {"customer_id": business["customers"][0]["id"], "line_items": [stable_line("SALES")]}
    for body, field in (({**base, "metadata": metadata}, "metadata"),
                        ({**base, "line_items": [stable_line("SALES", metadata=metadata)]}, "line_items[0].metadata")):
        response = api.post(path, json=body)
        assert response.status_code == 422, response.text
        error = response.json()["errors"][0]
        assert error["meta"]["field"] == field and problem in error["description"]
    assert api.get(path, params={"limit": 100}).status_code == 200
    document = api.get("/__sandbox/state").json()["data"]
    document["businesses"][0]["customer_credits"][0]["metadata"] = metadata
    refused = api.put("/__sandbox/state", json=document)
    assert refused.status_code == 400 and problem in refused.text


def test_metadata_at_the_edges_of_what_is_kept_round_trips(api, business):
    metadata = {"deep": _nested(63), "min": -(2**63), "max": 2**63 - 1, "f": 1e308}
    created = api.post(credits_path(business["id"]), json={
        "customer_id": business["customers"][0]["id"], "line_items": [stable_line("SALES")], "metadata": metadata})
    assert created.status_code == 201, created.text
    assert created.json()["data"]["metadata"] == metadata
    assert api.get(credits_path(business["id"], created.json()["data"]["id"])).json()["data"]["metadata"] == metadata
    own = api.get("/__sandbox/state").json()
    assert api.put("/__sandbox/state", json=own).status_code == 200


def test_tags_a_write_makes_come_back_in_the_same_order_after_sigkill(tmp_path):
    """A write that makes tag values for its line items and for itself: the log's replay registers
    them in the order the store made them (lines first), so the restarted export is the same."""
    state_file = tmp_path / "state.json"
    server = SandboxProcess(tmp_path, "--state-file", str(state_file))
    base = server.base_url
    business = httpx.get(f"{base}/__sandbox/businesses").json()["data"][0]
    created = httpx.post(f"{base}{credits_path(business['id'])}", headers=AUTH, json={
        "customer_id": business["customers"][0]["id"], "tags": [{"key": "department", "value": "new-dept"}],
        "line_items": [stable_line("SALES", tags=[{"key": "project", "value": "apollo"}])]})
    assert created.status_code == 201, created.text
    before = _exports(base)
    _stop(server, signal.SIGKILL)
    again = SandboxProcess(tmp_path, "--state-file", str(state_file))
    try:
        assert _exports(again.base_url) == before
    finally:
        again.stop()
