"""Reset, named scenarios (at start and at run time), and whole-state export and import."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys

import httpx
import pytest

from support import SandboxProcess, credits_path, stable_line

AUTH = {"Authorization": "Bearer t"}


def world(api):
    return api.get("/__sandbox/businesses").json()["data"]


def all_credits(api, business_id):
    return api.get(credits_path(business_id), params={"limit": 1000}).json()["data"]


def test_scenarios_are_listed_with_what_they_hold(api):
    listed = {s["name"]: s for s in api.get("/__sandbox/scenarios").json()["data"]}
    assert {"default", "empty", "paging", "allocations", "deleted"} <= set(listed)
    assert listed["paging"]["credits_per_business"][0] >= 1000
    assert listed["empty"]["credits_per_business"] == [0]
    assert all(s["description"] for s in listed.values())


def test_empty_scenario_has_a_business_ready_for_credits(api):
    loaded = api.post("/__sandbox/scenarios/empty")
    assert loaded.status_code == 200 and loaded.json()["data"]["scenario"] == "empty"
    [business] = world(api)
    assert business["customer_credits"] == 0 and business["customers"] and business["ledger_accounts"]
    assert all_credits(api, business["id"]) == []
    created = api.post(credits_path(business["id"]), json={
        "customer_id": business["customers"][0]["id"], "line_items": [stable_line("SALES")]})
    assert created.status_code == 201


def test_paging_scenario_walks_a_thousand_credits(api):
    api.post("/__sandbox/scenarios/paging")
    business = world(api)[0]
    assert business["customer_credits"] >= 1000
    seen, cursor = [], None
    while True:
        page = api.get(credits_path(business["id"]), params={"limit": 250, **({"cursor": cursor} if cursor else {})}).json()
        seen.extend(c["id"] for c in page["data"])
        cursor = page["meta"]["pagination"]["cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == business["customer_credits"]


def test_allocations_scenario_has_partly_and_fully_applied_credits(api):
    api.post("/__sandbox/scenarios/allocations")
    business = world(api)[0]
    credits = all_credits(api, business["id"])
    totals = [(sum(a["amount"] for a in c["allocations"]), sum(i["amount"] for i in c["line_items"])) for c in credits]
    assert any(0 < applied < total for applied, total in totals), "no partly applied credit"
    assert any(applied == total for applied, total in totals), "no fully applied credit"
    # A fully applied credit cannot take one cent more.
    full = next(c for c, (applied, total) in zip(credits, totals) if applied == total)
    allocation = full["allocations"][0]
    more = api.patch(credits_path(business["id"], full["id"]), json={
        "allocations": [{"invoice_id": a["invoice_id"], "amount": a["amount"] + (a is allocation)} for a in full["allocations"]]})
    assert more.status_code == 422


def test_deleted_scenario_hides_deleted_credits_but_keeps_them(api):
    api.post("/__sandbox/scenarios/deleted")
    business = world(api)[0]
    assert business["deleted_customer_credits"] == 3
    state = api.get("/__sandbox/state").json()["data"]
    deleted = [c for c in state["businesses"][0]["customer_credits"] if c["deleted_at"]]
    assert len(deleted) == 3
    listed = {c["id"] for c in all_credits(api, business["id"])}
    for credit in deleted:
        assert credit["id"] not in listed
        assert api.get(credits_path(business["id"], credit["id"])).status_code == 404


def test_unknown_scenario_is_404_and_changes_nothing(api):
    before = world(api)
    for response in (api.post("/__sandbox/scenarios/nope"), api.post("/__sandbox/reset", json={"scenario": "../default"})):
        assert response.status_code == 404
        assert response.json()["errors"][0]["meta"]["resource"] == "scenario"
    assert world(api) == before


def test_reset_after_a_scenario_keeps_that_scenario(api):
    api.post("/__sandbox/scenarios/empty", json={"seed": 3})
    business = world(api)[0]
    api.post(credits_path(business["id"]), json={"customer_id": business["customers"][0]["id"],
                                                  "line_items": [stable_line("SALES")]})
    reset = api.post("/__sandbox/reset").json()["data"]
    assert (reset["scenario"], reset["seed"]) == ("empty", 3)
    assert world(api)[0]["customer_credits"] == 0
    back = api.post("/__sandbox/reset", json={"scenario": "default", "seed": 1}).json()["data"]
    assert (back["scenario"], back["seed"]) == ("default", 1)


def test_scenario_at_start_by_name_and_by_path(tmp_path):
    custom = tmp_path / "mine.yaml"
    scenarios = SandboxProcess(tmp_path / "a", "--scenario", "paging")
    try:
        assert httpx.get(f"{scenarios.base_url}/__sandbox/health").json()["data"]["scenario"] == "paging"
        assert httpx.get(f"{scenarios.base_url}/__sandbox/businesses").json()["data"][0]["customer_credits"] >= 1000
        default_file = httpx.get(f"{scenarios.base_url}/__sandbox/scenarios").json()
    finally:
        scenarios.stop()
    assert default_file
    from support import ROOT

    custom.write_text(
        f"description: Three tiny businesses\nextends: {ROOT / 'fixtures' / 'scenarios' / 'default.yaml'}\n"
        "businesses: 3\nper_business: {credits: 2, customers: 2, invoices: 2}\n")
    by_path = SandboxProcess(tmp_path / "b", "--scenario", str(custom))
    try:
        businesses = httpx.get(f"{by_path.base_url}/__sandbox/businesses").json()["data"]
        assert [b["customer_credits"] for b in businesses] == [2, 2, 2]
        assert httpx.get(f"{by_path.base_url}/__sandbox/health").json()["data"]["scenario"] == "mine"
    finally:
        by_path.stop()


def test_export_import_round_trip(api, business):
    exported = api.get("/__sandbox/state").json()["data"]
    assert exported["format"] == "layer-sandbox/state-v1"
    # Change things, then put the export back: byte-identical lists again.
    before = [api.get(credits_path(b["id"]), params={"limit": 1000}).content for b in world(api)]
    victim = all_credits(api, business["id"])[0]
    api.delete(credits_path(business["id"], victim["id"]))
    api.post(credits_path(business["id"]), json={"customer_id": business["customers"][0]["id"],
                                                  "line_items": [stable_line("SALES")]})
    imported = api.put("/__sandbox/state", json={"data": exported})
    assert imported.status_code == 200, imported.text
    after = [api.get(credits_path(b["id"]), params={"limit": 1000}).content for b in world(api)]
    assert after == before
    assert api.get("/__sandbox/state").json()["data"] == exported
    # Ids keep coming from the same generator state: the next create gets the same id both times.
    first = api.post(credits_path(business["id"]), json={"customer_id": business["customers"][0]["id"],
                                                          "line_items": [stable_line("SALES")]}).json()["data"]["id"]
    api.put("/__sandbox/state", json=exported)
    again = api.post(credits_path(business["id"]), json={"customer_id": business["customers"][0]["id"],
                                                          "line_items": [stable_line("SALES")]}).json()["data"]["id"]
    assert first == again


def _break(document, how):
    doc = copy.deepcopy(document)
    business = doc["businesses"][0]
    credit = next(c for c in business["customer_credits"] if c["allocations"])
    if how == "not-json-object":
        return [1, 2]
    if how == "wrong-format":
        doc["format"] = "something-else"
    elif how == "unknown-customer":
        credit["customer"]["id"] = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
    elif how == "unknown-account":
        credit["line_items"][0]["ledger_account"]["id"]["id"] = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
    elif how == "over-allocated":
        credit["allocations"][0]["amount"] = sum(i["amount"] for i in credit["line_items"]) + 1
    elif how == "duplicate-credit":
        business["customer_credits"].append(copy.deepcopy(credit))
    elif how == "bad-timestamp":
        credit["created_at"] = "yesterday"
    elif how == "negative-amount":
        credit["line_items"][0]["amount"] = -5
    elif how == "duplicate-external-id":
        live = [c for c in business["customer_credits"] if not c["deleted_at"]]
        live[0]["external_id"] = live[1]["external_id"] = "same"
    elif how == "invoice-over-applied":
        invoice = business["invoices"][0]
        invoice["total_amount"] = 1
        credit["allocations"][0]["invoice_id"] = invoice["id"]
        credit["customer"]["id"] = invoice["customer_id"]
    elif how == "metadata-too-large":
        credit["metadata"] = {"x": "y" * 2000}
    return doc


@pytest.mark.parametrize("how", ["not-json-object", "wrong-format", "unknown-customer", "unknown-account",
                                 "over-allocated", "duplicate-credit", "bad-timestamp", "negative-amount",
                                 "duplicate-external-id", "invoice-over-applied", "metadata-too-large"])
def test_a_bad_import_is_rejected_whole_and_changes_nothing(api, business, how):
    exported = api.get("/__sandbox/state").json()["data"]
    api.post(credits_path(business["id"]), json={"customer_id": business["customers"][0]["id"],
                                                  "line_items": [stable_line("SALES", 4242)]})
    before = api.get("/__sandbox/state").json()["data"]
    response = api.put("/__sandbox/state", json=_break(exported, how))
    assert response.status_code == 400, how
    [error] = response.json()["errors"]
    assert "nothing changed" in error["description"] or how == "not-json-object"
    assert api.get("/__sandbox/state").json()["data"] == before


@pytest.mark.parametrize("raw, problem", [
    (lambda doc: doc.replace('"metadata":null', '"metadata":{"x":NaN}', 1), "not valid JSON"),
    (lambda doc: doc.replace('"memo":null', '"memo":"\\ud800"', 1), "surrogate"),
    (lambda doc: doc.replace(doc[doc.index('"id":"') + 6:doc.index('"id":"') + 42],
                             doc[doc.index('"id":"') + 6:doc.index('"id":"') + 42].upper()), "does not match"),
    (lambda doc: doc.replace('"id_generator":[3,[', '"id_generator":[3,[0,', 1), "id_generator"),
])
def test_imports_that_could_not_be_served_back_are_refused(api, raw, problem):
    exported = api.get("/__sandbox/state").content.decode()
    before = api.get("/__sandbox/state").json()
    document = raw(exported)
    assert document != exported
    response = api.put("/__sandbox/state", content=document.encode("utf-8", "surrogatepass"),
                       headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert problem in response.text
    assert api.get("/__sandbox/state").json() == before


def test_inconsistent_imports_are_refused(api):
    exported = api.get("/__sandbox/state").json()["data"]
    business = exported["businesses"][0]
    cases = []
    doc = copy.deepcopy(exported)
    with_ext = [c for c in doc["businesses"][0]["customers"] if c["external_id"]]
    with_ext[1]["external_id"] = with_ext[0]["external_id"]
    cases.append((doc, "share external_id"))
    doc = copy.deepcopy(exported)
    tagged = next(c for c in doc["businesses"][0]["customer_credits"] if c["transaction_tags"])
    tagged["transaction_tags"][0]["dimension_id"] = "3c90c3cc-0d44-4b50-8888-8dd25736052a"
    cases.append((doc, "disagree"))
    doc = copy.deepcopy(exported)
    credit = doc["businesses"][0]["customer_credits"][0]
    credit["updated_at"] = "2000-01-01T00:00:00Z"
    cases.append((doc, "created_at <= updated_at"))
    doc = copy.deepcopy(exported)
    doc["seed"] = -5
    cases.append((doc, "seed"))
    doc = copy.deepcopy(exported)
    doc["businesses"][0]["customer_credits"][0]["external_id"] = ""
    cases.append((doc, "external_id"))
    doc = copy.deepcopy(exported)
    doc["clock"] = {"mode": "frozen", "frozen_at": None}
    cases.append((doc, "clock"))
    before = api.get("/__sandbox/state").json()
    for document, problem in cases:
        response = api.put("/__sandbox/state", json=document)
        assert response.status_code == 400, problem
        assert problem in response.text, (problem, response.text[:500])
        assert api.get("/__sandbox/state").json() == before
    assert business


def test_an_imported_scenario_path_is_never_read(api, tmp_path):
    exported = api.get("/__sandbox/state").json()["data"]
    evil = tmp_path / "evil.yaml"
    evil.write_text("extends: {a: 1}\n")
    response = api.put("/__sandbox/state", json={**exported, "scenario": str(evil)})
    assert response.status_code == 200
    assert response.json()["data"]["scenario"] == "default"


def test_a_replayed_id_generator_never_overwrites_a_credit(api, business):
    early = api.get("/__sandbox/state").json()["data"]
    created = api.post(credits_path(business["id"]), json={"customer_id": business["customers"][0]["id"],
                                                            "line_items": [stable_line("SALES", 11)]}).json()["data"]
    later = api.get("/__sandbox/state").json()["data"]
    assert api.put("/__sandbox/state", json={**later, "id_generator": early["id_generator"]}).status_code == 200
    again = api.post(credits_path(business["id"]), json={"customer_id": business["customers"][0]["id"],
                                                          "line_items": [stable_line("SALES", 22)]}).json()["data"]
    assert again["id"] != created["id"]
    ids = [c["id"] for c in all_credits(api, business["id"])]
    assert len(ids) == len(set(ids)) and created["id"] in ids


def test_the_clock_travels_with_the_state(api):
    api.post("/__sandbox/clock", json={"frozen_at": "2027-02-03T04:05:06Z"})
    exported = api.get("/__sandbox/state").json()["data"]
    api.post("/__sandbox/clock", json={"system": True})
    api.put("/__sandbox/state", json=exported)
    assert api.get("/__sandbox/clock").json()["data"]["now"] == "2027-02-03T04:05:06.000000Z"
    api.post("/__sandbox/clock", json={"system": True})


# ------------------------------------------------------------- scenario files are checked

# A scenario file's own text (each extends `default`) and the key its one mistake is at.
BAD_SCENARIOS = [
    ("per_business: {credit: 5}", "per_business.credit"),
    ("colour: red", "colour"),
    ("businesses:\n  - {credits: 1, invoice: 2}", "businesses[0].invoice"),
    ("per_business: {allocations: {partly: 0.5}}", "per_business.allocations.partly"),
    ("per_business: {credits: -1}", "per_business.credits"),
    ("per_business: {customers: 2.5}", "per_business.customers"),
    ("per_business: {deleted: 'three'}", "per_business.deleted"),
    ("per_business: {tagged_share: 1.5}", "per_business.tagged_share"),
    ("per_business: {allocations: {full: -0.1}}", "per_business.allocations.full"),
    ("businesses: two", "businesses"),
    ("history_days: many", "history_days"),
]


def _start(tmp_path, scenario) -> subprocess.CompletedProcess:
    from support import sandbox_command

    return subprocess.run(sandbox_command() + ["--port", "0", "--scenario", str(scenario)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)


@pytest.mark.parametrize("text, key", BAD_SCENARIOS[:2] + BAD_SCENARIOS[4:5] + BAD_SCENARIOS[7:8])
def test_a_scenario_file_with_an_unknown_key_or_a_wrong_value_stops_the_start(tmp_path, text, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"extends: default\n{text}\n")
    result = _start(tmp_path, bad)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert key in line and str(bad) in line, line
    assert "Traceback" not in result.stderr


def test_a_scenario_file_is_checked_on_its_own_keys_through_extends(tmp_path):
    parent = tmp_path / "parent.yaml"
    parent.write_text("extends: default\nper_business: {credit: 5}\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: parent.yaml\nbusinesses: 1\n")
    result = _start(tmp_path, child)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "per_business.credit" in line and str(parent) in line, line
    # ... and a good file extending a good one still starts.
    good = tmp_path / "good.yaml"
    good.write_text("extends: default\nbusinesses: 1\nper_business: {credits: 3, allocations: {full: 1}}\n")
    server = SandboxProcess(tmp_path / "good", "--scenario", str(good))
    try:
        assert [b["customer_credits"] for b in httpx.get(f"{server.base_url}/__sandbox/businesses").json()["data"]] == [3]
    finally:
        server.stop()


@pytest.fixture(scope="module")
def broken_fixtures(tmp_path_factory):
    """The sandbox installed as a wheel would be (contract and fixtures inside the package), with
    one broken scenario per mistake beside the shipped ones: what a run-time load meets."""
    from support import ROOT

    site = tmp_path_factory.mktemp("site")
    package = site / "layer_sandbox"
    shutil.copytree(ROOT / "sandbox", package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "openapi.yaml", package / "openapi.yaml")
    shutil.copytree(ROOT / "fixtures", package / "fixtures")
    for number, (text, _) in enumerate(BAD_SCENARIOS):
        (package / "fixtures" / "scenarios" / f"broken-{number}.yaml").write_text(f"extends: default\n{text}\n")
    server = SandboxProcess(site / "run", command=[sys.executable, "-m", "layer_sandbox"],
                            env={"PYTHONPATH": str(site)})
    yield server, package / "fixtures" / "scenarios"
    server.stop()


def test_a_broken_scenario_is_refused_at_run_time_naming_key_and_file(broken_fixtures):
    server, folder = broken_fixtures
    before = httpx.get(f"{server.base_url}/__sandbox/businesses").json()
    for number, (_, key) in enumerate(BAD_SCENARIOS):
        file = folder / f"broken-{number}.yaml"
        for response in (httpx.post(f"{server.base_url}/__sandbox/scenarios/broken-{number}"),
                         httpx.post(f"{server.base_url}/__sandbox/reset", json={"scenario": f"broken-{number}"})):
            assert response.status_code == 500, response.text
            [error] = response.json()["errors"]
            assert key in error["description"] and str(file) in error["description"], error
            assert "error_enum" not in error and "Traceback" not in response.text
    listing = httpx.get(f"{server.base_url}/__sandbox/scenarios")
    assert listing.status_code == 500 and "broken-" in listing.json()["errors"][0]["description"]
    assert httpx.get(f"{server.base_url}/__sandbox/businesses").json() == before
    assert httpx.get(f"{server.base_url}/__sandbox/health").json()["data"]["scenario"] == "default"
