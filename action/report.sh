#!/usr/bin/env bash
# The layer-sandbox report action (report/action.yml): the requests in the sandbox's journal that
# broke Layer's contract, as annotations, a job summary and a failing step when asked
# (INPUT_FAIL_ON_VIOLATIONS=true). INPUT_URL, else LAYER_SANDBOX_URL, names the sandbox. The work
# is report.py's (the standard library only: any runner's python3 runs it).
set -euo pipefail
exec python3 "$(dirname "${BASH_SOURCE[0]}")/report.py" "${INPUT_URL:-${LAYER_SANDBOX_URL:-}}"
