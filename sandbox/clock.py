"""The clock that stamps `created_at`, `updated_at` and `deleted_at`: real, shifted or frozen.

Each namespace has its own, so that one CI job can freeze time without touching another's.
Snapshot tests freeze it (`--clock frozen=2026-01-01T00:00:00Z` or `POST /__sandbox/clock`)
and get byte-stable bodies; `advance` moves a frozen clock, or shifts a running one.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from sandbox.timestamps import format_timestamp, parse_timestamp


def _system_now() -> datetime:
    return datetime.now(timezone.utc)


class ClockError(ValueError):
    """A clock setting the sandbox cannot use."""


class Clock:
    """`mode` is `system` (real time, possibly shifted by `offset`) or `frozen` (at `frozen_at`)."""

    def __init__(self, now=_system_now) -> None:
        self._system = now
        self._lock = threading.Lock()
        self.mode = "system"
        self.frozen_at: datetime | None = None
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        with self._lock:
            if self.mode == "frozen":
                return self.frozen_at
            return self._system() + self.offset

    def freeze(self, at: datetime | None = None) -> None:
        with self._lock:
            self.frozen_at = at if at is not None else self._system() + self.offset
            self.mode = "frozen"
            self.offset = timedelta(0)

    def run_from(self, at: datetime) -> None:
        """Tick in real time, starting now from `at`."""
        with self._lock:
            self.mode = "system"
            self.offset = at - self._system()
            self.frozen_at = None

    def use_system(self) -> None:
        with self._lock:
            self.mode = "system"
            self.offset = timedelta(0)
            self.frozen_at = None

    def advance(self, seconds: float) -> None:
        with self._lock:
            step = timedelta(seconds=seconds)
            if self.mode == "frozen":
                self.frozen_at = self.frozen_at + step
            else:
                self.offset += step

    def describe(self) -> dict:
        return {"mode": self.mode, "now": format_timestamp(self()),
                "offset_seconds": self.offset.total_seconds()}

    def configure(self, setting: str) -> None:
        """A command-line setting: `system`, `frozen`, `frozen=<ISO 8601>` or `start=<ISO 8601>`."""
        name, _, value = setting.partition("=")
        try:
            if name == "system" and not value:
                self.use_system()
            elif name == "frozen":
                self.freeze(parse_timestamp(value) if value else None)
            elif name == "start" and value:
                self.run_from(parse_timestamp(value))
            else:
                raise ClockError(f"unknown clock setting {setting!r}; use system, frozen[=TIME] or start=TIME")
        except ValueError as exc:
            if isinstance(exc, ClockError):
                raise
            raise ClockError(f"{value!r} is not an ISO 8601 date-time") from None
