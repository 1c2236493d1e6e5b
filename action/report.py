"""The layer-sandbox report action's work (run by report.sh with the runner's python3; standard
library only): read the sandbox's journal, and show every request that broke Layer's contract as
an error annotation, a table in the job summary and a line of the log; exit 1 when
INPUT_FAIL_ON_VIOLATIONS is true and there was one.

A request "broke the contract" when the journal's `contract=violation` filter keeps it: its
request or response failed validation against openapi.yaml, or it went to a route the contract
does not have (a typo in a path, say). Requests of every namespace count.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

ANNOTATIONS = 10  # GitHub shows at most ten error annotations per step; the log and summary hold all


def escape(text: str) -> str:
    """A workflow command's message: `%`, CR and LF escaped as the runner reads them."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def journal(url: str, admin_token: str, **query: str) -> list[dict]:
    address = f"{url.rstrip('/')}/__sandbox/requests?" + "&".join(f"{k}={v}" for k, v in query.items())
    headers = {"Accept": "application/json"}
    if admin_token:
        headers["Authorization"] = f"Bearer {admin_token}"
    with urllib.request.urlopen(urllib.request.Request(address, headers=headers), timeout=30) as answer:
        return json.load(answer)["data"]


def what_broke(entry: dict) -> str:
    if entry.get("operation_id") is None:
        return "not a route of the contract"
    side = "request" if entry.get("request_validation") == "fail" else "response"
    return f"{side}: {entry.get('error') or 'failed validation'}"


def main(url: str) -> int:
    fail_on = os.environ.get("INPUT_FAIL_ON_VIOLATIONS", "false").strip().lower() == "true"
    if not url:
        print("::error title=layer-sandbox report::No sandbox URL: give `url`, or start the sandbox "
              "with the layer-sandbox action first (it exports LAYER_SANDBOX_URL)")
        return 1
    try:
        broken = journal(url, os.environ.get("INPUT_ADMIN_TOKEN", ""), namespace="*", contract="violation")
        seen = journal(url, os.environ.get("INPUT_ADMIN_TOKEN", ""), namespace="*")
    except (urllib.error.URLError, OSError, ValueError, KeyError) as exc:
        level = "error" if fail_on else "warning"
        print(f"::{level} title=layer-sandbox report::Could not read the journal at {url}: {escape(str(exc))}")
        return 1 if fail_on else 0

    verdict = (f"layer-sandbox: {len(seen)} requests in the journal, {len(broken)} broke Layer's contract"
               + (" (older requests may have left the journal: --journal-size)" if len(seen) >= 1000 else ""))
    print(verdict)
    for position, entry in enumerate(broken):
        line = (f"{entry['method']} {entry['path']} -> {entry['status']} "
                f"[{entry['namespace']}]: {what_broke(entry)}")
        if position < ANNOTATIONS:
            print(f"::error title=Layer contract::{escape(line)}")
        else:
            print(line)

    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as out:
            out.write(f"### layer-sandbox\n\n{verdict}\n\n")
            if broken:
                out.write("| Method | Path | Status | Namespace | What broke |\n|---|---|---|---|---|\n")
                for entry in broken:
                    cells = [entry["method"], f"`{entry['path']}`", str(entry["status"]), entry["namespace"],
                             what_broke(entry)]
                    out.write("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |\n")
                out.write("\n")
    return 1 if fail_on and broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
