"""The compiled schema checks under openapi-core (sandbox/fastschema.py) must never pass what
openapi-core's own validator rejects: the same exchanges, mutated in many ways, are judged by
the sandbox's Contract and by a plain openapi-core on the same spec."""

from __future__ import annotations

import copy
import json

import pytest
from werkzeug.datastructures import Headers

from layer_sandbox.contract import Contract, ContractRequest, ContractResponse
from support import ContractCheck, credits_path, load_spec

MUTATIONS = [
    ("deleted_at", 5), ("deleted_at", "yesterday"), ("sent_at", "2026-13-45T00:00:00Z"), ("id", "not-a-uuid"),
    ("external_id", 7), ("memo", ["x"]), ("metadata", "text"), ("metadata", [1]), ("reference_number", False),
    ("customer.type", "Customer"), ("customer.status", "DELETED"), ("customer.id", "x"), ("customer.email", 3),
    ("line_items.0.amount", "10"), ("line_items.0.amount", 1.5), ("line_items.0.amount", 2**63),
    ("line_items.0.ledger_account.id.type", "Other"), ("line_items.0.ledger_account.id.extra", 1),
    ("line_items.0.ledger_account.account_type.value", "NOPE"), ("line_items", None), ("line_items", {}),
    ("transaction_tags", [{"key": "k"}]), ("allocations", [{"id": "x"}]), ("created_at", None),
    ("-customer", None), ("-id", None), ("-transaction_tags", None), ("-sent_at", None),
]


def _mutate(body: dict, dotted: str, value) -> dict:
    body = copy.deepcopy(body)
    remove = dotted.startswith("-")
    *parents, last = dotted.lstrip("-").split(".")
    node = body["data"]
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if remove:
        del node[last]
    else:
        node[last] = value
    return body


@pytest.fixture(scope="module")
def recorded(sandbox):
    import httpx

    # A namespace of its own, made fresh: the shared sandbox's default namespace may hold rules
    # (forced 404s, example pages) that another test on this worker left behind.
    base, headers = sandbox.base_url, {"Authorization": "Bearer t", "X-Sandbox-Namespace": "fast-validation"}
    assert httpx.put(f"{base}/__sandbox/namespaces/fast-validation").status_code in (200, 201)
    business = httpx.get(f"{base}/__sandbox/businesses", headers=headers).json()["data"][0]
    listing = httpx.get(base + credits_path(business["id"]), params={"limit": 100}, headers=headers).json()["data"]
    credit = next(c for c in listing if c["allocations"] and c["transaction_tags"])
    response = httpx.get(base + credits_path(business["id"], credit["id"]), headers=headers)
    assert response.status_code == 200, response.text
    response.read()
    return response


@pytest.mark.parametrize("dotted, value", MUTATIONS, ids=[f"{d}={v!r}"[:40] for d, v in MUTATIONS])
def test_fast_checks_reject_whatever_openapi_core_rejects(recorded, dotted, value):
    import httpx

    spec = load_spec()
    contract = Contract(copy.deepcopy(spec))
    plain = ContractCheck(spec)
    body = json.dumps(_mutate(recorded.json(), dotted, value)).encode()
    mutated = httpx.Response(200, headers={"content-type": "application/json"}, content=body, request=recorded.request)
    mutated.read()
    expected = plain.response_errors(mutated)
    request = recorded.request
    scope = {"path": request.url.path, "method": request.method, "scheme": "http",
             "query_string": request.url.query}
    ours = contract.response_violations(
        ContractRequest(scope, Headers(list(request.headers.items())), b""),
        ContractResponse(200, Headers({"content-type": "application/json"}), body))
    assert bool(ours) == bool(expected), (ours, expected)
    assert expected, "every mutation here breaks the contract"


def test_valid_bodies_still_pass(recorded):
    contract = Contract(load_spec())
    request = recorded.request
    scope = {"path": request.url.path, "method": request.method, "scheme": "http", "query_string": b""}
    ours = contract.response_violations(ContractRequest(scope, Headers(list(request.headers.items())), b""),
                                        ContractResponse(200, Headers({"content-type": "application/json"}),
                                                         recorded.content))
    assert ours == []


QUERIES = [
    "", "limit=20", "limit=0", "limit=-1", "limit=abc", "limit=", "limit=1.5", "limit=99999999999",
    "sort_by=memo", "sort_by=created_at&sort_order=DESC", "sort_order=down", "show_total_count=true",
    "show_total_count=maybe", "customer_id=not-a-uuid", "customer_id=a11d459a-2f97-4d87-9999-9e3fa46d6753",
    "sent_at_start=2025-01-01", "sent_at_start=2025-13-01", "sent_at_end=2025-01-01T00:00:00Z",
    "sent_at_end=yesterday", "memo=", "memo_contains=refund", "reference_numbers=a,b", "cursor=",
    "cursor=abc", "unknown=1", "limit=5&sort_by=sent_at&sort_order=ASC&memo_contains=x&show_total_count=false",
]


