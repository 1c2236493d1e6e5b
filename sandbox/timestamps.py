"""The sandbox's one wire format for timestamps, and the parsing of the ones clients send.

Timestamps are kept and sent as fixed-width UTC text (`2026-01-01T00:00:00.000000Z`): they sort
as strings, serialise without work, and never depend on the machine's time zone.
"""

from __future__ import annotations

from datetime import UTC, datetime


def format_timestamp(moment: datetime) -> str:
    # Not strftime: its %Y does not zero-pad years before 1000 on every platform.
    m = moment.astimezone(UTC)
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{m.microsecond:06d}Z"


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 date (midnight UTC) or date-time (UTC if it has no offset).

    Raises ValueError for text that only looks like one (month 13, second 60, ...).
    """
    normalized = text.strip().upper().replace(" ", "T", 1)
    if normalized.endswith("Z"):
        normalized = normalized[:-1] + "+00:00"
    moment = datetime.fromisoformat(normalized)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not 1 <= moment.astimezone(UTC).year <= 9999:
        raise ValueError("year out of range")
    return moment


def normalize_timestamp(text: str) -> str:
    """Client text in the sandbox's wire format; ValueError when it is not a real moment."""
    try:
        return format_timestamp(parse_timestamp(text))
    except OverflowError as exc:
        raise ValueError(str(exc)) from None
