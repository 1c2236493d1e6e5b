"""A Pact V4 file from the tests that use the sandbox (`--layer-sandbox-pact-dir`).

A team that tests its code against the sandbox has, in each test's journal, the exchanges its code
had with "Layer": this module turns them into a consumer pact it can publish to its Pact Broker
without writing one. Each exchange of a passing test that went to a route of the contract becomes
one `Synchronous/HTTP` interaction; its provider states rebuild the test's namespace as it was just
before that exchange (the seed and scenario, the handle's fixtures and clock, the test's earlier
writes), so that `layer-sandbox verify-pact` replays it on a fresh namespace. The sandbox is
deterministic (the same seed, scenario and calls in the same order draw the same ids), so the ids
the test saw come out the same in the replay; what still differs between runs (timestamps of an
unfrozen clock, cursors built from them, who the bearer token names) is matched by type.

Left out, as no contract of Layer's: answers the sandbox was told to force (fault injection), the
token routes (their bodies hold credentials and are never journaled), requests that broke the
contract and the sandbox's own broken answers, and 429/503 refusals (the sandbox's load, not the
request's). An exchange whose bodies the journal no longer holds is left out with a warning, and so
is everything after a write the replay cannot repeat.

Standard library only: the pytest plugin imports this module in a consumer's test process.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs

from .pactfile import segment

SEEDED = "the sandbox is seeded"
BUSINESS_EXISTS = "a business exists"
CLOCK_FROZEN = "the clock is frozen at"
REQUEST_MADE = "a request was made"
RECORD_STATES = (("ledger_accounts", "a ledger account exists"), ("customers", "a customer exists"),
                 ("invoices", "an invoice exists"), ("customer_credits", "a customer credit exists"))

# The journal never holds the Authorization header: the pact sends a token of its own and asks
# only for a bearer token.
BEARER = "Bearer layer-sandbox-token"
BEARER_RULE = {"header": {"Authorization": {"combine": "AND", "matchers": [{"match": "regex", "regex": "^Bearer .+$"}]}}}
TYPE_RULE = {"combine": "AND", "matchers": [{"match": "type"}]}

_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
# What the caller's token decides (whoami): the pact's token is not the test's.
_CALLER_KEYS = {"clientId", "clientName"}
_CURSOR_KEYS = {"cursor", "next_cursor", "prev_cursor"}
_TRANSIENT = {429, 503}  # a rate limit or a full or stopping sandbox: not what the request asked for
_JSON = "application/json"


def interactions_of_test(nodeid: str, entries: list[dict], calls: list[dict], seeded: dict) -> tuple[list[dict], list[str]]:
    """The interactions of one passing test, and warnings for what had to be left out.

    `entries`: its namespace's journal (GET /__sandbox/requests); `calls`: what its handle did to
    the namespace (`SandboxHandle.calls`: `kind` reset, fixtures or clock, `at`, `body`,
    `answer`); `seeded`: the scenario and seed the namespace was made with."""
    events = sorted([(c["at"], 0, c) for c in calls] + [(e["at"], 1, e) for e in entries], key=lambda x: x[:2])
    states = [_seeded(seeded)]
    clock = None
    broken = None  # why the replay could not rebuild the namespace from here on
    interactions, warnings = [], []
    for _, is_entry, event in events:
        if not is_entry:
            kind = event["kind"]
            if kind == "reset":  # a reset keeps the namespace's clock
                states, broken = [_seeded(event["answer"])] + ([clock] if clock else []), None
            elif kind == "clock":
                clock = {"name": CLOCK_FROZEN, "params": {"time": event["body"]["frozen_at"]}}
                states.append(clock)
            elif kind == "fixtures":
                states = _without_empty_business(states, event["answer"]["business_id"])
                states.extend(fixture_states(event["body"], event["answer"]))
            continue
        entry = event
        said = f"{entry['method']} {entry['path']}"
        if _contract_exchange(entry):
            if broken:
                warnings.append(f"{nodeid}: {said} left out of the pact: {broken}")
            elif entry.get("bodies_dropped") or entry.get("bodies_truncated"):
                warnings.append(f"{nodeid}: {said} left out of the pact: the journal no longer holds its whole "
                                "bodies (its body budget)")
            else:
                interactions.append(interaction(f"{nodeid} #{len(interactions) + 1}: {said}", entry, states, nodeid))
        if _changed_state(entry):
            if _request_body_lost(entry):
                broken = broken or f"the body of an earlier {said} was not kept by the journal, so the replay " \
                                   "cannot repeat it"
            else:
                states.append(request_state(entry))
    return interactions, warnings


def _seeded(described: dict) -> dict:
    return {"name": SEEDED, "params": {"scenario": described["scenario"], "seed": described["seed"]}}


def fixture_states(body: dict, answer: dict) -> list[dict]:
    """One state per record of an `add_fixtures` call, in the order the sandbox adds them (and
    draws the ids left out); a business alone when the call named one and no record.

    Every record names its business by id (a position, or none, told as the id the sandbox
    answered): a verifier may otherwise put it in the last business an earlier state named. A new
    business's name, in no API answer, goes only with `a business exists`."""
    business = {"business_id": answer["business_id"]}
    states = [{"name": name, "params": {**record, **business}}
              for kind, name in RECORD_STATES for record in body.get(kind) or []]
    if not states and "business_id" in body:
        params = {"id": answer["business_id"]}
        if body.get("business_name") is not None:
            params["name"] = body["business_name"]
        states.append({"name": BUSINESS_EXISTS, "params": params})
    return states


