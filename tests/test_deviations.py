"""Every deviation from Layer's published spec, recorded under `x-deviations` in openapi.yaml, is
proven to matter: exchanges recorded from the running sandbox are validated against our contract
and against a copy with that deviation's nodes put back as Layer published them.
"""

from __future__ import annotations

import copy
import json
import re

import httpx
import pytest
import referencing
import referencing.jsonschema
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate as validate_spec

from support import ROOT, ContractCheck, credits_path, load_spec, stable_line

SPEC = load_spec()
DEVIATIONS = SPEC["x-deviations"]
# Layer's published DELETE page, kept verbatim: its component block is shared by all five operations.
SEED = ROOT / "tests" / "data" / "layer-published-delete-customer-credit.md"
EVIDENCE = ROOT / "docs" / "layer-evidence.md"


# ------------------------------------------------------------------------- JSON pointers

def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _expand(document, pointer: str) -> list[list]:
    """Concrete token paths for a pointer whose `*` tokens match every key at their level."""
    paths = [[]]
    for token in pointer.lstrip("/").split("/"):
        expanded = []
        for path in paths:
            node = _get(document, path)
            if token == "*":
                expanded.extend(path + [key] for key in (node if isinstance(node, dict) else []))
            else:
                expanded.append(path + [_unescape(token)])
        paths = expanded
    return paths


def _get(document, path):
    node = document
    for token in path:
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _exists(document, path) -> bool:
    try:
        _get(document, path)
        return True
    except (KeyError, IndexError, ValueError, TypeError):
        return False


def revert(spec: dict, deviation: dict) -> dict:
    """A copy of `spec` with this deviation's nodes as Layer published them."""
    reverted = copy.deepcopy(spec)
    removals = []
    for node in deviation["nodes"]:
        for path in _expand(reverted, node["pointer"]):
            if node.get("absent"):
                if _exists(reverted, path):
                    removals.append(path)
                continue
            parent = _get(reverted, path[:-1])
            parent[path[-1]] = copy.deepcopy(node["published"])
    # Array items last-first, so that earlier indexes stay valid.
    for path in sorted(removals, key=lambda p: [(-int(t) if str(t).isdigit() else 0, str(t)) for t in p]):
        parent = _get(reverted, path[:-1])
        if isinstance(parent, list):
            del parent[int(path[-1])]
        else:
            del parent[path[-1]]
    reverted.pop("x-deviations")
    return reverted


# ------------------------------------------------------------------------- exchanges

@pytest.fixture(scope="module")
def exchanges(sandbox) -> dict[str, httpx.Response]:
    """Real request/response pairs recorded from the running sandbox (fresh seeded state)."""
    assert httpx.post(f"{sandbox.base_url}/__sandbox/reset", json={}).status_code == 200
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": "Bearer t"}) as client:
        world = client.get("/__sandbox/businesses").json()["data"]
        business = world[0]
        listing = client.get(credits_path(business["id"]), params={"limit": 1000})
        credits = listing.json()["data"]
        allocated = next(c for c in credits if c["allocations"])
        plain = credits[0]
        anonymous = next(c for c in business["customers"] if c["external_id"] is None)
        create = client.post(credits_path(business["id"]), json={
            "customer_id": anonymous["id"], "line_items": [stable_line("SALES", 100)]})
        recorded = {
            "list": client.get(credits_path(business["id"]), params={"limit": 2}),
            "fetch": client.get(credits_path(business["id"], plain["id"])),
            "fetch_allocated": client.get(credits_path(business["id"], allocated["id"])),
            "create": create,
            "fetch_sparse": client.get(credits_path(business["id"], create.json()["data"]["id"])),
            "not_found": client.get(credits_path(business["id"], "3c90c3cc-0d44-4b50-8888-8dd25736052a")),
            "customer_create": client.post(f"/v1/businesses/{business['id']}/customers",
                                           json={"external_id": "deviation-proof", "memo": "Prefers email"}),
            "customer_fetch": client.get(f"/v1/businesses/{business['id']}/customers/{plain['customer']['id']}"),
            "invoice_fetch": client.get(f"/v1/businesses/{business['id']}/invoices/{business['invoices'][0]['id']}"),
        }
    for response in recorded.values():
        response.read()
    assert httpx.post(f"{sandbox.base_url}/__sandbox/reset", json={}).status_code == 200
    return recorded


