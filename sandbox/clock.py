"""The clock that stamps `created_at`, `updated_at` and `deleted_at`: real, shifted or frozen.

Each namespace has its own, so that one CI job can freeze time without touching another's.
Snapshot tests freeze it (`--clock frozen=2026-01-01T00:00:00Z` or `POST /__sandbox/clock`)
and get byte-stable bodies; `advance` moves a frozen clock, or shifts a running one.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from .timestamps import format_timestamp, parse_timestamp


def _system_now() -> datetime:
    return datetime.now(UTC)


# The clock stays well inside what timestamps can express (years 1 to 9999), so that time passing
# or being advanced can never push a stamp out of range.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
# The largest shift of a running clock from real time, either way: a clock set anywhere in its
# range while real time is anywhere in it. A state import checks offsets against this bound, so
# every offset the clock can take is one the sandbox loads back.
MAX_OFFSET = LATEST - EARLIEST


def _storable(offset: timedelta) -> timedelta:
    """`offset` as it reads back from the float of seconds that `state()` writes.

    A float carries about 16 digits, so an offset of centuries (up to 2.3e11 s) comes back from a
    state file up to ~15 microseconds off. Keeping the offset at that value from the start makes a
    restored clock read exactly what the saved one read (the float round-trip is exact from here).
    """
    return timedelta(seconds=offset.total_seconds())


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

    @staticmethod
    def _check(moment: datetime) -> datetime:
        if not EARLIEST <= moment <= LATEST:
            raise ClockError(f"{format_timestamp(moment)} is outside the clock's range "
                             f"({format_timestamp(EARLIEST)} to {format_timestamp(LATEST)})")
        return moment

    def freeze(self, at: datetime | None = None) -> None:
        with self._lock:
            self.frozen_at = self._check(at if at is not None else self._system() + self.offset)
            self.mode = "frozen"
            self.offset = timedelta(0)

    def run_from(self, at: datetime) -> None:
        """Tick in real time, starting now from `at`."""
        with self._lock:
            self._check(at)
            self.mode = "system"
            self.offset = _storable(at - self._system())
            self.frozen_at = None

    def use_system(self) -> None:
        with self._lock:
            self.mode = "system"
            self.offset = timedelta(0)
            self.frozen_at = None

    def advance(self, seconds: float) -> None:
        with self._lock:
            try:
                step = timedelta(seconds=seconds)
                if self.mode == "frozen":
                    self.frozen_at = self._check(self.frozen_at + step)
                else:
                    self._check(self._system() + self.offset + step)
                    self.offset = _storable(self.offset + step)
            except OverflowError:
                raise ClockError(f"advancing by {seconds} s leaves the clock's range") from None

    def state(self) -> dict:
        """What export and the state file keep of the clock."""
        with self._lock:
            return {"mode": self.mode,
                    "frozen_at": format_timestamp(self.frozen_at) if self.frozen_at else None,
                    "offset_seconds": self.offset.total_seconds()}

    def restore(self, state: dict) -> None:
        """Back to a `state()`; ClockError (and no change) when it cannot be used."""
        try:
            frozen_at = parse_timestamp(state["frozen_at"]) if state.get("frozen_at") else None
            offset = timedelta(seconds=float(state.get("offset_seconds") or 0))
        except (ValueError, OverflowError, TypeError, KeyError) as exc:
            raise ClockError(f"clock state {state!r} cannot be used: {exc}") from None
        if state["mode"] == "frozen" and frozen_at is None:
            raise ClockError("a frozen clock needs frozen_at")
        if abs(offset) > MAX_OFFSET:
            raise ClockError(f"offset_seconds {offset.total_seconds()} is beyond the clock's range "
                             f"(+-{MAX_OFFSET.total_seconds():.0f} s)")
        with self._lock:
            if frozen_at is not None:
                self._check(frozen_at)
            self.mode, self.frozen_at, self.offset = state["mode"], frozen_at, offset

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
        except (ValueError, OverflowError) as exc:
            if isinstance(exc, ClockError):
                raise
            raise ClockError(f"{value!r} is not an ISO 8601 date-time") from None
