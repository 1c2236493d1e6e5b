"""The layer-sandbox report action's work (run by report.sh with the runner's python3; standard
library only): read the sandbox's journal, and show every request that broke Layer's contract as
an error annotation, a table in the job summary and a line of the log; exit 1 when
INPUT_FAIL_ON_VIOLATIONS is true and there was one.

A request "broke the contract" when the journal's `contract=violation` filter keeps it: its
request (a 400's body, a 401's missing token) or response failed validation against openapi.yaml,
or it went to a route the contract does not have (a typo in a path, say). Requests of every
namespace count, except those of INPUT_IGNORE_NAMESPACES (where tests send bad requests on
purpose). The log and the summary may be public: each problem is cut short, and no body is shown.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

ANNOTATIONS = 10  # GitHub shows at most ten error annotations per step; the log and summary hold all
PROBLEM_CHARS = 300


def escape(text: str) -> str:
    """A workflow command's message: `%`, CR and LF escaped as the runner reads them."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def journal(url: str, admin_token: str, **query: str) -> list[dict]:
    address = f"{url.rstrip('/')}/__sandbox/requests?{urllib.parse.urlencode(query)}"
    headers = {"Accept": "application/json"}
    if admin_token:
        headers["Authorization"] = f"Bearer {admin_token}"
    with urllib.request.urlopen(urllib.request.Request(address, headers=headers), timeout=60) as answer:
        return json.load(answer)["data"]


def what_broke(entry: dict) -> str:
    if entry.get("operation_id") is None:
        return "not a route of the contract"
    side = "request" if entry.get("request_validation") == "fail" else "response"
    problem = " ".join((entry.get("error") or "failed validation").split())
    return f"{side}: {problem[:PROBLEM_CHARS]}" + ("…" if len(problem) > PROBLEM_CHARS else "")


def summary_table(broken: list[dict]) -> str:
    lines = ["| Method | Path | Status | Namespace | What broke |", "|---|---|---|---|---|"]
    for entry in broken:
        cells = [entry["method"], f"`{entry['path']}`", str(entry["status"]), entry["namespace"], what_broke(entry)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n\n"


def main(url: str) -> int:
    fail_on = os.environ.get("INPUT_FAIL_ON_VIOLATIONS", "false").strip().lower() == "true"
    admin_token = os.environ.get("INPUT_ADMIN_TOKEN", "")
    ignored = set(os.environ.get("INPUT_IGNORE_NAMESPACES", "").split())
    if not url:
        print("::error title=layer-sandbox report::No sandbox URL: give `url`, or start the sandbox "
              "with the layer-sandbox action first (it exports LAYER_SANDBOX_URL)")
        return 1
    try:
        seen = journal(url, admin_token, namespace="*")
        broken = [e for e in journal(url, admin_token, namespace="*", contract="violation")
                  if e["namespace"] not in ignored]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        level = "error" if fail_on else "warning"
        print(f"::{level} title=layer-sandbox report::{escape(f'Could not read the journal at {url}: {exc}')}")
        return 1 if fail_on else 0

    verdict = f"layer-sandbox: {len(seen)} requests in the journal, {len(broken)} broke Layer's contract" + (
        f" (not counting the namespaces {', '.join(sorted(ignored))})" if ignored else "")
    print(verdict)
    # Entries are numbered from 1: a first one past 1 means older ones left (or were cleared).
    left = seen[0]["id"] - 1 if seen else 0
    if left:
        print(f"::warning title=layer-sandbox report::{left} earlier requests are no longer in the journal "
              "(its journal-size, or a clear): whether they broke the contract is not known")
    for position, entry in enumerate(broken):
        line = f"{entry['method']} {entry['path']} -> {entry['status']} [{entry['namespace']}]: {what_broke(entry)}"
        print(f"::error title=Layer contract::{escape(line)}" if position < ANNOTATIONS else escape(line))

    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as out:
            out.write(f"### layer-sandbox\n\n{verdict}\n\n" + (summary_table(broken) if broken else ""))
    return 1 if fail_on and broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