def _without_empty_business(states: list[dict], business_id: str) -> list[dict]:
    """Records about to name a business the test made empty: they make it themselves, just as
    empty (no id drawn), so its own `a business exists` goes, unless a request since needed it.
    A verifier may make a new business of that state with a chart of accounts, which draws ids
    and holds the accounts the test adds itself."""
    for n in range(len(states) - 1, -1, -1):
        state = states[n]
        if state["name"] == REQUEST_MADE:
            return states
        if state["name"] == BUSINESS_EXISTS and state["params"]["id"] == business_id:
            return states[:n] + states[n + 1:]
    return states


def request_state(entry: dict) -> dict:
    params = {"method": entry["method"], "path": entry["path"]}
    if entry.get("query"):
        params["query"] = entry["query"]
    if entry.get("request_body") is not None:
        params["body"] = entry["request_body"]
    return {"name": REQUEST_MADE, "params": params}


def _contract_exchange(entry: dict) -> bool:
    """An exchange the contract covers, answered by the sandbox's own logic."""
    return (entry.get("operation_id") is not None and not entry.get("bodies_withheld") and not entry.get("forced")
            and entry.get("request_validation") != "fail" and entry.get("response_validation") != "fail"
            and entry.get("status") is not None and entry["status"] not in _TRANSIENT)


def _changed_state(entry: dict) -> bool:
    """A write the handler carried out: a 2xx to another method than GET or HEAD (a forced delay
    or fault, or a forced 2xx without an example, still runs the handler)."""
    return (entry.get("operation_id") is not None and entry["method"] not in ("GET", "HEAD")
            and entry.get("status") is not None and 200 <= entry["status"] < 300
            and not entry.get("bodies_withheld") and entry.get("request_validation") != "fail"
            and _handler_ran(entry.get("forced")))


def _handler_ran(forced: str | None) -> bool:
    if not forced:
        return True
    code = re.search(r"code=(\d+)", forced)
    return "example=" not in forced and (code is None or 200 <= int(code.group(1)) < 300)


def _request_body_lost(entry: dict) -> bool:
    body = entry.get("request_body")
    return bool((entry.get("bodies_dropped") and body is None) or (entry.get("bodies_truncated") and isinstance(body, str)))


