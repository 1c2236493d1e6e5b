"""`--state-file`: a snapshot of every namespace, and a log of every write acknowledged since.

A killed sandbox (SIGKILL, out of memory, a crashed laptop's process) must come back with every
write it acknowledged. Saving the whole state on each write would cost time in proportion to the
state, so the state lives in two files:

- the snapshot, `--state-file` itself: every namespace's export, written to a temporary file,
  flushed to disk and renamed over the old one, so that a crash at any moment leaves the old
  snapshot or the new one, never half of one;
- the log beside it, `<state-file>.log`: one line per credit a write changed (its whole Layer
  representation) or namespace it created, appended before the response leaves. A line reaches
  the operating system with one `write`, so the kernel keeps it when the process dies.

Each file names its generation. A checkpoint (at start, at shutdown, on `POST /__sandbox/save`,
after a control route changes state, and when the log grows past `COMPACT_AFTER` lines) writes
the snapshot of the next generation and then starts an empty log of that generation; a log of an
older generation is one a crash left between those two steps, and is ignored: its writes are in
the snapshot already. A torn last line is a write that was never acknowledged and is dropped; any
other damage refuses to start, with a message that says where.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import zlib
from pathlib import Path

from .snapshot import FORMAT as EXPORT_FORMAT
from .store import IdSource

FORMAT = "layer-sandbox/state-file-v1"
LOG_FORMAT = "layer-sandbox/state-log-v1"
# Lines (or bytes) a log may hold before the next safe moment folds it into a new snapshot.
COMPACT_AFTER = 20_000
COMPACT_AFTER_BYTES = 64 * 1024 * 1024

log = logging.getLogger("layer_sandbox.persistence")


class StateFileError(RuntimeError):
    """The state file or its log exists but cannot be used."""


def _fsync_directory(directory: Path) -> None:
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _replace(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: a temporary file, flushed, renamed over the target."""
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
    _fsync_directory(path.parent)


def _line(record: dict) -> bytes:
    """One log line: the CRC-32 of the JSON, a space, the JSON, a newline."""
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
    return b"%08x %s\n" % (zlib.crc32(text), text)


