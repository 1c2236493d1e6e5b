"""The request journal: the most recent requests, bounded in memory, filterable, clearable.

Entries say what was asked (method, path, query, namespace, body), what was answered (status,
duration, body) and what the contract made of it (request and response validation, the first
violation, any forced response). The `Authorization` header and token are never recorded.

Bodies are kept as the bytes that crossed the wire, so that a test can check what its code sent
(`assert_requests(..., json={...})`); they are bounded twice: each to `BODY_LIMIT` bytes (the rest
cut, and the entry says so), and the request bodies and the response bodies each to
`body_budget` bytes in all, past which the oldest entries lose that body first (`bodies_dropped`;
they keep everything else). The two budgets are apart so that large answers (a page is ~28 KB)
never push out the small requests a test asserts on.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from datetime import UTC, datetime

import orjson

from .timestamps import format_timestamp

BODY_LIMIT = 64 * 1024
BODY_BUDGET = 8 * 1024 * 1024
BODIES = ("request_body", "response_body")


class Journal:
    def __init__(self, size: int, body_budget: int = BODY_BUDGET) -> None:
        self._entries: deque[dict] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.size = size
        self.body_budget = body_budget
        # Per body: the bytes held, and the entries that hold one, oldest first.
        self._held = dict.fromkeys(BODIES, 0)
        self._holding: dict[str, deque[dict]] = {name: deque() for name in BODIES}

    def record(self, entry: dict, request_body: bytes | None = None, deferred: bool = False) -> None:
        """Add an entry (and the request's body). The response body follows with `add_body`.
        (`deferred` lets another journal wait for the body's first part; this one keeps the entry now.)"""
        if self.size == 0:
            return
        with self._lock:
            entry["id"] = next(self._ids)
            entry["at"] = format_timestamp(datetime.now(UTC))
            entry["request_body"] = entry["response_body"] = None
            if len(self._entries) == self.size:
                self._retire(self._entries.popleft())
            self._entries.append(entry)
            self._keep(entry, "request_body", request_body)

    def add_body(self, entry: dict, chunk: bytes, final: bool = True) -> None:
        """Part of an entry's response body, as it is sent (`final`: its last part)."""
        if self.size == 0 or not chunk:
            return
        with self._lock:
            if entry.get("bodies_dropped") or entry.get("retired"):
                return
            self._keep(entry, "response_body", (entry["response_body"] or b"") + chunk)

    def _keep(self, entry: dict, name: str, body: bytes | None) -> None:
        if not body:
            return
        if len(body) > BODY_LIMIT:
            body, entry["bodies_truncated"] = body[:BODY_LIMIT], True
        holding = self._holding[name]
        if entry[name] is None:
            holding.append(entry)
        self._held[name] += len(body) - len(entry[name] or b"")
        entry[name] = body
        while self._held[name] > self.body_budget and holding[0] is not entry:
            oldest = holding.popleft()
            if oldest[name] is not None:
                self._held[name] -= len(oldest[name])
                oldest[name] = None
                oldest["bodies_dropped"] = True

    def _retire(self, entry: dict) -> None:
        """An entry leaves the journal: its bodies stop counting, and a body still on its way is
        not kept for it."""
        entry["retired"] = True
        for name in BODIES:
            if entry[name] is not None:
                self._held[name] -= len(entry[name])
                entry[name] = None
            holding = self._holding[name]
            while holding and holding[0].get("retired"):
                holding.popleft()

    def query(self, namespace: str | None = None, method: str | None = None, path: str | None = None,
              status: int | None = None, operation_id: str | None = None, contract: str | None = None,
              after: int | None = None, limit: int | None = None) -> list[dict]:
        """Matching entries, oldest first, bodies decoded; `contract=fail` keeps those with any
        failed validation, `contract=violation` those and the calls to routes the contract does
        not have."""
        with self._lock:
            entries = list(self._entries)
        selected = select(entries, namespace, method, path, status, operation_id, contract, after, limit)
        return [_readable(e) for e in selected]

    def clear(self, namespace: str | None = None) -> int:
        with self._lock:
            before = len(self._entries)
            kept = [] if namespace is None else [e for e in self._entries if e["namespace"] != namespace]
            for entry in self._entries:
                if namespace is None or entry["namespace"] == namespace:
                    self._retire(entry)
            self._entries.clear()
            self._entries.extend(kept)
            for name in BODIES:
                self._holding[name] = deque(e for e in self._holding[name] if not e.get("retired"))
            return before - len(kept)


def select(entries: list[dict], namespace: str | None, method: str | None, path: str | None, status: int | None,
           operation_id: str | None, contract: str | None, after: int | None, limit: int | None) -> list[dict]:
    """The entries GET /__sandbox/requests asks for (see Journal.query), oldest first: the one filter
    of every journal, in this process or in Redis."""
    selected = [
        e for e in entries
        if (namespace is None or e["namespace"] == namespace)
        and (method is None or e["method"] == method.upper())
        and (path is None or path in e["path"])
        and (status is None or e["status"] == status)
        and (operation_id is None or e.get("operation_id") == operation_id)
        and (contract is None or contract in _outcomes(e))
        and (after is None or e["id"] > after)
    ]
    return selected[-limit:] if limit else selected


def _outcomes(entry: dict) -> tuple[str, ...]:
    """The `contract` filter values an entry answers to."""
    checks = (entry.get("request_validation"), entry.get("response_validation"))
    if "fail" in checks:
        return ("fail", "violation")
    outcome = "pass" if "pass" in checks else "skipped"
    return (outcome, "violation") if entry.get("operation_id") is None else (outcome,)


def _readable(entry: dict) -> dict:
    """An entry as GET /__sandbox/requests shows it: a JSON body as JSON, another as text."""
    return {**{k: v for k, v in entry.items() if k != "retired"}, **{name: _decode(entry.get(name)) for name in BODIES}}


def _decode(body: bytes | None):
    if body is None:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", "replace")
