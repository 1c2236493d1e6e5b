"""`layer-sandbox check-spec FILE`: how a published Layer spec differs from the sandbox's
contract, and which of its own statements contradict each other.

Self-contradictions found in the file:
- `required` names that are not among the schema's `properties`;
- examples that fail the schema they illustrate;
- siblings of `$ref` (`nullable`, `description`, `example`, ...), which OpenAPI 3.0 ignores.
Differences from the sandbox's `openapi.yaml`: operations present on one side only, response
statuses, parameters and request bodies of shared operations, and, schema by schema, properties,
`required`, `type`, `format`, `nullable` and `enum`.

A file may be an OpenAPI document (YAML or JSON) or a page that embeds one in a fenced
```yaml block, as Layer's documentation pages do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import referencing
import referencing.exceptions
import referencing.jsonschema
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from .resources import HTTP_METHODS, parse_yaml

FIELDS = ("type", "format", "nullable", "enum")
# Deeper than this is refused as no usable document (real specs stay well under 40 levels):
# it keeps every walk below within Python's recursion limit.
MAX_DEPTH = 100


@dataclass(frozen=True)
class Finding:
    # What was found, stable for scripts to filter on (`--format json`): ref-unresolved,
    # ref-siblings, required-not-a-property, example-invalid, example-unchecked (contradictions);
    # envelope, type, format, nullable, enum, required, property-published-only,
    # property-sandbox-only, operation-published-only, operation-sandbox-only, operation-id,
    # responses, parameters, request-body, schema-published-only (differences).
    kind: str
    # A JSON pointer into the file (contradictions); `#/components/schemas/...`, or an operation
    # (`METHOD /path [status]`) followed by the schema path (differences).
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"

    def as_json(self) -> dict:
        return {"kind": self.kind, "where": self.where, "message": self.what}


class SpecFileError(ValueError):
    """The file cannot be read or holds no OpenAPI document (exit status 2, not a finding)."""


def _parse(text: str):
    for parse in (json.loads, parse_yaml):
        try:
            return parse(text)
        except (ValueError, yaml.YAMLError, RecursionError):  # nesting too deep is no document either
            continue
    return None


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecFileError(f"{path} is not UTF-8 text, so neither an OpenAPI document nor a page") from None
    except OSError as exc:
        raise SpecFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def _shape_problem(document: dict) -> str | None:
    """What keeps the comparison from walking the document: the containers it goes through
    (paths, operations, responses, components) must be mappings. Anything deeper that is odd
    is reported as a finding, or skipped, rather than refused."""
    paths, components = document.get("paths"), document.get("components")
    if paths is not None and not isinstance(paths, dict):
        return "/paths is not a mapping"
    for path, item in (paths or {}).items():
        if not isinstance(item, dict):
            return f"{_pointer(['paths', path])} is not a mapping"
        for method, operation in item.items():
            if method in HTTP_METHODS and not isinstance(operation, dict):
                return f"{_pointer(['paths', path, method])} is not a mapping"
            if method in HTTP_METHODS and not isinstance(operation.get("responses") or {}, dict):
                return f"{_pointer(['paths', path, method, 'responses'])} is not a mapping"
    if components is not None and not isinstance(components, dict):
        return "/components is not a mapping"
    if not isinstance((components or {}).get("schemas") or {}, dict):
        return "/components/schemas is not a mapping"
    return None


def _plain(node, memo: dict, depth: int = 0):
    """The document with every mapping key a string (YAML reads `200:` as an int and `on:` as
    True), so that keys sort, join and compare as JSON's would; shared and looping YAML aliases
    stay shared and looping."""
    if depth > MAX_DEPTH:
        raise SpecFileError(f"it is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(node, (dict, list)):
        return node
    if id(node) in memo:
        return memo[id(node)]
    copy = memo[id(node)] = {} if isinstance(node, dict) else []
    if isinstance(node, dict):
        copy.update((str(key), _plain(value, memo, depth + 1)) for key, value in node.items())
    else:
        copy.extend(_plain(value, memo, depth + 1) for value in node)
    return copy


def load_document(path: Path) -> dict:
    """The OpenAPI document in a JSON or YAML file, or in the first ```yaml block of a page that
    holds one; SpecFileError when there is none."""
    document = _find_document(path)
    try:
        document = _plain(document, {})
    except SpecFileError as exc:
        raise SpecFileError(f"{path} is not a usable OpenAPI document: {exc}") from None
    problem = _shape_problem(document)
    if problem is not None:
        raise SpecFileError(f"{path} is not a usable OpenAPI document: {problem}")
    return document


def _find_document(path: Path) -> dict:
    text = _read(path)
    document = _parse(text)
    if isinstance(document, dict) and "openapi" in document:
        return document
    blocks = [m.group(2) for m in re.finditer(r"^(`{3,})ya?ml[^\n]*\n(.*?)^\1", text, re.DOTALL | re.MULTILINE)]
    if not blocks:
        raise SpecFileError(f"{path} is neither an OpenAPI document nor a page with a ```yaml block")
    for block in blocks:
        document = _parse(block)
        if isinstance(document, dict) and "openapi" in document:
            return document
    raise SpecFileError(f"{path} holds no OpenAPI document in its {len(blocks)} ```yaml block(s)")


