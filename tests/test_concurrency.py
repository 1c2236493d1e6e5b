"""Many clients at once against one business and namespace (issue 6, point 1).

Eight threads, each with its own connection and its own fixed random sequence, run a long mixed
sequence of creates (with allocations), updates (allocations, memo), deletes, fetches and paged
walks of the list, and race each other for the same credits to delete and the same invoices to
allocate. Afterwards every invariant is checked through HTTP:

- every acknowledged create is there (fetch and list) unless it was acknowledged as deleted;
- every credit is deleted at most once: of the racing deletes of one credit exactly one gets 200;
- allocations never exceed a credit's total, and no invoice is allocated beyond its total;
- a paged walk made while others were writing never repeats a credit and never skips one that
  lived through the whole walk (the seeded credits, which nobody deletes);
- the request journal holds exactly the requests the threads made, status by status;
- the --state-file log kept up: killed with SIGKILL and restarted, the sandbox holds exactly the
  state it had.
"""

from __future__ import annotations

import random
import signal
import threading
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest

from support import SandboxProcess, credits_path, customer_with_invoices, report, stable_line

THREADS = 8
STEPS = 150  # per thread: 1,200 mixed requests, plus the races and the walks' pages
AUTH = {"Authorization": "Bearer concurrency"}
PAGE = 7


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("concurrency")
    process = SandboxProcess(workdir, "--journal-size", "100000", "--state-file", str(workdir / "state.json"))
    process.state_file = workdir / "state.json"
    yield process
    process.stop()