def _errors(validator, request) -> list[tuple]:
    """Each error openapi-core yields, with the parameter it names and the chain of causes."""
    found = []
    for error in validator.iter_errors(request):
        causes, cause = [], error.__cause__
        while cause is not None:
            causes.append(type(cause).__name__)
            cause = cause.__cause__
        found.append((type(error).__name__, getattr(error, "name", None), getattr(error, "location", None), causes))
    return found


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("business", ["cd613e30-d8f1-4adf-91b7-584a2265b1f5", "not-a-uuid"])
def test_planned_parameters_judge_as_openapi_core_does(query, business):
    """The request validator that reads each operation's parameters once (PlannedRequestMixin, PlannedContentMixin)
    yields exactly the errors, of the same types and causes, as openapi-core's own."""
    from openapi_core import V30RequestValidator
    from jsonschema_path import SchemaPath

    spec = load_spec()
    contract = Contract(copy.deepcopy(spec))
    plain = V30RequestValidator(SchemaPath.from_dict(copy.deepcopy(spec)))
    scope = {"path": credits_path(business), "method": "GET", "scheme": "http", "query_string": query.encode()}
    request = ContractRequest(scope, Headers({"Authorization": "Bearer t", "Host": "127.0.0.1"}), b"")
    assert _errors(contract._requests, request) == _errors(plain, request)


BODIES = [
    ("application/json", b'{"customer_id": "a11d459a-2f97-4d87-9999-9e3fa46d6753", "line_items": [{"amount": 5, '
                         b'"revenue_account_identifier": {"type": "StableName", "stable_name": "SALES"}}]}'),
    ("application/json", b'{"line_items": []}'), ("application/json", b'{"memo": 5}'), ("application/json", b"[]"),
    ("application/json", b"{not json"), ("application/json; charset=utf-8", b'{"memo": "x"}'),
    ("text/plain", b'{"memo": "x"}'), ("", b'{"memo": "x"}'), ("application/json", b""),
]
AUTHORIZATIONS = [{"Authorization": "Bearer t"}, {}, {"Authorization": "Basic dTpw"}]


@pytest.mark.parametrize("content_type, body", BODIES)
@pytest.mark.parametrize("authorization", AUTHORIZATIONS, ids=["bearer", "none", "basic"])
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_planned_security_and_bodies_judge_as_openapi_core_does(method, content_type, body, authorization):
    from openapi_core import V30RequestValidator
    from jsonschema_path import SchemaPath

    spec = load_spec()
    contract = Contract(copy.deepcopy(spec))
    plain = V30RequestValidator(SchemaPath.from_dict(copy.deepcopy(spec)))
    business = "cd613e30-d8f1-4adf-91b7-584a2265b1f5"
    path = credits_path(business) if method == "POST" else credits_path(business, "cb06718c-063f-42b6-bc5c-483d420a4323")
    headers = Headers({"Host": "127.0.0.1", **authorization, **({"Content-Type": content_type} if content_type else {})})
    request = ContractRequest({"path": path, "method": method, "scheme": "http", "query_string": b""}, headers, body)
    ours = _errors(contract._requests, request)
    assert ours == _errors(plain, request)
    assert (request.validated is not None) == (not ours)


def test_remembered_urls_share_the_spec_accessors():
    """The path finder remembers thousands of URLs (one per credit id asked for). Each remembered
    match once kept its own accessors for the same spec nodes, some 25 objects the garbage collector
    walks on every full collection; 2,000 remembered ids made 10-20 ms pauses under load. A
    remembered URL now costs its own variables only, and every match of one operation shares one
    operation accessor."""
    import gc
    import uuid

    contract = Contract(copy.deepcopy(load_spec()))
    business = "cd613e30-d8f1-4adf-91b7-584a2265b1f5"
    headers = Headers({"Authorization": "Bearer t", "Host": "127.0.0.1"})

    def fetch(number: int) -> ContractRequest:
        path = credits_path(business, str(uuid.UUID(int=number, version=4)))
        request = ContractRequest({"path": path, "method": "GET", "scheme": "http"}, headers, b"")
        assert contract.request_error(request, "business.invoices.customer-credits.get_one") is None
        return request

    for number in range(50):  # warm: plans, compiled checks, first matches
        fetch(number)
    gc.collect()
    before = len(gc.get_objects())
    for number in range(50, 550):
        fetch(number)
    gc.collect()
    per_url = (len(gc.get_objects()) - before) / 500
    assert per_url < 8, f"each remembered URL keeps {per_url:.1f} tracked objects"
    finder = contract._requests.path_finder
    operations = {id(found.operation) for found in finder._found.values()}
    assert len(operations) == 1


@pytest.mark.parametrize("value", [2.0, "2", True])
def test_a_nullable_integer_of_the_wrong_kind_is_caught_on_a_page(sandbox, value):
    """`total_count` is a nullable integer: jsonschema-rs before 0.40.2 took 2.0 for one where
    openapi-core does not (the lower bound in pyproject.toml; `.ci/lowest` runs this file)."""
    import httpx

    business = httpx.get(f"{sandbox.base_url}/__sandbox/businesses").json()["data"][0]
    page = httpx.get(sandbox.base_url + credits_path(business["id"]), params={"limit": 2, "show_total_count": "true"},
                     headers={"Authorization": "Bearer t"})
    page.read()
    body = page.json()
    body["meta"]["pagination"]["total_count"] = value
    content = json.dumps(body).encode()
    mutated = httpx.Response(200, headers={"content-type": "application/json"}, content=content, request=page.request)
    mutated.read()
    expected = ContractCheck(load_spec()).response_errors(mutated)
    request = page.request
    scope = {"path": request.url.path, "method": request.method, "scheme": "http", "query_string": request.url.query}
    ours = Contract(copy.deepcopy(load_spec())).response_violations(
        ContractRequest(scope, Headers(list(request.headers.items())), b""),
        ContractResponse(200, Headers({"content-type": "application/json"}), content))
    assert expected and ours, (value, ours, expected)