def problems(check: ContractCheck, response: httpx.Response) -> list[str]:
    return check.request_errors(response.request) + check.response_errors(response)


def _set_dotted(document: dict, dotted: str, value=None, remove=False) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        document = document[int(key)] if isinstance(document, list) else document[key]
    if remove:
        del document[last]
    else:
        document[last] = value


def mutated(response: httpx.Response, proof: dict) -> httpx.Response:
    """The exchange with the proof's change applied to its request or its response."""
    request = response.request
    body = json.loads(response.content)
    request_body = json.loads(request.content) if request.content else None
    params = dict(request.url.params)
    for dotted, value in (proof.get("set") or {}).items():
        if dotted.startswith("body."):
            _set_dotted(request_body, dotted[len("body."):], value)
        else:
            _set_dotted(body, dotted, value)
    if proof.get("remove"):
        _set_dotted(body, proof["remove"], remove=True)
    params.update(proof.get("query") or {})
    new_request = httpx.Request(
        request.method, request.url.copy_with(params=params), headers=request.headers,
        content=json.dumps(request_body).encode() if request_body is not None else None,
    )
    new_response = httpx.Response(response.status_code, headers=response.headers, content=json.dumps(body).encode(),
                                  request=new_request)
    new_response.read()
    return new_response


# ------------------------------------------------------------------------- proofs

def _example_errors(spec: dict, example, schema_pointer: str) -> list[str]:
    resource = referencing.Resource.from_contents(spec, default_specification=referencing.jsonschema.DRAFT4)
    registry = referencing.Registry().with_resource("urn:spec", resource)
    validator = OAS30Validator({"$ref": f"urn:spec#{schema_pointer}"}, registry=registry,
                               format_checker=oas30_format_checker)
    return [error.message for error in validator.iter_errors(example)]