class Worker:
    """One client thread: its requests, and a tally of what it was told."""

    def __init__(self, index: int, base: str, business: dict, customer: dict, invoices: list[dict],
                 contested: list[str], barrier: threading.Barrier) -> None:
        self.index = index
        self.random = random.Random(index)
        self.client = httpx.Client(base_url=base, headers=AUTH, timeout=30)
        self.path = credits_path(business["id"])
        self.customer = customer
        self.invoices = invoices
        self.contested = contested
        self.barrier = barrier
        self.sent: Counter = Counter()       # (method, status) -> count
        self.created: dict[str, int] = {}    # id -> total, acknowledged creates
        self.deleted: set[str] = set()       # ids this thread was told it deleted
        self.won: set[str] = set()           # contested credits this thread deleted
        self.walks: list[list[str]] = []     # ids seen by each full paged walk
        self.failures: list[str] = []

    def call(self, method: str, url: str, **kwargs) -> httpx.Response:
        response = self.client.request(method, url, **kwargs)
        self.sent[(method, response.status_code)] += 1
        if response.status_code >= 500:
            self.failures.append(f"{method} {url}: {response.status_code} {response.text[:300]}")
        return response

    def body(self, external_id: str) -> dict:
        amount = self.random.randint(1000, 60000)
        body = {"customer_id": self.customer["id"], "external_id": external_id, "memo": f"t{self.index}",
                "line_items": [stable_line("SALES", amount)]}
        if self.random.random() < 0.5:
            invoice = self.random.choice(self.invoices)
            # Often more than the invoice has left, so that threads fight for the same balance.
            body["allocations"] = [{"invoice_id": invoice["id"], "amount": self.random.randint(amount // 2, amount)}]
        return body

    def walk(self) -> None:
        seen, cursor = [], None
        while True:
            params = {"limit": PAGE, **({"cursor": cursor} if cursor else {})}
            page = self.call("GET", self.path, params=params)
            if page.status_code != 200:
                self.failures.append(f"walk page: {page.status_code} {page.text[:300]}")
                return
            document = page.json()
            seen += [c["id"] for c in document["data"]]
            cursor = document["meta"]["pagination"].get("cursor")
            if not document["meta"]["pagination"].get("has_more"):
                break
        self.walks.append(seen)

    def run(self) -> None:
        try:
            self.barrier.wait()
            # The race: every thread deletes every contested credit, in its own order.
            for credit_id in self.random.sample(self.contested, len(self.contested)):
                if self.call("DELETE", f"{self.path}/{credit_id}").status_code == 200:
                    self.won.add(credit_id)
            for step in range(STEPS):
                roll = self.random.random()
                mine = sorted(set(self.created) - self.deleted)
                if roll < 0.35 or not mine:
                    response = self.call("POST", self.path, json=self.body(f"t{self.index}-{step}"))
                    if response.status_code == 201:
                        credit = response.json()["data"]
                        self.created[credit["id"]] = sum(li["amount"] for li in credit["line_items"])
                elif roll < 0.55:
                    target = self.random.choice(mine)
                    invoice = self.random.choice(self.invoices)
                    self.call("PATCH", f"{self.path}/{target}", json={
                        "memo": f"t{self.index} s{step}",
                        "allocations": [{"invoice_id": invoice["id"], "amount": self.random.randint(1, self.created[target])}]})
                elif roll < 0.7:
                    target = self.random.choice(mine)
                    if self.call("DELETE", f"{self.path}/{target}").status_code == 200:
                        self.deleted.add(target)
                elif roll < 0.85:
                    target = self.random.choice(mine)
                    if self.call("GET", f"{self.path}/{target}").status_code != 200:
                        self.failures.append(f"own live credit {target} not found")
                elif roll < 0.93:
                    self.call("GET", self.path, params={"limit": 20, "sort_by": "updated_at", "sort_order": "DESC"})
                else:
                    self.walk()
        except Exception as exc:  # noqa: BLE001 -- reported by the test, not lost in the thread
            self.failures.append(f"thread {self.index}: {exc!r}")
        finally:
            self.client.close()


@dataclass
class Race:
    """What the threads race over: one business's customer, three of its invoices, ten credits
    every thread tries to delete, and the credits seeded before (which nobody deletes)."""

    business: dict
    customer: dict
    invoices: list[dict]
    path: str
    seeded: list[str]
    contested: list[str]

    @classmethod
    def set_up(cls, api: httpx.Client) -> Race:
        business = api.get("/__sandbox/businesses").json()["data"][0]
        customer, invoices = customer_with_invoices(business, minimum=2)
        path = credits_path(business["id"])
        seeded = [c["id"] for c in api.get(path, params={"limit": 1000}).json()["data"]]
        contested = [api.post(path, json={"customer_id": customer["id"], "memo": "contested",
                                          "line_items": [stable_line("SALES", 100)]}).json()["data"]["id"]
                     for _ in range(10)]
        return cls(business, customer, invoices[:3], path, seeded, contested)

    def run(self, bases: list[str], timeout: float) -> list[Worker]:
        """One Worker per base URL (thread i on bases[i]), started together; their tallies."""
        barrier = threading.Barrier(len(bases))
        workers = [Worker(i, base, self.business, self.customer, self.invoices, self.contested, barrier)
                   for i, base in enumerate(bases)]
        threads = [threading.Thread(target=w.run) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=timeout)
        assert not any(t.is_alive() for t in threads), "a client thread hung"
        failures = [f for w in workers for f in w.failures]
        assert not failures, failures[:10]
        return workers

    def check(self, workers: list[Worker], apis: list[httpx.Client]) -> dict:
        """Every invariant, read through each of `apis` (which must agree); the live credits."""
        sent = sum((w.sent for w in workers), Counter())
        created = {cid: amount for w in workers for cid, amount in w.created.items()}
        deleted = [cid for w in workers for cid in w.deleted]
        walks = [walk for w in workers for walk in w.walks]
        assert len(created) >= len(workers) * 5 and deleted and walks, "the workload must exercise every operation"

        # Deleted at most once: each contested credit by exactly one thread; no own credit twice.
        winners = Counter(cid for w in workers for cid in w.won)
        assert winners == Counter({cid: 1 for cid in self.contested})
        assert len(deleted) == len(set(deleted))

        # No acknowledged create is missing; every acknowledged delete holds; every api agrees.
        lives = [{c["id"]: c for c in api.get(self.path, params={"limit": 1000}).json()["data"]} for api in apis]
        live = lives[0]
        assert all(other == live for other in lives[1:])
        for credit_id in created:
            for api in apis:
                status = api.get(f"{self.path}/{credit_id}").status_code
                if credit_id in deleted:
                    assert status == 404 and credit_id not in live, credit_id
                else:
                    assert status == 200 and credit_id in live, credit_id
        assert set(live) == set(self.seeded) | (set(created) - set(deleted))

        # Allocations within each credit's total, invoices within theirs, balances that add up.
        allocated = Counter()
        for credit in live.values():
            credit_total = sum(li["amount"] for li in credit["line_items"])
            assert sum(a["amount"] for a in credit["allocations"]) <= credit_total, credit["id"]
            for allocation in credit["allocations"]:
                allocated[allocation["invoice_id"]] += allocation["amount"]
        for api in apis:
            now = {i["id"]: i for i in api.get("/__sandbox/businesses").json()["data"][0]["invoices"]}
            for invoice in self.invoices:
                after = now[invoice["id"]]
                assert 0 <= after["outstanding_balance"] <= after["total"]
                assert allocated[invoice["id"]] <= after["total"]
                assert after["total"] - after["outstanding_balance"] == allocated[invoice["id"]], invoice["id"]
        assert sum(n for (m, s), n in sent.items() if s == 422) > 0, "the race for invoice balances never happened"

        # Walks made under concurrent writes: no repeats, and no seeded credit skipped.
        for walk in walks:
            assert len(walk) == len(set(walk)), "a paged walk repeated a credit"
            assert set(self.seeded) <= set(walk), "a paged walk skipped a credit that lived throughout"
        return live


def tally(workers: list[Worker]) -> str:
    """What the threads sent and were told, for the report."""
    sent = sum((w.sent for w in workers), Counter())
    created = sum(len(w.created) for w in workers)
    deleted = sum(len(w.deleted) for w in workers)
    walks = sum(len(w.walks) for w in workers)
    return (f"{sum(sent.values())} requests: " + ", ".join(f"{m} {s}: {n}" for (m, s), n in sorted(sent.items()))
            + f"; {created} created, {deleted} deleted, {walks} paged walks")


def test_invariants_hold_after_concurrent_mixed_writes(server):
    base = server.base_url
    api = httpx.Client(base_url=base, headers=AUTH, timeout=30)
    race = Race.set_up(api)
    api.delete("/__sandbox/requests")

    workers = race.run([base] * THREADS, timeout=300)
    report(f"concurrency: {THREADS} threads, {tally(workers)}")

    # The journal saw exactly these requests, before the checks below add their own.
    journal = api.get("/__sandbox/requests", params={"path": race.path}).json()["data"]
    assert Counter((e["method"], e["status"]) for e in journal) == sum((w.sent for w in workers), Counter())

    race.check(workers, [api])

    # The log written under that load holds every write: killed and restarted, the same state.
    # (Not the id generator: a refused write (422) draws ids and logs nothing, so one that came
    # after the last logged write leaves the generator ahead; ids stay unique either way.)
    def without_generator(document: dict) -> dict:
        return {k: v for k, v in document.items() if k != "id_generator"}

    state = without_generator(api.get("/__sandbox/state").json()["data"])
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    server.stop()
    again = SandboxProcess(server.workdir, "--state-file", str(server.state_file))
    try:
        assert without_generator(httpx.get(f"{again.base_url}/__sandbox/state").json()["data"]) == state
    finally:
        again.stop()

    api.close()
