"""Bodies for forced responses, taken from the named examples in openapi.yaml.

Built once at start-up: for every operation, the statuses it declares and the named examples of
each (`credit_not_found`, `rate_limited`, ...), already encoded. A forced status without an
example gets that status's first example, or a plain Layer error of that status; either way
the body is one the contract declares, and it still goes through response validation.
"""

from __future__ import annotations

import json

from .errors import ApiError, bad_request
from .rules import Directive


def _resolve(spec: dict, node: dict) -> dict:
    while isinstance(node, dict) and "$ref" in node:
        target = spec
        for token in node["$ref"].lstrip("#/").split("/"):
            target = target[token.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


class ResponseCatalog:
    def __init__(self, spec: dict) -> None:
        # operationId -> status -> example name -> encoded body
        self.examples: dict[str, dict[int, dict[str, bytes]]] = {}
        for item in spec["paths"].values():
            for operation in item.values():
                if not isinstance(operation, dict) or "operationId" not in operation:
                    continue
                statuses: dict[int, dict[str, bytes]] = {}
                for status, response in operation["responses"].items():
                    content = _resolve(spec, response).get("content", {}).get("application/json", {})
                    statuses[int(status)] = {
                        name: json.dumps(_resolve(spec, example)["value"], separators=(",", ":")).encode()
                        for name, example in content.get("examples", {}).items()
                    }
                self.examples[operation["operationId"]] = statuses

    def forced(self, operation_id: str, directive: Directive) -> tuple[int, bytes] | None:
        """The forced status and body, or None when the handler should answer (a 2xx without an
        example). ApiError (400, naming `Prefer`) when the operation cannot give what is asked."""
        statuses = self.examples[operation_id]
        if directive.code is None and directive.example is None:
            return None
        code = directive.code
        if code is not None and code not in statuses:
            raise bad_request(
                f"Prefer code={code}: {operation_id} declares only {', '.join(map(str, sorted(statuses)))}",
                location="header", field="Prefer")
        if directive.example is not None:
            candidates = [code] if code is not None else sorted(statuses)
            for status in candidates:
                body = statuses[status].get(directive.example)
                if body is not None:
                    return status, body
            known = sorted({f"{name} ({status})" for status in candidates for name in statuses[status]})
            raise bad_request(
                f"Prefer example={directive.example}: no such example for {operation_id}"
                + (f" with code {code}" if code is not None else "") + f"; known: {', '.join(known) or 'none'}",
                location="header", field="Prefer")
        if 200 <= code < 300:
            return None
        named = statuses[code]
        if named:
            return code, next(iter(named.values()))
        return code, ApiError(code, f"Forced by the sandbox: status {code}").encode()