def _parse(line: bytes) -> dict | None:
    """The record on a whole log line, or None when the line is damaged."""
    checksum, _, text = line.rstrip(b"\n").partition(b" ")
    try:
        if int(checksum, 16) != zlib.crc32(text) or len(checksum) != 8:
            return None
        record = json.loads(text)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class StateFile:
    """The snapshot and the log of one `--state-file`, and the lock that orders writes to them.

    Lock order, everywhere: a store's lock before this one; nothing waits for a store's lock
    while holding this one.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.log_path = self.path.with_name(self.path.name + ".log")
        self.lock = threading.Lock()
        self.generation = 0
        self.lines = 0  # records in the open log
        self.size = 0  # bytes in the open log
        self._log: int | None = None

    # ------------------------------------------------------------------------------ reading

    def load(self) -> dict[str, dict] | None:
        """Every namespace's export as the last acknowledged write left it, or None when there
        is no state yet."""
        snapshot = self._read_snapshot()
        records, log_generation = self._read_log()
        generation = snapshot["generation"] if snapshot else 0
        if log_generation is not None and log_generation > generation:
            raise StateFileError(
                f"state file {self.path}: its log {self.log_path.name} is of generation {log_generation} but the "
                f"snapshot is of generation {generation}: the snapshot was replaced or removed; restore it, or "
                f"move both files away to start afresh")
        if log_generation is not None and log_generation < generation:
            records = []  # left by a crash between a checkpoint's two steps; the snapshot has them
        self.generation = generation
        if snapshot is None:  # and no log either: a log always follows its snapshot (checked above)
            return None
        namespaces = dict(snapshot["namespaces"])
        _replay(records, namespaces, dict(snapshot["drawn"]), self.log_path)
        return namespaces

    def _read_snapshot(self) -> dict | None:
        if not self.path.exists():
            return None
        try:
            document = json.loads(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            raise StateFileError(f"state file {self.path} is not readable JSON ({exc}); "
                                 "move it away or point --state-file elsewhere") from None
        if isinstance(document, dict) and (document.get("format") == EXPORT_FORMAT or (
                isinstance(document.get("data"), dict) and document["data"].get("format") == EXPORT_FORMAT)):
            raise StateFileError(f"state file {self.path} is an export of one namespace (GET /__sandbox/state), "
                                 "not a state file: start from it with --load-state, and point --state-file "
                                 "at a new path")
        if (not isinstance(document, dict) or document.get("format") != FORMAT
                or not isinstance(document.get("namespaces"), dict)):
            raise StateFileError(f"state file {self.path} is not a layer-sandbox state file (format {FORMAT})")
        generation, drawn = document.setdefault("generation", 0), document.setdefault("drawn", {})
        if (isinstance(generation, bool) or not isinstance(generation, int) or generation < 0
                or not isinstance(drawn, dict)
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in drawn.values())):
            raise StateFileError(f"state file {self.path}: its generation or drawn counts are damaged")
        return document

    def _read_log(self) -> tuple[list[dict], int | None]:
        """The log's records and generation; (empty, None) without a log."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return [], None
        except OSError as exc:
            raise StateFileError(f"state file log {self.log_path} cannot be read ({exc})") from None
        lines = data.split(b"\n")
        torn_tail = lines.pop()  # b"" when the log ends with a newline, as every whole line does
        parsed = [_parse(line) for line in lines]
        header = parsed[0] if parsed else None
        if header is None or header.get("format") != LOG_FORMAT or not isinstance(header.get("generation"), int):
            if not lines:  # killed while the header itself was being written: nothing was logged
                return [], None
            raise StateFileError(f"state file log {self.log_path} does not start with a layer-sandbox log "
                                 f"header ({LOG_FORMAT}); move it away or restore it")
        records = parsed[1:]
        if records and records[-1] is None:
            torn_tail, records = lines[-1], records[:-1]  # a whole but damaged last line: torn too
        for number, record in enumerate(records, start=2):
            if record is None:
                raise StateFileError(
                    f"state file log {self.log_path}: line {number} of {len(lines)} is damaged (its checksum "
                    "or JSON is wrong) and later lines depend on it; move the log away to start from the "
                    "snapshot alone, or restore it")
        if torn_tail:
            log.warning("state file log %s ends in a torn line (%d bytes): a write that was never "
                        "acknowledged; it is dropped", self.log_path, len(torn_tail))
        return records, header["generation"]

    # ------------------------------------------------------------------------------ writing

    def append(self, record: dict) -> None:
        """Log one record; it has reached the operating system when this returns. A write that
        fails (a full disk) is cut back off the log, so that no half line is left for the next
        record to be appended to, and raised."""
        line = _line(record)
        with self.lock:
            if self._log is None:
                raise StateFileError("the state file log is not open: the last snapshot could not be written; "
                                     "POST /__sandbox/save to try again")
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(self._log, view):]
            except OSError:
                try:
                    os.ftruncate(self._log, self.size)
                except OSError:
                    self.close()  # a log that may end in half a line takes nothing more
                raise
            self.lines += 1
            self.size += len(line)

    @property
    def compaction_due(self) -> bool:
        return self.lines >= COMPACT_AFTER or self.size >= COMPACT_AFTER_BYTES

    def checkpoint(self, namespaces: dict[str, dict], drawn: dict[str, int]) -> int:
        """Write the next generation's snapshot, then its empty log; the snapshot's size.

        The caller holds every store's lock, so that no write falls between the two. Until both
        are written the log is closed: a write meanwhile, or after a failure here, fails loudly
        instead of going to a log that a restart would ignore as older than the snapshot."""
        with self.lock:
            self.close()
            generation = self.generation + 1
            data = json.dumps({"format": FORMAT, "generation": generation, "drawn": drawn,
                               "namespaces": namespaces}, separators=(",", ":")).encode()
            _replace(self.path, data)
            self.generation = generation  # the snapshot on disk is of this generation now
            header = _line({"format": LOG_FORMAT, "generation": generation})
            _replace(self.log_path, header)
            self._log = os.open(self.log_path, os.O_WRONLY | os.O_APPEND)
            self.lines, self.size = 0, len(header)
            return len(data)

    def close(self) -> None:
        if self._log is not None:
            os.close(self._log)
            self._log = None


