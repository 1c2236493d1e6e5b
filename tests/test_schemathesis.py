"""Schemathesis, an outside contract tester, against the running sandbox: every operation of the
contract (customer credits, customers, invoices, the token routes, whoami), positive and negative
data, the stateful phase (so `use_after_free` and `ensure_resource_availability` run), every
check, a fixed seed and a bounded example count.

Two `st run`s against one sandbox process:

1. the examples, coverage, fuzzing and stateful phases, as Schemathesis runs them by default (the
   stateful phase follows the contract's links and the links Schemathesis infers);
2. after a reset to the seed, the stateful phase alone, following the contract's links only.

Why the second run: in the first, the stateful phase stops after a few dozen scenarios, silently
("✅ Stateful"). Schemathesis 4 draws ids for it from the responses the earlier phases captured,
weighted by how recently each was drawn: the draws depend on state outside Hypothesis, which
stops the state machine with `FlakyStrategyDefinition` ("Inconsistent data generation"), and
Schemathesis counts that as a clean finish. A stateful run of its own starts with nothing
captured and goes further (it too stops that way, later); without the inferred links (51 of the
69 on offer, mostly ids moved between unrelated paths) its budget goes to the contract's 18,
and the test asserts that every one of the contract's links was followed. Both runs are
deterministic for the fixed seed.

Hooks (tests/data/schemathesis_hooks.py, loaded through `SCHEMATHESIS_HOOKS`) tally what each run
sent and which links it followed, and drop one known false positive of a check (see there).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree

import httpx

from conftest import store_args
from support import SandboxProcess, load_spec, report

TOKEN = "schemathesis"
CLIENT_ID, CLIENT_SECRET = "schemathesis-client", "schemathesis-secret"
SEED = 42
MAX_EXAMPLES = 100
HOOKS = Path(__file__).resolve().parent / "data" / "schemathesis_hooks.py"
METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")

# The three lists, by operationId and path under the business: their cursors are opaque.
LISTS = {
    "business.invoices.customer-credits.get": "invoices/customer-credits",
    "business.customers.get": "customers",
    "business.invoices.get": "invoices",
}
CREDIT_CREATE = "business.invoices.customer-credits.post"
TOKEN_ROUTE = "oauth2.token.post"
SANDBOX_SCOPE = "https://sandbox.layerfi.com/sandbox"


# Warnings (advice, not failures) that Schemathesis raises on this contract, and why they stay:
# `validation_mismatch` says most of an operation's schema-valid data was refused.
# - Credit create: the coverage phase draws no dictionary values, so its customers are named by
#   made-up ids and external ids, which the contract answers with 404 (CustomerNotFound) or 422
#   (customer_id and customer_external_id naming different customers).
KNOWN_WARNINGS = {
    "validation_mismatch": {"POST /v1/businesses/{businessId}/invoices/customer-credits"},
}


def _toml_list(values) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def config_for(business: dict, cursors: dict[str, str], credit_external_ids: list[str], *,
               contract_links_only: bool = False) -> str:
    """schemathesis.toml for one seeded business.

    - Each operation gets the credentials its security scheme names: the bearer token for the
      API (`BearerAuth`), the client id and secret over HTTP Basic for `POST /oauth2/token`
      (`ClientBasic`). The sandbox runs with `--token` and `--client`, so `ignored_auth` sees
      missing and wrong credentials refused on both (an open sandbox takes any token and any
      id:secret, and would fail that check by design).
    - The business id is fixed; customer ids and invoice ids in paths, and the body's customer (by
      id or external id), ledger account (by id or stable name) and invoice ids are drawn (90% of
      the time) from the seeded ones, so that creates succeed, fetches find something, and the
      stateful phase can chain create -> fetch -> update -> archive/delete -> fetch.
    - The seeded customers are split in two. Those that hold invoices are the credits' customers
      (a credit's `customer_id`/`customer_external_id`, the credit list's `customer_id`). The
      others ("spare") are the ones updated and archived by id, and re-created by external id
      (a third of the customer creates reuse a spare's `external_id`, so that both the 201 and the
      idempotent 200 answer). Schemathesis goes through the operations in a fixed order, archive
      and update before credit create: drawn from every customer, they would archive all of them
      (a credit for an archived customer is a 422) and rename their external ids before any
      credit is made. (Schemathesis also reuses ids it saw in responses, so the split is a bias,
      not a wall.)
    - A third of the credit creates reuse a seeded credit's `external_id` (`credit_external_ids`),
      so that the idempotent 200 answer, and the links declared on it, are exercised too.
    - Each list gets, half of the time, a cursor it really issued (`cursors`, its first page's
      `meta.pagination.cursor`, by operationId) rather than a random string, so that later pages
      are walked and not only the 400 for a cursor the sandbox never issued.
    - The token request's form fields are `grant_type=client_credentials`, Layer's sandbox scope
      and the Basic credentials' client id 90% of the time, so the token route answers 200 (and
      `ignored_auth` has a success to probe) rather than only OAuth errors.
    - `positive_data_acceptance` also accepts 422: the contract declares it, on every operation
      that takes a body, for well-formed requests that break a business rule JSON Schema cannot
      state (`customer_id` and `customer_external_id` naming different customers, allocations
      beyond an invoice's balance or the credit's total, metadata above 1 KB, an `external_id`
      another customer holds).
    - On the three lists it also accepts 400: a cursor is opaque, so any string passes the
      schema, and the sandbox answers a cursor it never issued with a 400 naming `cursor`.
    - `contract_links_only`: the stateful phase infers no links of its own.
    Nothing else is relaxed, and no check is excluded.
    """
    holders = {invoice["customer_id"] for invoice in business["invoices"]}
    credit_customers = [c for c in business["customers"] if c["id"] in holders and c["external_id"]]
    spare_customers = [c for c in business["customers"] if c["id"] not in holders]
    assert credit_customers and spare_customers, "the seed must have customers with and without invoices"
    assert credit_external_ids, "the seed must have credits with an external id"
    statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]
    with_400 = ["2xx", "400", *statuses[1:]]
    cursor_dictionaries = "".join(
        f"[dictionaries.cursor-{n}]\nvalues = {_toml_list([cursors[operation]])}\n" for n, operation in enumerate(LISTS)
    )
    list_operations = "".join(
        f'\n[[operations]]\ninclude-operation-id = "{operation}"\n'
        f'parameters."query.cursor" = {{ dictionary = "cursor-{n}", probability = 0.5 }}\n'
        f"checks.positive_data_acceptance.expected-statuses = {_toml_list(with_400)}\n"
        for n, operation in enumerate(LISTS)
    )
    stateful = "\n[phases.stateful]\ninference.algorithms = []\n" if contract_links_only else ""
    return f'''[auth.openapi.BearerAuth]
bearer = "{TOKEN}"
[auth.openapi.ClientBasic]
username = "{CLIENT_ID}"
password = "{CLIENT_SECRET}"

[parameters]
"path.businessId" = "{business["id"]}"
"path.customerId" = {{ dictionary = "customers", probability = 0.9 }}
"path.invoiceId" = {{ dictionary = "invoices", probability = 0.9 }}
"query.customer_id" = {{ dictionary = "credit_customers", probability = 0.9 }}
"body.customer_id" = {{ dictionary = "credit_customers", probability = 0.9 }}
"body.customer_external_id" = {{ dictionary = "credit_customer_external_ids", probability = 0.9 }}
"body.line_items[*].revenue_account_identifier.id" = {{ dictionary = "accounts", probability = 0.9 }}
"body.line_items[*].revenue_account_identifier.stable_name" = {{ dictionary = "stable_names", probability = 0.9 }}
"body.allocations[*].invoice_id" = {{ dictionary = "invoices", probability = 0.9 }}

[dictionaries.customers]
values = {_toml_list(c["id"] for c in business["customers"])}
[dictionaries.credit_customers]
values = {_toml_list(c["id"] for c in credit_customers)}
[dictionaries.credit_customer_external_ids]
values = {_toml_list(c["external_id"] for c in credit_customers if c["external_id"])}
[dictionaries.spare_customers]
values = {_toml_list(c["id"] for c in spare_customers)}
[dictionaries.spare_customer_external_ids]
values = {_toml_list(c["external_id"] for c in spare_customers if c["external_id"])}
[dictionaries.credit_external_ids]
values = {_toml_list(credit_external_ids)}
[dictionaries.accounts]
values = {_toml_list(a["id"] for a in business["ledger_accounts"])}
[dictionaries.stable_names]
values = {_toml_list(a["stable_name"] for a in business["ledger_accounts"])}
[dictionaries.invoices]
values = {_toml_list(i["id"] for i in business["invoices"])}
[dictionaries.grant_types]
values = ["client_credentials"]
[dictionaries.scopes]
values = ["{SANDBOX_SCOPE}"]
[dictionaries.client_ids]
values = ["{CLIENT_ID}"]
{cursor_dictionaries}
[checks.positive_data_acceptance]
expected-statuses = {_toml_list(statuses)}
{list_operations}
[[operations]]
include-operation-id = "business.customers.post"
parameters."body.external_id" = {{ dictionary = "spare_customer_external_ids", probability = 0.33 }}

[[operations]]
include-operation-id = ["business.customers.patch", "business.customers.archive.post"]
parameters."path.customerId" = {{ dictionary = "spare_customers", probability = 0.9 }}

[[operations]]
include-operation-id = "{CREDIT_CREATE}"
parameters."body.external_id" = {{ dictionary = "credit_external_ids", probability = 0.33 }}

[[operations]]
include-operation-id = "{TOKEN_ROUTE}"
parameters."body.grant_type" = {{ dictionary = "grant_types", probability = 0.9 }}
parameters."body.scope" = {{ dictionary = "scopes", probability = 0.9 }}
parameters."body.client_id" = {{ dictionary = "client_ids", probability = 0.9 }}
{stateful}'''


def seeded_inputs(base_url: str) -> tuple[dict, dict[str, str], list[str]]:
    """The first seeded business, each list's first-page cursor and the seeded credits' external ids."""
    business = httpx.get(f"{base_url}/__sandbox/businesses").json()["data"][0]
    with httpx.Client(base_url=f"{base_url}/v1/businesses/{business['id']}",
                      headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        cursors = {}
        for operation, path in LISTS.items():
            page = client.get(path, params={"limit": 1})
            assert page.status_code == 200, page.text
            cursors[operation] = page.json()["meta"]["pagination"]["cursor"]
        credits = client.get(LISTS["business.invoices.customer-credits.get"], params={"limit": 1000})
        assert credits.status_code == 200, credits.text
    return business, cursors, [c["external_id"] for c in credits.json()["data"] if c["external_id"]]


def contract_operations() -> dict[str, str]:
    """The contract's operations, as Schemathesis labels them (`GET /whoami`) -> operationId."""
    return {
        f"{method.upper()} {path}": operation["operationId"]
        for path, item in load_spec()["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


class Run:
    """One `st run` in its own directory (its schemathesis.toml, reports and tally)."""

    def __init__(self, workdir: Path, base_url: str, config: str, phases: str) -> None:
        workdir.mkdir()
        (workdir / "schemathesis.toml").write_text(config)
        self.phases = phases
        st = Path(sys.executable).with_name("st")
        env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "SCHEMATHESIS_TALLY": str(workdir / "tally.json")}
        result = subprocess.run(
            [str(st), "run", f"{base_url}/openapi.json", "--checks", "all",
             "--phases", phases, "--max-examples", str(MAX_EXAMPLES),
             "--seed", str(SEED), "--generation-database", "none", "--workers", "1", "--no-color",
             "--report", "junit,json", "--report-junit-path", str(workdir / "junit.xml"),
             "--report-json-path", str(workdir / "run.json")],
            check=False, capture_output=True, text=True, timeout=600, cwd=workdir, env=env,
        )
        self.returncode = result.returncode
        self.output = result.stdout + result.stderr
        print(f"--- st run --phases {phases}\n{self.output[-3000:]}")
        self.junit = workdir / "junit.xml"
        self.summary = json.loads((workdir / "run.json").read_text()) if (workdir / "run.json").exists() else {}
        tally = workdir / "tally.json"
        self.tally = json.loads(tally.read_text()) if tally.exists() else {}

    def assert_clean(self) -> None:
        assert self.returncode == 0, self.output[-6000:]
        assert not self.summary["failures"] and not self.summary["errors"], self.output[-6000:]
        unknown = {kind: operations - KNOWN_WARNINGS.get(kind, set()) for kind, operations in self.warnings.items()}
        assert not any(unknown.values()), f"new Schemathesis warnings: {unknown}"
        assert re.search(r"No issues found|\b\d+ warnings? in", self.output), self.output[-6000:]
        for phase in self.phases.split(","):
            assert re.search(rf"✅\s+{phase.capitalize()}", self.output), f"phase {phase} did not pass"
        suites = ElementTree.parse(self.junit).getroot()
        assert int(suites.get("failures", 0)) == 0 and int(suites.get("errors", 0)) == 0
        assert self.summary["test_cases"]["with_failures"] == 0
        assert set(self.tally) >= {"requests", "links"}, "the tally hook did not run"

    @property
    def warnings(self) -> dict[str, set[str]]:
        """The warnings Schemathesis raised, by kind, with the operations they name."""
        return {kind: set(operations) for kind, operations in self.summary["warnings"].items() if operations}

    @property
    def generated(self) -> int:
        return self.summary["test_cases"]["generated"]

    def answers(self) -> dict[str, Counter]:
        """Per operation label, the status codes of every request sent, all phases together."""
        total: dict[str, Counter] = {}
        for operations in self.tally["requests"].values():
            for label, statuses in operations.items():
                total.setdefault(label, Counter()).update(statuses)
        return total

    def links(self, *, inferred: bool) -> set[str]:
        """The links followed with their value applied, as `POST /x -> [201] GetX -> GET /x/{id}`."""
        return {link for link, is_inferred in self.tally["links"].items() if is_inferred == inferred}


def link_name(transition: str) -> str:
    return re.search(r" -> \[\d+\] (\S+) -> ", transition).group(1)


def test_schemathesis_finds_nothing(tmp_path, request, store):
    operations = contract_operations()
    declared = set(load_spec()["components"]["links"])
    server = SandboxProcess(tmp_path / "server", "--token", TOKEN, "--client", f"{CLIENT_ID}:{CLIENT_SECRET}",
                            *store_args(request, store))
    try:
        business, cursors, credit_external_ids = seeded_inputs(server.base_url)
        units = Run(tmp_path / "all-phases", server.base_url,
                    config_for(business, cursors, credit_external_ids),
                    "examples,coverage,fuzzing,stateful")
        reset = httpx.post(f"{server.base_url}/__sandbox/reset", json={})
        assert reset.status_code == 200, reset.text
        assert seeded_inputs(server.base_url) == (business, cursors, credit_external_ids), "the reset changed the seed"
        chains = Run(tmp_path / "contract-links", server.base_url,
                     config_for(business, cursors, credit_external_ids, contract_links_only=True),
                     "stateful")
    finally:
        server.stop()
    units.assert_clean()
    chains.assert_clean()
    assert "Traceback" not in server.stderr

    # Every operation of the contract was tested, and answered with a success at least once (so
    # the checks that need one, e.g. `ignored_auth` and the response schema of a 2xx, ran on it).
    assert units.summary["operations"]["selected"] == units.summary["operations"]["tested"] == len(operations)
    answers = units.answers()
    assert set(answers) == set(operations), set(answers) ^ set(operations)
    unanswered = [label for label, statuses in answers.items() if not any(s.startswith("2") for s in statuses)]
    samples = {key: sample for key, sample in units.tally["samples"].items() if key.rsplit(" ", 1)[0] in unanswered}
    assert not unanswered, f"never answered with a 2xx: {unanswered}; what they answered: {samples}"

    # The stateful phases chained operations: run 1 through any link, run 2 through every link
    # the contract declares (create -> fetch/update/archive/delete/list, credit -> its customer
    # and its first allocated invoice).
    covered = int(re.search(r"API Links:\s+(\d+) covered", units.output).group(1))
    assert covered >= 3, "the stateful phase must chain operations"
    followed = chains.links(inferred=False)
    assert {link_name(link) for link in followed} == declared, declared - {link_name(link) for link in followed}
    assert not chains.links(inferred=True), "the second run follows the contract's links only"

    generated = units.generated + chains.generated
    assert generated >= 1000
    dropped = sum(units.tally.get("dropped", {}).values()) + sum(chains.tally.get("dropped", {}).values())
    seconds = units.summary["running_time"] + chains.summary["running_time"]
    links_line = r"API Links:\s+(\d+) covered / (\d+) selected / (\d+) total"
    default_links = re.search(links_line, units.output).group(3)
    contract_links = re.search(links_line, chains.output).group(3)
    report(
        f"schemathesis ({store} store): {len(operations)} operations served, all tested with all checks and every one "
        f"answered 2xx; {generated} cases ({units.generated} in examples/coverage/fuzzing/stateful, "
        f"{chains.generated} in a stateful run on the contract's links), no issues; links followed: "
        f"{covered} of {default_links} in the first run, {len(followed)} of the contract's {contract_links} "
        f"in the second (all {len(declared)} link names); {dropped} false positives dropped; "
        f"{seconds:.0f} s in Schemathesis"
    )
    per_operation = {operations[label]: sum(statuses.values()) for label, statuses in answers.items()}
    report(f"schemathesis cases per operation ({store} store, first run): "
           + ", ".join(f"{operation} {count}" for operation, count in sorted(per_operation.items())))


def test_the_contract_declares_links_for_the_stateful_phase():
    paths = load_spec()["paths"]
    credit_create = paths["/v1/businesses/{businessId}/invoices/customer-credits"]["post"]["responses"]
    customer_create = paths["/v1/businesses/{businessId}/customers"]["post"]["responses"]
    for status in ("200", "201"):
        assert {"GetCredit", "UpdateCredit", "DeleteCredit", "GetCreditCustomer", "GetAllocatedInvoice"} <= set(
            credit_create[status]["links"])
        assert {"GetCustomer", "UpdateCustomer", "ArchiveCustomer", "ListCustomerCredits"} <= set(
            customer_create[status]["links"])
