"""The request journal: the most recent requests, bounded in memory, filterable, clearable.

Entries say what was asked (method, path, query, namespace), what was answered (status,
duration) and what the contract made of it (request and response validation, the first
violation, any forced response). The `Authorization` header and token are never recorded.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from datetime import UTC, datetime

from .timestamps import format_timestamp


class Journal:
    def __init__(self, size: int) -> None:
        self._entries: deque[dict] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.size = size

    def record(self, entry: dict) -> None:
        if self.size == 0:
            return
        with self._lock:
            entry["id"] = next(self._ids)
            entry["at"] = format_timestamp(datetime.now(UTC))
            self._entries.append(entry)

    def query(self, namespace: str | None = None, method: str | None = None, path: str | None = None,
              status: int | None = None, operation_id: str | None = None, contract: str | None = None,
              after: int | None = None, limit: int | None = None) -> list[dict]:
        """Matching entries, oldest first; `contract=fail` keeps those with any failed validation."""
        with self._lock:
            entries = list(self._entries)
        selected = [
            e for e in entries
            if (namespace is None or e["namespace"] == namespace)
            and (method is None or e["method"] == method.upper())
            and (path is None or path in e["path"])
            and (status is None or e["status"] == status)
            and (operation_id is None or e.get("operation_id") == operation_id)
            and (contract is None or _outcome(e) == contract)
            and (after is None or e["id"] > after)
        ]
        return selected[-limit:] if limit else selected

    def clear(self, namespace: str | None = None) -> int:
        with self._lock:
            before = len(self._entries)
            kept = [] if namespace is None else [e for e in self._entries if e["namespace"] != namespace]
            self._entries.clear()
            self._entries.extend(kept)
            return before - len(kept)


def _outcome(entry: dict) -> str:
    checks = (entry.get("request_validation"), entry.get("response_validation"))
    if "fail" in checks:
        return "fail"
    return "pass" if "pass" in checks else "skipped"