def interaction(description: str, entry: dict, states: list[dict], nodeid: str) -> dict:
    request = {"method": entry["method"], "path": entry["path"], "headers": {"Authorization": [BEARER]},
               "matchingRules": BEARER_RULE}
    if entry.get("query"):
        request["query"] = parse_qs(entry["query"], keep_blank_values=True)
    if entry.get("request_body") is not None:
        request["body"], content_type = _body(entry["request_body"])
        request["headers"]["Content-Type"] = [content_type]
    response = {"status": entry["status"]}
    if entry.get("response_body") is not None:
        response["body"], content_type = _body(entry["response_body"])
        response["headers"] = {"Content-Type": [content_type]}
        rules = body_rules(entry["response_body"]) if content_type == _JSON else {}
        if rules:
            response["matchingRules"] = {"body": rules}
    return {"type": "Synchronous/HTTP", "description": description, "pending": False,
            "comments": {"testname": nodeid}, "providerStates": [dict(s) for s in states],
            "request": request, "response": response}


def _body(value) -> tuple[dict, str]:
    """A V4 body: JSON as JSON; text (the journal's reading of anything else) as text, form
    bodies with their own type."""
    if isinstance(value, str):
        form = "=" in value and not any(c in value for c in " \n{[")
        kind = "application/x-www-form-urlencoded" if form else "text/plain"
        return {"content": value, "contentType": kind, "encoded": False}, kind
    return {"content": value, "contentType": _JSON, "encoded": False}, _JSON


def body_rules(body) -> dict:
    """Type matchers (`$.data.id`, `$.data[*].customer.id`) at every string that is an id, a
    timestamp, a cursor or names the caller: what a replay may answer differently. Everything
    else, lists included, stays literal: the replay is deterministic."""
    rules: dict[str, dict] = {}

    def walk(value, path: str, key: str | None) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                if "'" not in name:  # Pact's path syntax has no escape for a quote: such a key stays literal
                    walk(item, path + segment(name), name)
        elif isinstance(value, list):
            for item in value:
                walk(item, path + "[*]", None)
        elif isinstance(value, str) and _varies(key, value):
            rules.setdefault(path, TYPE_RULE)

    walk(body, "$", None)
    return dict(sorted(rules.items()))


def _varies(key: str | None, value: str) -> bool:
    if _UUID.match(value) or _DATETIME.match(value):
        return True
    if key is None or "external_id" in key:  # the caller's own ids come back as sent
        return False
    return (key == "id" or key.endswith(("_id", "_at")) or key in _CURSOR_KEYS or key in _CALLER_KEYS)


# ------------------------------------------------------------------ the file


def pact_path(directory: str | os.PathLike, consumer: str, provider: str) -> Path:
    return Path(directory) / f"{consumer}-{provider}.json"


def remove_stale(path: Path) -> None:
    """Before a run: the file is this run's alone (the xdist controller, or a run without it)."""
    with _locked(path):
        path.unlink(missing_ok=True)


def merge(path: Path, consumer: str, provider: str, interactions: list[dict], version: str) -> int:
    """Add this process's interactions to the file, under an exclusive lock beside it (xdist
    workers end at once), and write it whole by a rename: readers never see half a file. The
    interactions are sorted by description (numbers as numbers), so the file is the same whatever
    order the workers finished in. How many the file holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        held = {}
        try:
            existing = json.loads(path.read_text())
            if existing.get("consumer", {}).get("name") == consumer and existing.get("provider", {}).get("name") == provider:
                held = {i["description"]: i for i in existing.get("interactions", [])}
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            pass  # no file yet, or not one of ours: written anew
        if not interactions and path.exists():
            return len(held)
        held.update((i["description"], i) for i in interactions)
        document = {
            "consumer": {"name": consumer},
            "provider": {"name": provider},
            "interactions": sorted(held.values(), key=lambda i: _natural(i["description"])),
            "metadata": {"pactSpecification": {"version": "4.0"}, "layerSandbox": {"version": version}},
        }
        text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            umask = os.umask(0o22)
            os.umask(umask)
            os.fchmod(handle, 0o666 & ~umask)  # as an open() would make it: mkstemp's is 0600
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return len(held)


def _natural(text: str) -> list:
    """`#2` before `#10`, `[3]` before `[10]`: strings and numbers alternate, so lists compare."""
    return [int(part) if n % 2 else part for n, part in enumerate(re.split(r"(\d+)", text))]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock (Windows): one process writes at a time anyway
        yield
        return
    with open(path.parent / f".{path.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
