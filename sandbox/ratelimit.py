"""Layer's rate limit, opt-in: a bucket of N requests per bearer token, refilled every second.

Layer documents a token bucket refilled every 1 s, with `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset` (UTC epoch seconds of the next refill) on
responses and `429` with `Retry-After` when a caller runs dry. `refusal` is the one place a 429
is made: the limiter's own, and a forced one (`Prefer: code=429`, a rule), which answers as a
caller whose bucket is empty now would be answered.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time

from .errors import ApiError

# Layer's documented limit in its sandbox environment, per token and second: what a forced 429
# names when no --rate-limit is set, as a real one from Layer's sandbox would.
LAYER_SANDBOX_LIMIT = 100


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
        return allowed, self._headers(now, remaining, refused=not allowed)

    def exhausted(self) -> ApiError:
        """The 429 of a caller whose bucket is empty now (a forced 429): it spends nothing."""
        return self.refusal(self._headers(self._now(), 0, refused=True))

    def refusal(self, headers: dict[str, str]) -> ApiError:
        """The 429 for a refused request, with the headers `take` (or `exhausted`) gave it."""
        return ApiError(429, f"Rate limit of {self.limit} requests per second exceeded; "
                             f"retry after {headers['Retry-After']} s",
                        headers=headers, kind=("RateLimited", "RateLimited"))

    def _headers(self, now: float, remaining: int, refused: bool) -> dict[str, str]:
        window = math.floor(now)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(window + 1),
        }
        if refused:
            headers["Retry-After"] = str(max(1, math.ceil(window + 1 - now)))
        return headers
