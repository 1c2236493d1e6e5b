"""Saving every namespace to `--state-file` atomically, and loading it back at start.

A save writes a temporary file beside the target, flushes it to disk, and renames it over the
target in one step, so a crash at any moment leaves either the old file or the new one, never a
half-written one. A file that cannot be read or imported is refused with a clear message.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

FORMAT = "layer-sandbox/state-file-v1"


class StateFileError(RuntimeError):
    """The state file exists but cannot be used."""


def save(path: Path, namespaces: dict[str, dict]) -> int:
    """Write the exports of all namespaces; returns the number of bytes written."""
    data = json.dumps({"format": FORMAT, "namespaces": namespaces}, separators=(",", ":")).encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a state file is shared with tooling
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return len(data)


def load(path: Path) -> dict[str, dict] | None:
    """The saved namespace exports, or None when there is no file yet."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise StateFileError(f"state file {path} is not readable JSON ({exc}); "
                             "move it away or point --state-file elsewhere") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(document.get("namespaces"), dict):
        raise StateFileError(f"state file {path} is not a layer-sandbox state file (format {FORMAT})")
    return document["namespaces"]
