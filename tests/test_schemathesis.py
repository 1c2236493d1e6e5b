"""Schemathesis, an outside contract tester, against the running sandbox: every operation,
positive and negative data, the stateful phase (so `use_after_free` and
`ensure_resource_availability` run), every check, a fixed seed and a bounded example count."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import httpx

from support import SandboxProcess

TOKEN = "schemathesis"
CLIENT_ID, CLIENT_SECRET = "schemathesis-client", "schemathesis-secret"
SEED = 42
MAX_EXAMPLES = 100


def _toml_list(values) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def config_for(business: dict) -> str:
    """schemathesis.toml for one seeded business.

    - The business id is fixed and the body's customer (by id or external id), ledger account (by
      id or stable name) and invoice ids are drawn (90% of the time) from the seeded ones, so that
      creates succeed and the stateful phase can chain create -> fetch -> update -> delete -> fetch.
    - `positive_data_acceptance` also accepts 422: the contract declares it, on every operation
      that takes a body, for well-formed requests that break a business rule JSON Schema cannot
      state (`customer_id` and `customer_external_id` naming different customers, allocations
      beyond an invoice's balance or the credit's total, metadata above 1 KB).
    - On the list it also accepts 400: a cursor is opaque, so any string passes the schema, and
      the sandbox answers a cursor it never issued with a 400 naming `cursor`.
    Nothing else is relaxed, and no check is excluded.
    """
    return f'''[auth.openapi.BearerAuth]
bearer = "{TOKEN}"
[auth.openapi.ClientBasic]
username = "{CLIENT_ID}"
password = "{CLIENT_SECRET}"

[parameters]
"path.businessId" = "{business["id"]}"
"path.customerId" = {{ dictionary = "customers", probability = 0.9 }}
"path.invoiceId" = {{ dictionary = "invoices", probability = 0.9 }}
"body.customer_id" = {{ dictionary = "customers", probability = 0.9 }}
"body.customer_external_id" = {{ dictionary = "customer_external_ids", probability = 0.9 }}
"body.line_items[*].revenue_account_identifier.id" = {{ dictionary = "accounts", probability = 0.9 }}
"body.line_items[*].revenue_account_identifier.stable_name" = {{ dictionary = "stable_names", probability = 0.9 }}
"body.allocations[*].invoice_id" = {{ dictionary = "invoices", probability = 0.9 }}

[dictionaries.customers]
values = {_toml_list(c["id"] for c in business["customers"])}
[dictionaries.customer_external_ids]
values = {_toml_list(c["external_id"] for c in business["customers"] if c["external_id"])}
[dictionaries.accounts]
values = {_toml_list(a["id"] for a in business["ledger_accounts"])}
[dictionaries.stable_names]
values = {_toml_list(a["stable_name"] for a in business["ledger_accounts"])}
[dictionaries.invoices]
values = {_toml_list(i["id"] for i in business["invoices"])}

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "business.invoices.customer-credits.get"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429", "5xx"]
'''


def test_schemathesis_finds_nothing(tmp_path):
    server = SandboxProcess(tmp_path / "server", "--token", TOKEN)
    try:
        business = httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"][0]
        (tmp_path / "schemathesis.toml").write_text(config_for(business))
        junit = tmp_path / "junit.xml"
        st = Path(sys.executable).with_name("st")
        result = subprocess.run(
            [str(st), "run", f"{server.base_url}/openapi.json", "--checks", "all",
             "--phases", "examples,coverage,fuzzing,stateful", "--max-examples", str(MAX_EXAMPLES),
             "--seed", str(SEED), "--generation-database", "none", "--workers", "1", "--no-color",
             "--report", "junit", "--report-junit-path", str(junit)],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )
    finally:
        server.stop()
    output = result.stdout + result.stderr
    print(output[-3000:])
    assert result.returncode == 0, output[-6000:]
    assert "No issues found" in output
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅\s+{phase}", output), f"phase {phase} did not pass"
    covered = int(re.search(r"API Links:\s+(\d+) covered", output).group(1))
    assert covered >= 3, "the stateful phase must chain operations through the contract's links"
    generated = int(re.search(r"(\d+) generated", output).group(1))
    assert generated >= 1000
    suites = ElementTree.parse(junit).getroot()
    assert int(suites.get("failures", 0)) == 0 and int(suites.get("errors", 0)) == 0
    assert "Traceback" not in server.stderr


def test_the_contract_declares_links_for_the_stateful_phase():
    from support import load_spec

    responses = load_spec()["paths"]["/v1/businesses/{businessId}/invoices/customer-credits"]["post"]["responses"]
    for status in ("200", "201"):
        assert {"GetCredit", "UpdateCredit", "DeleteCredit"} <= set(responses[status]["links"])
