"""Layer's rate limit, opt-in: a bucket of N requests per bearer token, refilled every second.

Layer documents a token bucket refilled every 1 s, with `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset` (UTC epoch seconds of the next refill) on
responses and `429` with `Retry-After` when a caller runs dry.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time


class RateLimiter:
    def __init__(self, per_second: int, now=time.time) -> None:
        self.limit = per_second
        self._now = now
        self._buckets: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def take(self, token: str) -> tuple[bool, dict[str, str]]:
        """Whether this request may go on, and the headers that say how much is left."""
        key = hashlib.sha256(token.encode()).hexdigest()  # tokens are never kept in the clear
        now = self._now()
        window = math.floor(now)
        with self._lock:
            started, remaining = self._buckets.get(key, (window, self.limit))
            if started != window:
                started, remaining = window, self.limit
            allowed = remaining > 0
            if allowed:
                remaining -= 1
            self._buckets[key] = (started, remaining)
            if len(self._buckets) > 10_000:  # forget idle callers
                self._buckets = {k: v for k, v in self._buckets.items() if v[0] == window}
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(window + 1),
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(window + 1 - now)))
        return allowed, headers