def _pointer(parts) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _walk(node, parts=(), seen=None):
    """(path, dict) for every mapping in the document, each once (YAML aliases can loop)."""
    seen = set() if seen is None else seen
    if isinstance(node, (dict, list)):
        if id(node) in seen:
            return
        seen.add(id(node))
    if isinstance(node, dict):
        yield parts, node
        for key, value in node.items():
            yield from _walk(value, parts + (key,), seen)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, parts + (index,), seen)


def _target(document: dict, reference: str):
    """What a local `$ref` points at, or None when it points nowhere."""
    if not reference.startswith("#"):
        return {}  # another document: not followed
    node = document
    for token in reference.lstrip("#").lstrip("/").split("/") if reference not in ("#", "#/") else []:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def _mapping(node) -> dict:
    """The node if it is a mapping, else an empty one: what the comparison walks through may be
    anything in a hostile or broken file."""
    return node if isinstance(node, dict) else {}


def _names(node) -> set[str]:
    """The strings of a list (`required`), ignoring anything else in it."""
    return {name for name in node if isinstance(name, str)} if isinstance(node, list) else set()


def _resolve(document: dict, node):
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 50:
        target = document
        for token in node["$ref"].lstrip("#/").split("/"):
            target = target.get(token.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
        node, seen = target, seen + 1
    return node


def _in_schemas(parts) -> bool:
    return len(parts) >= 2 and parts[0] == "components" and parts[1] == "schemas" or "schema" in parts


def contradictions(document: dict) -> list[Finding]:
    findings: list[Finding] = []
    # Always draft 4 (OpenAPI 3.0's dialect), whatever a top-level `$schema` claims.
    resource = referencing.jsonschema.DRAFT4.create_resource(document)
    registry = referencing.Registry().with_resource("urn:document", resource)
    for parts, node in _walk({k: v for k, v in document.items() if not str(k).startswith("x-")}):
        where = _pointer(parts)
        if isinstance(node.get("$ref"), str) and _target(document, node["$ref"]) is None:
            findings.append(Finding("ref-unresolved", where, f"$ref {node['$ref']} points nowhere"))
            continue
        if "$ref" in node and len(node) > 1:
            siblings = sorted(k for k in node if k != "$ref")
            findings.append(Finding("ref-siblings", where,
                                    f"$ref has siblings {', '.join(siblings)}, which OpenAPI 3.0 ignores"
                                    + (" (so it is not nullable)" if "nullable" in siblings else "")))
        if not _in_schemas(parts):
            continue
        required, properties = node.get("required"), node.get("properties")
        combined = any(p in ("allOf", "anyOf", "oneOf") for p in parts)  # siblings may hold the property
        if isinstance(required, list) and isinstance(properties, dict) and not combined:
            for name in required:
                if not isinstance(name, str) or name not in properties:
                    findings.append(Finding("required-not-a-property", where, f"requires {name!r}, which is not one of its properties"))
        if "example" in node and parts and parts[-1] != "properties":
            schema = {"$ref": f"urn:document#{where}"}
            validator = OAS30Validator(schema, registry=registry, format_checker=oas30_format_checker)
            try:
                errors = sorted({e.message for e in validator.iter_errors(node["example"])})
            except RecursionError:
                findings.append(Finding("example-unchecked", where, "its schema refers to itself without end; "
                                                                 "its example cannot be checked"))
                continue
            except referencing.exceptions.Unresolvable as exc:
                findings.append(Finding("example-unchecked", where, f"its example cannot be checked: {type(exc).__name__}"))
                continue
            except Exception as exc:  # noqa: BLE001 - the validator trips on malformed schemas in many ways
                findings.append(Finding("example-unchecked", where, "its example cannot be checked: its schema is "
                                                                     f"malformed ({type(exc).__name__})"))
                continue
            if errors:
                findings.append(Finding("example-invalid", where, f"its example fails its own schema: {'; '.join(errors[:3])}"))
    return findings


def _operations(document: dict) -> dict[tuple[str, str], dict]:
    return {
        (method.upper(), path): operation
        for path, item in (document.get("paths") or {}).items()
        for method, operation in item.items()
        if method in HTTP_METHODS and isinstance(operation, dict)
    }


def _unwrap(document: dict, node):
    """A schema with its `$ref` resolved and a lone `allOf` (the `$ref`-with-siblings fix) opened."""
    node = _resolve(document, node)
    for _ in range(20):  # bounded: a lone allOf may refer back to itself
        if not (isinstance(node, dict) and isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1):
            break
        inner = _resolve(document, node["allOf"][0])
        node = {**_mapping(inner), **{k: v for k, v in node.items() if k != "allOf"}}
    return node


def _ref_target(node) -> str | None:
    """The component a schema stands for (`$ref`, or a lone `allOf` of one), else None."""
    if isinstance(node, dict) and isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        node = node["allOf"][0]
    return node.get("$ref") if isinstance(node, dict) else None


def _compare_schema(published: dict, ours: dict, published_node, our_node, where: str, findings: list, depth: int = 0):
    if depth > 0 and _ref_target(published_node) and _ref_target(published_node) == _ref_target(our_node):
        return  # the same component on both sides: compared once, under #/components/schemas
    original = published_node
    published_node, our_node = _unwrap(published, published_node), _unwrap(ours, our_node)
    if not isinstance(published_node, dict) or not isinstance(our_node, dict) or depth > 6:
        return
    their_props = _mapping(published_node.get("properties"))
    my_props = _mapping(our_node.get("properties"))
    if depth == 0 and "data" in my_props and "data" not in their_props and set(my_props) <= {"data", "meta"}:
        findings.append(Finding("envelope", where, "the sandbox wraps the body in Layer's {\"data\": ...} "
                                                      "envelope; the published file sends it bare"))
        _compare_schema(published, ours, original, my_props["data"], f"{where} data", findings, depth + 1)
        return
    for field in FIELDS:
        mine, theirs = our_node.get(field), published_node.get(field)
        if mine != theirs:
            findings.append(Finding(field, where, f"{field}: published {theirs!r}, sandbox {mine!r}"))
    if published_node.get("required") is not None or our_node.get("required") is not None:
        theirs, mine = _names(published_node.get("required")), _names(our_node.get("required"))
        if theirs != mine:
            findings.append(Finding("required", where, "required: published only "
                                    f"{sorted(theirs - mine)}, sandbox only {sorted(mine - theirs)}"))
    theirs_props = their_props
    for name in sorted(set(theirs_props) - set(my_props)):
        findings.append(Finding("property-published-only", f"{where}/properties/{name}", "published only"))
    for name in sorted(set(my_props) - set(theirs_props)):
        findings.append(Finding("property-sandbox-only", f"{where}/properties/{name}", "sandbox only"))
    for name in sorted(set(theirs_props) & set(my_props)):
        _compare_schema(published, ours, theirs_props[name], my_props[name], f"{where}/properties/{name}",
                        findings, depth + 1)
    if "items" in published_node and "items" in our_node:
        _compare_schema(published, ours, published_node["items"], our_node["items"], f"{where}/items", findings, depth + 1)


def _parameters(document: dict, operation: dict) -> set[tuple[str, str]]:
    """(in, name) of an operation's parameters, as strings so that they sort."""
    listed = operation.get("parameters")
    resolved = (_resolve(document, p) for p in (listed if isinstance(listed, list) else []))
    return {(str(p.get("in")), str(p.get("name"))) for p in resolved if isinstance(p, dict)}


def _json_schema(document: dict, response):
    """The application/json schema of a response, or None."""
    content = _mapping(_mapping(_resolve(document, response)).get("content"))
    return _mapping(content.get("application/json")).get("schema")


def differences(published: dict, ours: dict) -> list[Finding]:
    findings: list[Finding] = []
    theirs_ops, my_ops = _operations(published), _operations(ours)
    for method, path in sorted(set(theirs_ops) - set(my_ops)):
        findings.append(Finding("operation-published-only", f"{method} {path}", "published only"))
    for method, path in sorted(set(my_ops) - set(theirs_ops)):
        findings.append(Finding("operation-sandbox-only", f"{method} {path}", "not in the published file (sandbox only)"))
    for key in sorted(set(theirs_ops) & set(my_ops)):
        theirs, mine = theirs_ops[key], my_ops[key]
        where = f"{key[0]} {key[1]}"
        if theirs.get("operationId") != mine.get("operationId"):
            findings.append(Finding("operation-id", where, f"operationId: published {theirs.get('operationId')!r}, "
                                                          f"sandbox {mine.get('operationId')!r}"))
        their_responses = {str(k): v for k, v in (theirs.get("responses") or {}).items()}
        my_responses = {str(k): v for k, v in (mine.get("responses") or {}).items()}
        their_status, my_status = set(their_responses), set(my_responses)
        if their_status != my_status:
            findings.append(Finding("responses", where, f"responses: published only {sorted(their_status - my_status)}, "
                                                          f"sandbox only {sorted(my_status - their_status)}"))
        their_params, my_params = _parameters(published, theirs), _parameters(ours, mine)
        if their_params != my_params:
            findings.append(Finding("parameters", where, f"parameters: published only {sorted(their_params - my_params)}, "
                                                          f"sandbox only {sorted(my_params - their_params)}"))
        if bool(theirs.get("requestBody")) != bool(mine.get("requestBody")):
            findings.append(Finding("request-body", where, "request body: present on one side only"))
        for status in sorted(their_status & my_status):
            their_schema = _json_schema(published, their_responses[status])
            my_schema = _json_schema(ours, my_responses[status])
            if their_schema is not None and my_schema is not None:
                _compare_schema(published, ours, their_schema, my_schema, f"{where} {status}", findings)
    their_schemas = _mapping(_mapping(published.get("components")).get("schemas"))
    my_schemas = _mapping(_mapping(ours.get("components")).get("schemas"))
    for name in sorted(set(their_schemas) & set(my_schemas)):
        _compare_schema(published, ours, their_schemas[name], my_schemas[name], f"#/components/schemas/{name}", findings)
    for name in sorted(set(their_schemas) - set(my_schemas)):
        findings.append(Finding("schema-published-only", f"#/components/schemas/{name}", "published only"))
    return findings


def check(path: Path, ours: dict) -> tuple[list[Finding], list[Finding]]:
    published = load_document(path)
    return contradictions(published), differences(published, ours)


def report_json(path: Path, spec_path: Path, found: list[Finding], diffs: list[Finding]) -> str:
    """The findings as one JSON document, for CI: what `--format json` prints."""
    return json.dumps({
        "file": str(path),
        "spec": str(spec_path),
        "contradictions": [finding.as_json() for finding in found],
        "differences": [finding.as_json() for finding in diffs],
        "counts": {"contradictions": len(found), "differences": len(diffs)},
    }, indent=2)


def report(path: Path, found: list[Finding], diffs: list[Finding]) -> str:
    lines = [f"check-spec {path}",
             f"{len(found)} self-contradiction(s) in the file:"]
    lines += [f"  - {finding}" for finding in found] or ["  (none)"]
    lines.append(f"{len(diffs)} difference(s) from the sandbox's openapi.yaml:")
    lines += [f"  - {finding}" for finding in diffs] or ["  (none)"]
    return "\n".join(lines)
