"""A pact's interactions judged against `openapi.yaml`, without running anything.

As PactFlow's bi-directional contract testing does with a provider's OpenAPI: the request an
interaction sends must be one the contract accepts (the same openapi-core validators the sandbox
judges live requests with, `sandbox.contract`), and the response the consumer expects must be one
the contract allows for that status. A consumer may rely on fewer members than Layer sends (Pact
checks only what it wrote), so required members may be left out; but every member it expects must
be one the contract has, of the contract's type, at that JSON path.

A request the contract refuses is still a fair interaction when the consumer expects exactly the
refusal: a pact that sends a bad `limit` and expects the 400 tests the consumer's error handling.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from urllib.parse import urlencode

from jsonschema.exceptions import best_match
from openapi_schema_validator import OAS30ReadValidator, oas30_format_checker
from werkzeug.datastructures import Headers

from .contract import Contract, ContractRequest
from .pactfile import NO_BODY, Interaction, json_path, path_parts


@dataclass(frozen=True)
class Finding:
    where: str  # "request", "request body", "response status", or a JSON path ("$.data.memo")
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def without(body, paths) -> object:
    """`body` less the values at `paths` (what Pact generates has no example to judge)."""
    body = copy.deepcopy(body)

    def drop(node, parts):
        if not parts:
            return
        head, rest = parts[0], parts[1:]
        if head == "*":
            children = list(node.values()) if isinstance(node, dict) else node if isinstance(node, list) else []
            for child in children:
                drop(child, rest)
        elif not rest:
            if isinstance(node, dict) and isinstance(head, str):
                node.pop(head, None)
        elif isinstance(node, dict) and head in node:
            drop(node[head], rest)
        elif isinstance(node, list) and isinstance(head, int) and head < len(node):
            drop(node[head], rest)

    for path in paths:
        parts = path_parts(path)
        if parts:
            drop(body, parts)
    return body


def _resolved(spec: dict, node, seen: tuple = ()):
    """`node` with every `$ref` replaced by what it names (the contract has no cycles)."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            if ref in seen:
                raise ValueError(f"the contract's {ref} refers to itself")
            target = spec
            for token in ref.lstrip("#/").split("/"):
                target = target[token.replace("~1", "/").replace("~0", "~")]
            return _resolved(spec, target, seen + (ref,))
        return {key: _resolved(spec, value, seen) for key, value in node.items()}
    if isinstance(node, list):
        return [_resolved(spec, item, seen) for item in node]
    return node


