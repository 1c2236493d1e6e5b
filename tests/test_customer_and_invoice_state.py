"""Customers and invoice balances kept by --state-file through a SIGKILL, and scenario fixtures."""

from __future__ import annotations

import signal

import httpx

from support import SandboxProcess, credits_path, stable_line

AUTH = {"Authorization": "Bearer t"}


def test_customer_writes_and_invoice_balances_survive_a_sigkill(tmp_path):
    state = tmp_path / "state.json"
    first = SandboxProcess(tmp_path / "a", "--state-file", str(state))
    try:
        base = first.base_url
        business = httpx.get(f"{base}/__sandbox/businesses").json()["data"][0]
        customers = f"{base}/v1/businesses/{business['id']}/customers"
        made = httpx.post(customers, json={"external_id": "kept", "company_name": "Kept Co"}, headers=AUTH).json()["data"]
        httpx.patch(f"{customers}/{made['id']}", json={"memo": "after a patch"}, headers=AUTH)
        archived = business["customers"][-1]["id"]
        httpx.post(f"{customers}/{archived}/archive", headers=AUTH)
        target = next(i for i in business["invoices"] if i["outstanding_balance"] > 0)
        paid = httpx.post(f"{base}{credits_path(business['id'])}", headers=AUTH, json={
            "customer_id": target["customer_id"], "line_items": [stable_line("SALES", target["outstanding_balance"])],
            "allocations": [{"invoice_id": target["id"], "amount": target["outstanding_balance"]}]})
        assert paid.status_code == 201, paid.text
        before = httpx.get(f"{base}/__sandbox/state").json()["data"]
        invoice_before = httpx.get(f"{base}/v1/businesses/{business['id']}/invoices/{target['id']}", headers=AUTH).json()
        assert invoice_before["data"]["status"] == "PAID"
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    finally:
        first.stop()
    second = SandboxProcess(tmp_path / "b", "--state-file", str(state))
    try:
        base = second.base_url
        assert httpx.get(f"{base}/__sandbox/state").json()["data"] == before
        assert httpx.get(f"{base}/v1/businesses/{business['id']}/invoices/{target['id']}", headers=AUTH).json() == (
            invoice_before)
        kept = httpx.get(f"{base}/v1/businesses/{business['id']}/customers/{made['id']}", headers=AUTH).json()["data"]
        assert (kept["memo"], kept["company_name"]) == ("after a patch", "Kept Co")
        assert httpx.get(f"{base}/v1/businesses/{business['id']}/customers/{archived}",
                         headers=AUTH).json()["data"]["status"] == "ARCHIVED"
    finally:
        second.stop()


def test_a_scenario_file_can_list_exact_records(tmp_path):
    scenario = tmp_path / "acme.yaml"
    scenario.write_text("""\
description: The default data plus one known customer with an invoice of 1,000.00, 400.00 of it open.
extends: default
fixtures:
  - business: 0
    customers:
      - {id: 11111111-1111-4111-8111-111111111111, company_name: Acme Corp, external_id: acme}
    invoices:
      - id: 22222222-2222-4222-8222-222222222222
        customer_id: 11111111-1111-4111-8111-111111111111
        total_amount: 100000
        outstanding_balance: 40000
        line_items:
          - {description: Widgets, unit_price: 25000, quantity: 4}
""")
    process = SandboxProcess(tmp_path / "run", "--scenario", str(scenario))
    try:
        business = httpx.get(f"{process.base_url}/__sandbox/businesses").json()["data"][0]["id"]
        invoice = httpx.get(f"{process.base_url}/v1/businesses/{business}/invoices/22222222-2222-4222-8222-222222222222",
                            headers=AUTH).json()["data"]
        assert (invoice["total_amount"], invoice["outstanding_balance"], invoice["status"]) == (
            100000, 40000, "PARTIALLY_PAID")
        assert invoice["line_items"][0]["quantity"] == "4" and invoice["customer"]["company_name"] == "Acme Corp"
        # Undated records are stamped at the scenario's epoch, so the scenario seeds the same bytes at any time.
        assert invoice["sent_at"] == "2026-01-01T00:00:00.000000Z"
        reset = httpx.post(f"{process.base_url}/__sandbox/reset", json={})
        assert reset.status_code == 200
        again = httpx.get(f"{process.base_url}/v1/businesses/{business}/invoices/22222222-2222-4222-8222-222222222222",
                          headers=AUTH).json()["data"]
        assert again == invoice
    finally:
        process.stop()


def test_a_scenario_with_a_bad_fixture_is_refused_at_start_naming_it(tmp_path):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("extends: default\nfixtures:\n  - invoices:\n      - {customer_id: 33333333-3333-4333-8333-333333333333, total_amount: 5}\n")
    import subprocess
    from support import sandbox_command

    result = subprocess.run(sandbox_command() + ["--port", "0", "--scenario", str(scenario)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode != 0
    assert "fixtures[0]" in result.stderr and "invoices[0].customer_id" in result.stderr
    assert "Traceback" not in result.stderr
