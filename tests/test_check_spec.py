"""`layer-sandbox check-spec`: the published spec's own contradictions and its drift from ours."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from support import ROOT, SPEC_PATH, sandbox_command

# A copy of Layer's published page for DELETE .../customer-credits/{customerCreditId}: the
# reference these tests hold the published spec to.
PUBLISHED = ROOT / "tests" / "data" / "layer-published-delete-customer-credit.md"


def check_spec(path, cwd, *options):
    return subprocess.run(sandbox_command() + ["check-spec", str(path), *options], capture_output=True, text=True,
                          timeout=60, cwd=cwd)


def test_it_finds_the_known_defects_of_the_published_spec(tmp_path):
    result = check_spec(PUBLISHED, tmp_path)
    assert result.returncode == 1
    out = result.stdout
    contradictions = out.split("self-contradiction(s) in the file:")[1].split("difference(s)")[0]
    for expected in [
        "ApiCustomerCredit: requires 'received_at', which is not one of its properties",
        "ApiCustomerCreditAllocation: requires 'invoice_payment_id', which is not one of its properties",
        "ApiCustomerCredit/properties/metadata: $ref has siblings description, nullable, which OpenAPI 3.0 ignores (so it is not nullable)",
        "ApiCustomerCreditLineItem/properties/metadata: $ref has siblings description, nullable",
        "ApiCustomerCreditLineItem/properties/ledger_account: its example fails its own schema",
        "ApiCustomerCredit/properties/customer: $ref has siblings description",
        "AccountIdentifier/oneOf/0: $ref has siblings description, title",
    ]:
        assert expected in contradictions, expected
    differences = out.split("difference(s) from the sandbox's openapi.yaml:")[1]
    for expected in [
        "envelope; the published file sends it bare",
        "responses: published only [], sandbox only ['400', '401', '404', '413', '429', '500', '503']",
        "#/components/schemas/ApiCustomerCredit/properties/deleted_at: nullable: published None, sandbox True",
        "#/components/schemas/ApiCustomerData/properties/status: enum: published None, sandbox ['ACTIVE', 'ARCHIVED']",
        "POST /v1/businesses/{businessId}/invoices/customer-credits: not in the published file",
    ]:
        assert expected in differences, expected


def test_our_contract_is_consistent_and_identical_to_itself(tmp_path):
    result = check_spec(SPEC_PATH, tmp_path)
    assert result.returncode == 0, result.stdout
    assert "0 self-contradiction(s)" in result.stdout and "0 difference(s)" in result.stdout


def test_a_drifted_copy_is_reported(tmp_path):
    spec = yaml.safe_load(SPEC_PATH.read_text())
    credit = spec["components"]["schemas"]["ApiCustomerCredit"]
    credit["required"].append("voided_at")
    credit["properties"]["memo"]["example"] = 42
    spec["paths"]["/v1/businesses/{businessId}/invoices/customer-credits"]["get"]["responses"].pop("404")
    drifted = tmp_path / "drifted.json"
    drifted.write_text(yaml.safe_dump(spec))
    result = check_spec(drifted, tmp_path)
    assert result.returncode == 1
    assert "requires 'voided_at', which is not one of its properties" in result.stdout
    assert "ApiCustomerCredit/properties/memo: its example fails its own schema: 42 is not of type 'string'" in result.stdout
    assert "responses: published only [], sandbox only ['404']" in result.stdout


NOT_SPECS = {
    "words.md": ("# Not a spec\n\nJust words.\n", "neither an OpenAPI document"),
    "binary.json": (b"\xff\xfe\x00{", "is not UTF-8 text"),
    "paths-list.yaml": ("openapi: 3.0.1\npaths: [1, 2]\n", "/paths is not a mapping"),
    "operation-number.yaml": ("openapi: 3.0.1\npaths:\n  /x:\n    get: 3\n", "/paths/~1x/get is not a mapping"),
    "too-deep.json": ('{"openapi": "3.0.1", "x": ' + "[" * 500 + "]" * 500 + "}", "nested more than"),
    "missing.yaml": (None, "cannot read"),
    "a-directory": ("directory", "cannot read"),
}


@pytest.mark.parametrize("name", sorted(NOT_SPECS))
def test_a_file_that_is_no_spec_exits_2_with_the_reason(tmp_path, name):
    """Exit status 2 tells "this is not a spec" apart from 1, "the spec has defects"."""
    content, reason = NOT_SPECS[name]
    path = tmp_path / name
    if content == "directory":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = check_spec(path, tmp_path)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert reason in result.stderr and result.stdout == ""
    assert "Traceback" not in result.stderr
    as_json = check_spec(path, tmp_path, "--format", "json")
    assert as_json.returncode == 2 and reason in as_json.stderr and "Traceback" not in as_json.stderr
    answer = json.loads(as_json.stdout)
    assert answer["file"] == str(path) and reason in answer["error"]


def test_a_contract_that_is_no_spec_exits_2(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("just words\n")
    result = check_spec(PUBLISHED, tmp_path, "--spec", str(words))
    assert result.returncode == 2 and "words.txt is neither an OpenAPI document" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_output_is_one_document_ci_can_read(tmp_path):
    result = check_spec(PUBLISHED, tmp_path, "--format", "json")
    assert result.returncode == 1, result.stderr
    answer = json.loads(result.stdout)
    assert answer["file"] == str(PUBLISHED) and answer["spec"].endswith("openapi.yaml")
    assert answer["counts"] == {"contradictions": len(answer["contradictions"]),
                                "differences": len(answer["differences"])}
    assert answer["counts"]["contradictions"] >= 7 and answer["counts"]["differences"] >= 5
    for finding in answer["contradictions"] + answer["differences"]:
        assert set(finding) == {"kind", "where", "message"} and all(finding.values()), finding
    contradictions = {(f["kind"], f["where"]): f["message"] for f in answer["contradictions"]}
    assert contradictions[("required-not-a-property", "/components/schemas/ApiCustomerCredit")] == \
        "requires 'received_at', which is not one of its properties"
    assert "(so it is not nullable)" in contradictions[
        ("ref-siblings", "/components/schemas/ApiCustomerCredit/properties/metadata")]
    assert ("example-invalid", "/components/schemas/ApiCustomerCreditLineItem/properties/ledger_account") in contradictions
    differences = {(f["kind"], f["where"]): f["message"] for f in answer["differences"]}
    assert differences[("nullable", "#/components/schemas/ApiCustomerCredit/properties/deleted_at")] == \
        "nullable: published None, sandbox True"
    assert ("operation-sandbox-only", "POST /v1/businesses/{businessId}/invoices/customer-credits") in differences
    assert any(kind == "envelope" for kind, _ in differences)
    # The same findings as the text report, in the same words.
    text = check_spec(PUBLISHED, tmp_path).stdout
    for finding in answer["contradictions"] + answer["differences"]:
        assert f"{finding['where']}: {finding['message']}" in text

    ours = check_spec(SPEC_PATH, tmp_path, "--format", "json")
    assert ours.returncode == 0
    assert json.loads(ours.stdout)["counts"] == {"contradictions": 0, "differences": 0}


def test_the_copy_of_the_published_page_holds_the_delete_operation():
    assert "delete /v1/businesses/{businessId}/invoices/customer-credits/{customerCreditId}" in PUBLISHED.read_text()


ODD_SPECS = {
    "circular-refs": """openapi: 3.0.1