def relaxed(schema):
    """The schema of what a consumer may expect: no member required (Pact checks only what the
    consumer wrote), `oneOf` as `anyOf` (with members left out, more than one may fit), and an
    object that lists its members closed to others unless it says otherwise (a member the
    consumer expects and the contract does not name is one Layer is not known to send), with the
    branches of an `allOf` of objects merged first so that each sees the others' members."""
    if isinstance(schema, list):
        return [relaxed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "required" and isinstance(value, list):
            continue
        if key in ("example", "examples", "description", "enum", "default"):
            out[key] = value
            continue
        out["anyOf" if key == "oneOf" else key] = relaxed(value)
    branches = out.get("allOf")
    if isinstance(branches, list) and branches and all(_object_like(b) for b in branches):
        del out["allOf"]
        for branch in branches:
            out = _merged(out, branch)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _object_like(schema) -> bool:
    return isinstance(schema, dict) and (schema.get("type") == "object" or "properties" in schema) and not (
        {"anyOf", "oneOf", "allOf", "$ref"} & set(schema))


def _merged(one: dict, other: dict) -> dict:
    merged = dict(one)
    for key, value in other.items():
        if key == "properties":
            properties = dict(merged.get("properties", {}))
            for name, member in value.items():
                properties[name] = {"allOf": [properties[name], member]} if name in properties else member
            merged["properties"] = properties
        elif key == "additionalProperties":
            if value is False or "additionalProperties" not in merged:
                merged[key] = value
        elif key == "nullable":
            merged[key] = bool(merged.get(key, True)) and bool(value)
        else:
            merged.setdefault(key, value)
    return merged


def _status_key(responses: dict, status: int) -> str | None:
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            return key
    return None


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


class PactContractCheck:
    """The contract's validators and each response's relaxed schema, built once per run."""

    def __init__(self, spec: dict) -> None:
        self.contract = Contract(copy.deepcopy(spec))
        self.operations: dict[str, dict] = {}
        for item in spec["paths"].values():
            for operation in item.values():
                if isinstance(operation, dict) and "operationId" in operation:
                    self.operations[operation["operationId"]] = _resolved(spec, operation.get("responses", {}))
        self._validators: dict[tuple[str, str, str], OAS30ReadValidator] = {}

    def _validator(self, operation_id: str, key: str, media: str) -> OAS30ReadValidator:
        cache_key = (operation_id, key, media)
        if cache_key not in self._validators:
            schema = self.operations[operation_id][key]["content"][media].get("schema", {})
            self._validators[cache_key] = OAS30ReadValidator(relaxed(schema), format_checker=oas30_format_checker)
        return self._validators[cache_key]

    def check(self, interaction: Interaction) -> tuple[list[Finding], list[str]]:
        """The findings (each a way the interaction breaks the contract) and notes."""
        request, response = interaction.request, interaction.response
        operation_id = self.contract.operation_for(request.method, request.path)
        if operation_id is None:
            allowed = self.contract.allowed_methods(request.path)
            return [Finding("request", f"the contract has no {request.method} {request.path}" + (
                f" (that path takes {allowed})" if allowed else " (no such path)"))], []
        findings, notes = [], []
        refused = self._request_error(request)
        if refused is not None:
            described = refused.description
            if refused.status == response.status:
                notes.append(f"the request breaks the contract ({described}), and the consumer expects the "
                             f"{refused.status} that says so")
            else:
                field = (refused.meta or {}).get("field")
                findings.append(Finding("request" + (f" {field}" if field else ""),
                                        f"{described} (the contract answers it {refused.status}; the pact "
                                        f"expects {response.status})"))
        findings += self._response_findings(operation_id, response)
        return findings, notes

    def _request_error(self, request):
        scope = {"path": request.path, "method": request.method, "scheme": "http",
                 "query_string": urlencode(list(request.query)).encode(), "server": ("127.0.0.1", 80)}
        headers = Headers(list(request.headers))
        body = request.body_bytes()
        if body is not None and "content-type" not in headers:
            headers["Content-Type"] = request.content_type or "application/json"
        return self.contract.request_error(ContractRequest(scope, headers, body or b""),
                                           self.contract.operation_for(request.method, request.path))

    def _response_findings(self, operation_id: str, response) -> list[Finding]:
        responses = self.operations[operation_id]
        key = _status_key(responses, response.status)
        if key is None:
            declared = ", ".join(sorted(responses))
            return [Finding("response status", f"{response.status} is not a status the contract declares for "
                                               f"{operation_id} (it declares {declared})")]
        content = responses[key].get("content") or {}
        expected_type = _media(response.content_type)
        if expected_type and content and expected_type not in content:
            return [Finding("response header Content-Type", f"{expected_type} is not a media type of the "
                                                             f"contract's {key} (it has {', '.join(content)})")]
        if response.body is NO_BODY:
            return []
        if not content:
            return [Finding("response body", f"the contract's {key} for {operation_id} has no body")]
        media = expected_type or next(iter(content))
        if media != "application/json" and not media.endswith("+json"):
            return []
        body = without(response.body, response.generated) if response.generated else response.body
        if isinstance(body, (bytes, str)):
            return [Finding("response body", f"the contract's {key} is JSON; the pact expects text")]
        findings: dict[str, Finding] = {}  # one per JSON path (null on a non-nullable member is two errors)
        for error in sorted(self._validator(operation_id, key, media).iter_errors(body),
                            key=lambda e: [str(part) for part in e.absolute_path]):
            finding = self._finding(error)
            findings.setdefault(finding.where, finding)
        return list(findings.values())

    @staticmethod
    def _finding(error) -> Finding:
        if error.validator in ("anyOf", "oneOf") and error.context:
            error = best_match(error.context)
        path = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = error.schema.get("properties", {})
            extra = sorted(name for name in error.instance if name not in known)
            if extra:
                names = ", ".join(json_path(path + [name]) for name in extra)
                return Finding(names, "the contract has no such member" + (
                    f" (members here: {', '.join(sorted(known))})" if known else ""))
        return Finding(json_path(path), error.message)