def write_record(namespace: str, business, drawn: int, *, credit=None, invoices=(), customer=None) -> dict:
    """The log record of a write, in one line: the credit as it now is (its tags name the tag
    dimensions and definitions a write may have made) with the invoices whose balance it moved,
    or the customer as it now is; and how many ids the store has drawn."""
    if customer is not None:
        return {"op": "customer", "namespace": namespace, "business": business.id, "customer": customer.export(),
                "drawn": drawn}
    return {"op": "credit", "namespace": namespace, "business": business.id, "credit": credit.to_api(),
            "invoices": [invoice.export() for invoice in invoices], "drawn": drawn}


def _put(items: list[dict], item: dict) -> None:
    """Replace the record of the same id in an export's list, or append it."""
    for position, existing in enumerate(items):
        if existing["id"] == item["id"]:
            items[position] = item
            return
    items.append(item)


def namespace_record(namespace: str, export: dict, drawn: int) -> dict:
    """The log record of a namespace made on first use: its whole seeded state, so that a restart
    with other flags (seed, scenario, clock) brings back the same namespace."""
    return {"op": "namespace", "namespace": namespace, "state": export, "drawn": drawn}


def _credit_tags(credit: dict) -> list[dict]:
    """A credit's tags in the order a write makes their dimensions and definitions (the store
    tags the line items, in order, before the credit), so that the replayed business lists them
    in the order the live one did and a restart after SIGKILL exports the same bytes."""
    return [tag for line in credit.get("line_items") or [] for tag in line.get("transaction_tags") or []] + list(
        credit.get("transaction_tags") or [])


def _replay(records: list[dict], namespaces: dict[str, dict], drawn: dict[str, int], where: Path) -> None:
    """Apply the log's records to the snapshot's exports, in order (an export is then checked
    whole when it is imported)."""
    positions: dict[tuple[str, str], dict[str, int]] = {}  # (namespace, business) -> credit id -> index
    defined: dict[tuple[str, str], set] = {}  # (namespace, business) -> its (key, value) tag definitions
    last_drawn: dict[str, int] = {}
    try:
        for record in records:
            name = record["namespace"]
            if record["op"] == "namespace":
                namespaces[name], drawn[name] = record["state"], record["drawn"]
                positions = {key: value for key, value in positions.items() if key[0] != name}
                defined = {key: value for key, value in defined.items() if key[0] != name}
                last_drawn.pop(name, None)
                continue
            if name not in namespaces:
                raise KeyError(f"namespace {name!r} is in neither the snapshot nor a creation record")
            business = next(b for b in namespaces[name]["businesses"] if b["id"] == record["business"])
            last_drawn[name] = record["drawn"]
            if record["op"] == "customer":
                _put(business["customers"], record["customer"])
                continue
            for invoice in record.get("invoices") or ():
                _put(business["invoices"], invoice)
            credits = business["customer_credits"]
            index = positions.get((name, business["id"]))
            if index is None:
                index = positions[(name, business["id"])] = {c["id"]: n for n, c in enumerate(credits)}
            credit = record["credit"]
            if credit["id"] in index:
                credits[index[credit["id"]]] = credit
            else:
                index[credit["id"]] = len(credits)
                credits.append(credit)
            # A tag dimension or definition a write made is first named by the credit it tags.
            known = defined.get((name, business["id"]))
            if known is None:
                known = defined[(name, business["id"])] = {(d["key"], d["value"]) for d in business["tag_definitions"]}
            for tag in _credit_tags(credit):
                business["tag_dimensions"].setdefault(tag["key"], tag["dimension_id"])
                if (tag["key"], tag["value"]) not in known:
                    known.add((tag["key"], tag["value"]))
                    business["tag_definitions"].append({"key": tag["key"], "value": tag["value"],
                                                        "id": tag["definition_id"]})
        for name, count in last_drawn.items():
            document = namespaces[name]
            version, internal, gauss = document["id_generator"]
            ids = IdSource(0)
            ids.set_state((version, tuple(internal), gauss))
            ids.skip(count - drawn.get(name, 0))
            version, internal, gauss = ids.state()
            document["id_generator"] = [version, list(internal), gauss]
    except (KeyError, TypeError, ValueError, StopIteration, AttributeError) as exc:
        raise StateFileError(f"state file log {where}: a record does not fit the snapshot "
                             f"({type(exc).__name__}: {exc}); move the log away or restore it") from None