info: {title: t, version: '1'}
paths: {}
components:
  schemas:
    Loop: {type: object, properties: {next: {$ref: '#/components/schemas/Loop2'}}, example: {next: {}}}
    Loop2: {type: object, properties: {back: {$ref: '#/components/schemas/Loop'}}}
""",
    "alias-loop": """openapi: 3.0.1
info: {title: t, version: '1'}
paths: {}
components:
  schemas:
    A: &a {type: object, properties: {self: *a}}
""",
    "missing-component": """openapi: 3.0.1
info: {title: t, version: '1'}
paths:
  /x:
    get:
      responses:
        200: {description: ok, content: {application/json: {schema: {$ref: '#/components/schemas/Gone'}}}}
        default: {description: other}
components: {}
""",
    "odd-keys-and-values": """openapi: 3.0.1
info: {title: t, version: '1'}
$schema: not-a-dialect
paths:
  /v1/businesses/{businessId}/invoices/customer-credits:
    get:
      parameters: [just-a-string, {in: [query], name: {a: 1}}]
      responses: {200: {content: {application/json: {schema: {$ref: 5, allOf: [null]}}}}}
components:
  schemas:
    1: {type: object, $ref: '#/components/schemas/Odd'}
    ApiCustomerCredit: {$ref: 5, 2: x, properties: true, required: [[a], id]}
    Odd: {oneOf: null, example: 1}
""",
    "allof-required": """openapi: 3.0.1
info: {title: t, version: '1'}
paths: {}
components:
  schemas:
    Base: {type: object, properties: {id: {type: string}}}
    Both:
      allOf:
        - $ref: '#/components/schemas/Base'
        - {required: [id], properties: {extra: {type: string}}}
""",
}


@pytest.mark.parametrize("name", sorted(ODD_SPECS))
def test_odd_specs_get_a_report_not_a_traceback(tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(ODD_SPECS[name])
    result = check_spec(path, tmp_path)
    assert "Traceback" not in result.stderr and result.returncode == 1, result.stderr[-2000:]
    contradictions = result.stdout.split("self-contradiction(s)")[1].split("difference(s)")[0]
    if name == "missing-component":
        assert "$ref #/components/schemas/Gone points nowhere" in contradictions
    if name == "allof-required":
        assert "requires 'id'" not in contradictions
    if name == "circular-refs":
        assert "Loop" in result.stdout
    if name == "odd-keys-and-values":
        assert "/components/schemas/1: $ref has siblings type" in contradictions
        assert "/components/schemas/Odd: its example cannot be checked: its schema is malformed" in contradictions


def test_json_with_tabs_and_pages_with_several_blocks(tmp_path):
    spec = yaml.safe_load(SPEC_PATH.read_text())
    as_json = tmp_path / "spec.json"
    as_json.write_text(json.dumps(spec, indent="\t"))
    assert check_spec(as_json, tmp_path).returncode == 0
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n```yaml\nexample: not the spec\n```\n\n```yaml\n" + SPEC_PATH.read_text() + "```\n")
    assert check_spec(page, tmp_path).returncode == 0