def _ref_siblings(node, where="") -> list[str]:
    found = []
    if isinstance(node, dict):
        if "$ref" in node and len(node) > 1:
            found.append(where)
        for key, value in node.items():
            found.extend(_ref_siblings(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_ref_siblings(value, f"{where}/{index}"))
    return found


def test_our_contract_is_a_valid_openapi_document():
    validate_spec(SPEC)


def test_deviation_records_are_complete():
    ids = [d["id"] for d in DEVIATIONS]
    assert len(ids) == len(set(ids))
    for deviation in DEVIATIONS:
        assert {"id", "title", "reason", "nodes", "proof"} <= set(deviation), deviation["id"]
        assert deviation["proof"]["kind"] in {"breaks", "catches", "example", "lint"}
        for node in deviation["nodes"]:
            paths = _expand(SPEC, node["pointer"])
            assert any(_exists(SPEC, p) for p in paths), (deviation["id"], node["pointer"])


def test_our_contract_has_no_ref_siblings():
    assert _ref_siblings({"paths": SPEC["paths"], "components": SPEC["components"]}) == []


@pytest.mark.parametrize("deviation", DEVIATIONS, ids=[d["id"] for d in DEVIATIONS])
def test_each_deviation_matters(deviation, exchanges):
    proof = deviation["proof"]
    published = revert(SPEC, deviation)
    ours = {k: v for k, v in SPEC.items() if k != "x-deviations"}
    kind = proof["kind"]
    if kind == "breaks":
        exchange = exchanges[proof["exchange"]]
        assert problems(ContractCheck(ours), exchange) == []
        found = problems(ContractCheck(published), exchange)
        assert found, f"{deviation['id']}: the published spec accepts {proof['exchange']}"
    elif kind == "catches":
        wrong = mutated(exchanges[proof["exchange"]], proof)
        assert problems(ContractCheck(published), wrong) == [], "the published spec should let it through"
        assert problems(ContractCheck(ours), wrong), f"{deviation['id']}: our contract misses the mutation"
    elif kind == "example":
        pointer = proof["pointer"]
        ours_example = _get(ours, _expand(ours, pointer)[0])["example"]
        published_example = _get(published, _expand(published, pointer)[0])["example"]
        assert _example_errors(ours, ours_example, proof["schema"]) == []
        assert _example_errors(published, published_example, proof["schema"])
    elif kind == "lint":
        assert _ref_siblings({"paths": ours["paths"], "components": ours["components"]}) == []
        assert _ref_siblings({"paths": published["paths"], "components": published["components"]})


def _seed_document() -> dict:
    text = SEED.read_text()
    block = re.search(r"````yaml[^\n]*\n(.*?)````", text, re.S).group(1)
    import yaml

    return yaml.safe_load(block)


@pytest.mark.parametrize("deviation", DEVIATIONS, ids=[d["id"] for d in DEVIATIONS])
def test_published_values_are_the_seeds(deviation):
    """Where the seed (Layer's DELETE page) holds the node, `published` must be a faithful copy."""
    seed = _seed_document()
    compared = 0
    for node in deviation["nodes"]:
        for path in _expand(SPEC, node["pointer"]):
            if not _exists(seed, path[:-1]):
                continue  # the seed does not show this part of Layer's spec
            if node.get("absent"):
                assert not _exists(seed, path), (deviation["id"], path)
            else:
                assert _get(seed, path) == node["published"], (deviation["id"], path)
            compared += 1
    # List parameters, request bodies, customers' and invoices' own routes are not on the DELETE page.
    if deviation["id"] not in {"D16", "D17", "D18", "D19", "D20"}:
        assert compared, f"{deviation['id']} was not compared with the seed"


def test_the_seed_itself_rejects_real_credits(exchanges):
    """The heart of it: Layer's published component block, as is, rejects what Layer sends."""
    seed = _seed_document()
    published = copy.deepcopy({k: v for k, v in SPEC.items() if k != "x-deviations"})
    published["components"]["schemas"].update(seed["components"]["schemas"])
    errors = problems(ContractCheck(published), exchanges["fetch"])
    assert any("received_at" in e for e in errors), errors


# ------------------------------------------------------------------------- evidence

def _evidence_facts() -> dict[str, str]:
    """The numbered facts of docs/layer-evidence.md: anchor (`E3`) -> heading."""
    facts = {}
    for match in re.finditer(r"^### (E\d+)\. (.+)$", EVIDENCE.read_text(), re.M):
        assert match.group(1) not in facts, f"{match.group(1)} appears twice in {EVIDENCE.name}"
        facts[match.group(1)] = match.group(2)
    return facts


def _cited(reason: str) -> set[str]:
    return set(re.findall(r"\b(E\d+)\b", reason))


def test_every_deviation_cites_the_evidence_page():
    """Reasons cite facts the repository holds, never research files outside it."""
    facts = _evidence_facts()
    assert facts, f"no `### E<n>.` facts found in {EVIDENCE}"
    for deviation in DEVIATIONS:
        reason = deviation["reason"]
        assert "docs/layer-evidence.md" in reason, f"{deviation['id']} does not cite docs/layer-evidence.md"
        cited = _cited(reason)
        assert cited, f"{deviation['id']} cites no evidence fact"
        assert cited <= set(facts), f"{deviation['id']} cites {sorted(cited - set(facts))}, not in {EVIDENCE.name}"


def test_every_evidence_fact_is_cited_or_background():
    """The evidence page and the contract stay in step: no fact is left over unnoticed."""
    facts = _evidence_facts()
    cited = set().union(*(_cited(d["reason"]) for d in DEVIATIONS))
    numbers = sorted(int(anchor[1:]) for anchor in facts)
    assert numbers == list(range(1, len(numbers) + 1)), f"evidence facts are not numbered E1..En: {numbers}"
    orphans = [f"{anchor}. {heading}" for anchor, heading in facts.items()
               if anchor not in cited and "(background)" not in heading]
    assert orphans == [], "facts cited by no deviation and not marked (background)"


def test_the_published_page_and_the_evidence_are_in_the_repository():
    """A fork or CI has only the checkout: every file these tests read lives inside it."""
    for path in (SEED, EVIDENCE):
        assert path.resolve().is_relative_to(ROOT), path
        assert path.is_file(), path
