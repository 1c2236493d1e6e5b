"""The same seed gives byte-identical data and responses; reset restores them. On either store,
and across them: the memory and the Redis store answer the same seed and the same requests with
the same bytes, exports included."""

from __future__ import annotations

import httpx
import pytest

from conftest import store_args
from support import SandboxProcess, credits_path, stable_line

AUTH = {"Authorization": "Bearer t"}


def snapshot(base_url: str) -> list[bytes]:
    """The raw bytes of everything seeded: the ids route and every business's full credit list."""
    world = httpx.get(f"{base_url}/__sandbox/businesses")
    parts = [world.content]
    for business in world.json()["data"]:
        listing = httpx.get(base_url + credits_path(business["id"]), params={"limit": 1000}, headers=AUTH)
        parts.append(listing.content)
        first = listing.json()["data"][0]["id"]
        parts.append(httpx.get(base_url + credits_path(business["id"], first), headers=AUTH).content)
    return parts


def creates(base_url: str) -> list[str]:
    business = httpx.get(f"{base_url}/__sandbox/businesses").json()["data"][0]
    ids = []
    for amount in (100, 200, 300):
        response = httpx.post(base_url + credits_path(business["id"]), headers=AUTH, json={
            "customer_id": business["customers"][1]["id"], "line_items": [stable_line("SALES", amount)],
            "tags": [{"key": "new-key", "value": f"v{amount}"}]})
        credit = response.json()["data"]
        ids.append((credit["id"], credit["line_items"][0]["id"], credit["transaction_tags"][0]["dimension_id"]))
    return ids


@pytest.fixture(scope="module")
def twins(tmp_path_factory, request, store):
    """Two sandboxes on seed 7: one set by flag, one by environment variable, started apart."""
    first = SandboxProcess(tmp_path_factory.mktemp("a"), "--seed", "7", *store_args(request, store))
    second = SandboxProcess(tmp_path_factory.mktemp("b"), *store_args(request, store), env={"LAYER_SANDBOX_SEED": "7"})
    yield first, second
    first.stop()
    second.stop()


def test_same_seed_same_bytes(twins):
    first, second = twins
    assert snapshot(first.base_url) == snapshot(second.base_url)


def test_same_seed_same_ids_for_the_same_requests(twins):
    first, second = twins
    assert creates(first.base_url) == creates(second.base_url)


def test_another_seed_gives_other_data(twins, sandbox):
    assert snapshot(twins[0].base_url)[0] != snapshot(sandbox.base_url)[0]


def test_reset_restores_the_seeded_bytes_and_can_switch_seed(twins, sandbox):
    first, second = twins
    for twin in twins:  # earlier tests created credits on both
        httpx.post(f"{twin.base_url}/__sandbox/reset")
    pristine = snapshot(first.base_url)
    assert pristine == snapshot(second.base_url)
    creates(first.base_url)
    business = httpx.get(f"{first.base_url}/__sandbox/businesses").json()["data"][0]
    victim = httpx.get(first.base_url + credits_path(business["id"]), headers=AUTH).json()["data"][0]
    httpx.delete(first.base_url + credits_path(business["id"], victim["id"]), headers=AUTH)
    assert snapshot(first.base_url) != pristine

    assert httpx.post(f"{first.base_url}/__sandbox/reset").json()["data"] == {
        "status": "reset", "namespace": "default", "scenario": "default", "seed": 7}
    assert snapshot(first.base_url) == pristine

    default_seed = httpx.get(f"{sandbox.base_url}/__sandbox/health").json()["data"]["seed"]
    httpx.post(f"{sandbox.base_url}/__sandbox/reset", json={})
    httpx.post(f"{first.base_url}/__sandbox/reset", json={"seed": default_seed})
    assert snapshot(first.base_url) == snapshot(sandbox.base_url)
    # A plain reset keeps the seed last asked for; asking for 7 again brings the pristine bytes back.
    httpx.post(f"{first.base_url}/__sandbox/reset")
    assert snapshot(first.base_url) == snapshot(sandbox.base_url)
    httpx.post(f"{first.base_url}/__sandbox/reset", json={"seed": 7})
    assert snapshot(first.base_url) == pristine


def test_seeded_state_has_what_a_frontend_needs(sandbox):
    world = httpx.get(f"{sandbox.base_url}/__sandbox/businesses").json()["data"]
    assert len(world) >= 2
    for business in world:
        assert business["customers"] and business["invoices"] and business["ledger_accounts"]
        assert any(c["external_id"] is None for c in business["customers"])
        assert {"SALES", "RETURNS_ALLOWANCES"} <= {a["stable_name"] for a in business["ledger_accounts"]}
        assert business["customer_credits"] >= 10
        listing = httpx.get(sandbox.base_url + credits_path(business["id"]), params={"limit": 1000},
                            headers=AUTH).json()["data"]
        assert any(c["allocations"] for c in listing)
        assert any(c["transaction_tags"] for c in listing)
        assert any(c["line_items"][0]["transaction_tags"] for c in listing)
        for credit in listing:
            allocated = sum(a["amount"] for a in credit["allocations"])
            assert allocated <= sum(i["amount"] for i in credit["line_items"])
        # Invoice balances agree with the seeded allocations.
        for invoice in business["invoices"]:
            applied = sum(a["amount"] for c in listing for a in c["allocations"] if a["invoice_id"] == invoice["id"])
            assert invoice["outstanding_balance"] == invoice["total"] - applied >= 0


def test_the_memory_and_the_redis_store_answer_alike(tmp_path, request):
    """One seed, the same requests, a frozen clock: every list, every created id and the whole export
    are the same bytes on both stores (one rules code, one id stream, one sort order)."""
    frozen = ("--seed", "7", "--clock", "frozen=2026-03-01T00:00:00Z")
    memory = SandboxProcess(tmp_path / "memory", *frozen)
    on_redis = SandboxProcess(tmp_path / "redis", *frozen, *store_args(request, "redis"))
    try:
        assert snapshot(memory.base_url) == snapshot(on_redis.base_url)
        business = httpx.get(f"{memory.base_url}/__sandbox/businesses").json()["data"][0]
        for base in (memory.base_url, on_redis.base_url):  # refused after drawing a line's id: kept drawn on both
            refused = httpx.post(base + credits_path(business["id"]), headers=AUTH, json={
                "customer_id": business["customers"][0]["id"], "line_items": [stable_line("NO_SUCH_ACCOUNT", 100)]})
            assert refused.status_code == 404, refused.text
        assert creates(memory.base_url) == creates(on_redis.base_url)
        for base in (memory.base_url, on_redis.base_url):  # an update and a delete move balances too
            listing = httpx.get(base + credits_path(business["id"]), headers=AUTH).json()["data"]
            httpx.patch(base + credits_path(business["id"], listing[0]["id"]), headers=AUTH, json={"memo": "m"})
            httpx.delete(base + credits_path(business["id"], listing[1]["id"]), headers=AUTH)
        assert snapshot(memory.base_url) == snapshot(on_redis.base_url)
        exports = [httpx.get(f"{base}/__sandbox/state").content for base in (memory.base_url, on_redis.base_url)]
        assert exports[0] == exports[1]
        invoices = [httpx.get(f"{base}/v1/businesses/{business['id']}/invoices", headers=AUTH).content
                    for base in (memory.base_url, on_redis.base_url)]
        assert invoices[0] == invoices[1]
    finally:
        memory.stop()
        on_redis.stop()
