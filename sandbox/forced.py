"""Bodies for forced responses, taken from the named examples in openapi.yaml.

Built once at start-up: for every operation, its method and path template, the statuses it
declares and the named examples of each (`credit_not_found`, `rate_limited`, ...), already
encoded. A forced status without an example gets that status's first example, or a plain Layer
error of that status; either way the body is one the contract declares, and it still goes
through response validation.

The same knowledge judges a rule when it is made (`rule_scope`): which operations its method
and path glob reach, and which of those declare what it forces. A rule none can follow is
refused then, naming its own field, rather than failing later on requests that never asked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import ApiError, bad_request
from .resources import HTTP_METHODS
from .rules import Directive, DirectiveError, glob_meets_template

# What a path parameter of `format: uuid` can hold and pass request validation, which comes before
# any forcing: hex digits and hyphens (Python's UUID, behind the format check, also strips braces,
# `urn:` and `uuid:`). A rule's glob can only reach such a parameter through these.
UUID_CHARS = frozenset("0123456789abcdefABCDEF-{}:urnid")


def _resolve(spec: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for token in node["$ref"].lstrip("#/").split("/"):
            target = target[token.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


@dataclass(frozen=True)
class Operation:
    id: str
    method: str
    template: str
    params: dict[str, frozenset]  # path parameter -> the characters a valid value can hold


def _path_params(spec: dict, item: dict, operation: dict) -> dict[str, frozenset]:
    found = {}
    for parameter in [*item.get("parameters", []), *operation.get("parameters", [])]:
        parameter = _resolve(spec, parameter)
        if parameter.get("in") == "path" and _resolve(spec, parameter.get("schema", {})).get("format") == "uuid":
            found[parameter["name"]] = UUID_CHARS
    return found


class ResponseCatalog:
    def __init__(self, spec: dict) -> None:
        # operationId -> status -> example name -> encoded body
        self.examples: dict[str, dict[int, dict[str, bytes]]] = {}
        self.operations: list[Operation] = []
        for template, item in spec["paths"].items():
            for method, operation in item.items():
                if method not in HTTP_METHODS or not isinstance(operation, dict) or "operationId" not in operation:
                    continue
                statuses: dict[int, dict[str, bytes]] = {}
                for status, response in operation["responses"].items():
                    content = _resolve(spec, response).get("content", {}).get("application/json", {})
                    statuses[int(status)] = {
                        name: json.dumps(_resolve(spec, example)["value"], separators=(",", ":")).encode()
                        for name, example in content.get("examples", {}).items()
                    }
                self.examples[operation["operationId"]] = statuses
                self.operations.append(Operation(operation["operationId"], method.upper(), template,
                                                 _path_params(spec, item, operation)))

    def problem(self, operation_id: str, directive: Directive) -> tuple[str, str] | None:
        """Why this operation cannot give what the directive asks, as (the directive's part at
        fault, what is wrong), or None when it can (a delay or fault alone it always can)."""
        statuses = self.examples[operation_id]
        code = directive.code
        if code is not None and code not in statuses:
            return "code", f"code={code}: {operation_id} declares only {', '.join(map(str, sorted(statuses)))}"
        if directive.example is not None:
            candidates = [code] if code is not None else sorted(statuses)
            if not any(directive.example in statuses[status] for status in candidates):
                return "example", (f"example={directive.example}: no such example for {operation_id}"
                                   + (f" with code {code}" if code is not None else "")
                                   + f"; known: {', '.join(self.known_examples(operation_id, code)) or 'none'}")
        return None

    def known_examples(self, operation_id: str, code: int | None = None) -> list[str]:
        statuses = self.examples[operation_id]
        candidates = [code] if code is not None else sorted(statuses)
        return sorted({f"{name} ({status})" for status in candidates for name in statuses.get(status, {})})

    def forced(self, operation_id: str, directive: Directive, source: str = "Prefer") -> tuple[int, bytes] | None:
        """The forced status and body, or None when the handler should answer (a 2xx without an
        example). ApiError 400 naming `source` (`Prefer`, or the rule's id) when the operation
        cannot give what is asked."""
        if directive.code is None and directive.example is None:
            return None
        problem = self.problem(operation_id, directive)
        if problem is not None:
            where = {"location": "header", "field": "Prefer"} if source == "Prefer" else {"rule": source}
            raise bad_request(f"{source} {problem[1]}", **where)
        statuses = self.examples[operation_id]
        code = directive.code
        if directive.example is not None:
            for status in [code] if code is not None else sorted(statuses):
                body = statuses[status].get(directive.example)
                if body is not None:
                    return status, body
        if 200 <= code < 300:
            return None
        named = statuses[code]
        if named:
            return code, next(iter(named.values()))
        return code, ApiError(code, f"Forced by the sandbox: status {code}").encode()

    def rule_scope(self, method: str | None, path: str, directive: Directive) -> tuple[str, ...]:
        """The operationIds a rule of this method (None: any) and path glob can be followed on.
        DirectiveError, naming the rule's field and what the operations it reaches declare, when
        there is none: its path or method reaches no operation, or none declares its code or
        example."""
        on_path = [op for op in self.operations if glob_meets_template(path, op.template, op.params)]
        if not on_path:
            templates = sorted({op.template for op in self.operations})
            raise DirectiveError(f"path: {path!r} matches none of the contract's paths: {', '.join(templates)}",
                                 field="path")
        reached = [op for op in on_path if method is None or op.method == method]
        if not reached:
            taken = [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if any(op.method == m for op in on_path)]
            raise DirectiveError(f"method: no operation takes {method} on the paths {path!r} matches; "
                                 f"they take {', '.join(taken)}", field="method")
        followable = tuple(op.id for op in reached if self.problem(op.id, directive) is None)
        if followable:
            return followable
        # The code is at fault when no operation declares it; else (some do) its example is.
        unknown_code = directive.code is not None and all(directive.code not in self.examples[op.id] for op in reached)
        field = "code" if unknown_code else "example"
        if field == "code":
            declared = {op.id: ", ".join(map(str, sorted(self.examples[op.id]))) for op in reached}
        else:
            declared = {op.id: ", ".join(self.known_examples(op.id, directive.code)) or "no named example"
                        for op in reached}
        groups: dict[str, list[str]] = {}  # operations that declare the same, named together
        for op in reached:
            groups.setdefault(declared[op.id], []).append(op.id)
        listed = "; ".join(f"{', '.join(ids)}: {what}" for what, ids in groups.items())
        asked = f"code {directive.code}" if field == "code" else f"example {directive.example!r}" + (
            f" with code {directive.code}" if directive.code is not None else "")
        raise DirectiveError(f"{field}: none of the operations this rule matches declares {asked}; "
                             f"they declare: {listed}", field=field)
