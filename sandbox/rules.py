"""Forced responses: one channel for status, named example, latency and connection faults.

A client asks per request with a `Prefer` header in Prism's style
(`Prefer: code=404, example=credit_not_found, delay=250, fault=truncate`), or sets the same as a
rule on the namespace (`POST /__sandbox/rules`) that matches on method and path, optionally for
the next N matching requests only. A `Prefer` header wins over the rules.

A rule is checked against the contract when it is made (see `ResponseCatalog.rule_scope`): it
names the operations it can be followed on, and is passed by on any other, so that a rule never
turns into an error at request time for a `Prefer` header the client never sent.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass

FAULTS = ("drop", "truncate", "empty")
MAX_DELAY_MS = 60_000
METHODS = ("GET", "POST", "PATCH", "DELETE", "PUT", "HEAD", "OPTIONS")
MAX_PATH = 2048  # a rule's path glob; matching it against the contract's paths costs its length


class DirectiveError(ValueError):
    """A `Prefer` header or rule the sandbox cannot follow; `field` names the part."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Directive:
    code: int | None = None
    example: str | None = None
    delay_ms: int = 0
    fault: str | None = None

    @property
    def empty(self) -> bool:
        return self == Directive()

    def describe(self) -> str:
        parts = [f"code={self.code}" if self.code else "", f"example={self.example}" if self.example else "",
                 f"delay={self.delay_ms}" if self.delay_ms else "", f"fault={self.fault}" if self.fault else ""]
        return ", ".join(p for p in parts if p)

    @classmethod
    def build(cls, code=None, example=None, delay=None, fault=None, where: str = "") -> Directive:
        def problem(name, message):
            return DirectiveError(f"{where}{name}: {message}", field=f"{where}{name}".rstrip(": "))

        if code is not None:
            try:
                code = int(code)
            except (TypeError, ValueError, OverflowError):
                raise problem("code", f"{code!r} is not an HTTP status") from None
            if not 100 <= code <= 599 or isinstance(code, bool):
                raise problem("code", f"{code} is not an HTTP status")
        if example is not None and (not isinstance(example, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", example)):
            raise problem("example", f"{example!r} is not an example name")
        delay_ms = 0
        if delay is not None:
            try:
                delay_ms = int(delay)
            except (TypeError, ValueError, OverflowError):
                raise problem("delay", f"{delay!r} is not a number of milliseconds") from None
            if isinstance(delay, bool) or not 0 <= delay_ms <= MAX_DELAY_MS:
                raise problem("delay", f"must be 0 to {MAX_DELAY_MS} milliseconds")
        if fault is not None and fault not in FAULTS:
            raise problem("fault", f"{fault!r} is not one of {', '.join(FAULTS)}")
        return cls(code, example, delay_ms, fault)


def parse_prefer(header: str | None) -> Directive:
    """The sandbox's preferences in a `Prefer` header; others (RFC 7240) are ignored."""
    if not header:
        return Directive()
    values: dict[str, str] = {}
    for part in re.split(r"[,;]", header):
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        if name in ("code", "example", "delay", "fault"):
            values[name] = value.strip().strip('"')
    return Directive.build(**values, where="Prefer ")


@dataclass
class Rule:
    id: str
    directive: Directive
    method: str | None = None
    path: str = "*"
    remaining: int | None = None
    hits: int = 0
    # The operationIds it can be followed on; None: not checked against a contract, any.
    operations: tuple[str, ...] | None = None

    def matches(self, method: str, path: str, operation_id: str | None = None) -> bool:
        if self.operations is not None and operation_id not in self.operations:
            return False
        return (self.method is None or self.method == method) and fnmatch.fnmatchcase(path, self.path)

    def to_dict(self) -> dict:
        return {"id": self.id, "method": self.method, "path": self.path, "remaining": self.remaining,
                "hits": self.hits, **{k: v for k, v in asdict(self.directive).items()},
                "operations": None if self.operations is None else list(self.operations)}


class RuleBook:
    """The rules of one namespace, matched in the order they were added."""

    def __init__(self) -> None:
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def add(self, spec: dict, scope: Callable[[str | None, str, Directive], tuple[str, ...]] | None = None) -> Rule:
        """A new rule from its JSON fields. `scope(method, path, directive)` gives the operations
        it can be followed on, or raises DirectiveError when there are none."""
        if not isinstance(spec, dict):
            raise DirectiveError("a rule is a JSON object", field="(root)")
        unknown = sorted(set(spec) - {"method", "path", "count", "code", "example", "delay", "fault"})
        if unknown:
            raise DirectiveError(f"unknown rule fields: {', '.join(unknown)}", field=unknown[0])
        method = spec.get("method")
        if method is not None and (not isinstance(method, str) or method.upper() not in METHODS):
            raise DirectiveError(f"method must be one of {', '.join(METHODS)}", field="method")
        path = spec.get("path", "*")
        if not isinstance(path, str) or not path.startswith(("/", "*")) or path.startswith("/__sandbox"):
            raise DirectiveError("path is a glob such as /v1/businesses/*/invoices/customer-credits/* "
                                 "(control routes cannot be ruled)", field="path")
        if len(path) > MAX_PATH:
            raise DirectiveError(f"path is at most {MAX_PATH} characters", field="path")
        count = spec.get("count")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
            raise DirectiveError("count must be a positive integer", field="count")
        directive = Directive.build(spec.get("code"), spec.get("example"), spec.get("delay"), spec.get("fault"))
        if directive.empty:
            raise DirectiveError("a rule needs at least one of code, example, delay or fault", field="code")
        method = method.upper() if method else None
        operations = scope(method, path, directive) if scope is not None else None
        return self._new_rule(directive, method, path, count, operations)

    def _new_rule(self, directive: Directive, method: str | None, path: str, count: int | None,
                  operations: tuple[str, ...] | None) -> Rule:
        """Keep a checked rule under the next id (the Redis store keeps it there instead)."""
        with self._lock:
            rule = Rule(f"rule-{next(self._ids)}", directive, method, path, count, operations=operations)
            self._rules.append(rule)
        return rule

    def match(self, method: str, path: str, operation_id: str | None = None) -> Rule | None:
        """The first rule for this request that can be followed on its operation, counted as
        used (and dropped when used up)."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path, operation_id):
                    rule.hits += 1
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._rules.remove(rule)
                    return rule
        return None

    def list(self) -> list[dict]:
        with self._lock:
            return [rule.to_dict() for rule in self._rules]

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            for rule in self._rules:
                if rule.id == rule_id:
                    self._rules.remove(rule)
                    return True
        return False

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()


# ------------------------------------------------------------------ globs against path templates

# A character set is (characters, negated): a literal is ({c}, False), any character (frozenset(),
# True), what routing takes in a `{param}` ({"/"}, True).
_ANY = (frozenset(), True)
_NOT_SLASH = (frozenset("/"), True)


def _glob_items(glob: str) -> list[tuple[tuple[frozenset, bool], bool]]:
    """A path glob as (character set, repeated) items, read as fnmatch reads it. A `[...]` class
    counts as any one character: wider than the class, so a glob is never judged to miss a
    path that it can match."""
    items: list[tuple[tuple[frozenset, bool], bool]] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        i += 1
        if char == "*":
            if not items or items[-1] != (_ANY, True):
                items.append((_ANY, True))
        elif char == "?":
            items.append((_ANY, False))
        elif char == "[":
            end = i + (glob[i:i + 1] == "!")
            end += glob[end:end + 1] == "]"
            end = glob.find("]", end)
            if end < 0:
                items.append(((frozenset("["), False), False))  # fnmatch takes an unclosed `[` literally
            else:
                items.append((_ANY, False))
                i = end + 1
        else:
            items.append(((frozenset(char), False), False))
    return items


def _template_items(template: str, params: dict[str, frozenset]) -> list[tuple[tuple[frozenset, bool], bool]]:
    """An OpenAPI path template as items: a `{param}` is one or more of the characters `params`
    gives it (those a valid value can hold), else what routing takes there, `[^/]+`."""
    items: list[tuple[tuple[frozenset, bool], bool]] = []
    for literal, name in re.findall(r"([^{]*)(?:\{([^}]*)\})?", template):
        items.extend(((frozenset(char), False), False) for char in literal)
        if name:
            chars = (params[name], False) if name in params else _NOT_SLASH
            items += [(chars, False), (chars, True)]
    return items


def _overlap(one: tuple[frozenset, bool], other: tuple[frozenset, bool]) -> bool:
    """Whether some character is in both sets (the alphabet being larger than any set here)."""
    (chars, negated), (other_chars, other_negated) = one, other
    if negated and other_negated:
        return True
    if negated or other_negated:
        taken, refused = (other_chars, chars) if negated else (chars, other_chars)
        return bool(taken - refused)
    return bool(chars & other_chars)


def glob_meets_template(glob: str, template: str, params: dict[str, frozenset] | None = None) -> bool:
    """Whether some request path both matches the rule's glob (fnmatch: `*` crosses `/`) and
    is routed to this path template with valid parameters (`params`: the characters each may
    hold): `/v1/businesses/*/invoices/customer-credits/*` and `*/customer-credits/cb06718c-*`
    both meet `.../customer-credits/{customerCreditId}`.

    The two patterns are walked side by side (the product of their automata) looking for one
    string both accept; at most len(glob) x len(template) states."""
    pattern, route = _glob_items(glob), _template_items(template, params or {})
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        state = todo.pop()
        if state in seen:
            continue
        seen.add(state)
        i, j = state
        if i == len(pattern) and j == len(route):
            return True
        if i < len(pattern) and pattern[i][1]:
            todo.append((i + 1, j))  # a `*` that takes nothing (more)
        if j < len(route) and route[j][1]:
            todo.append((i, j + 1))
        if i < len(pattern) and j < len(route) and _overlap(pattern[i][0], route[j][0]):
            todo.append((i + (not pattern[i][1]), j + (not route[j][1])))
    return False
