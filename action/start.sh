#!/usr/bin/env bash
# The layer-sandbox GitHub Action (action.yml): install the sandbox on the runner, start it in the
# background, wait until /__sandbox/health answers, and export LAYER_SANDBOX_URL for later steps.
#
# Inputs come as INPUT_* variables (action.yml maps them), and the runner's own: GITHUB_ACTION_PATH
# (this repository at the action's ref), GITHUB_ENV, GITHUB_OUTPUT, RUNNER_TEMP. The tests run this
# script with the same variables against a real sandbox.
set -euo pipefail

port="${INPUT_PORT:-8088}"
seed="${INPUT_SEED:-1}"
scenario="${INPUT_SCENARIO:-default}"
journal_size="${INPUT_JOURNAL_SIZE:-10000}"
version="${INPUT_VERSION:-}"
home="${RUNNER_TEMP:-/tmp}/layer-sandbox"
run="$home/$port"  # this sandbox's log and pid (two can run in one job, on two ports)
url="http://127.0.0.1:${port}"

fail() {
    echo "::error title=layer-sandbox::$1"
    exit 1
}

# Values that reach a path, GITHUB_ENV or pip's arguments are checked first.
[[ "$port" =~ ^[0-9]{1,5}$ ]] || fail "port must be a number, not '${port}'"
[[ "$journal_size" =~ ^[0-9]+$ ]] || fail "journal-size must be a number, not '${journal_size}'"
[[ "$version" != -* ]] || fail "version must be a version, a wheel or a requirement, not '${version}'"

# The repository this action was taken from: github.action_repository when the runner fills it in
# (it does not always, in composite actions), else the path it checked the action out to
# (.../_actions/OWNER/REPO/REF).
repository() {
    if [ -n "${ACTION_REPOSITORY:-}" ]; then
        echo "$ACTION_REPOSITORY"
    elif [[ "${GITHUB_ACTION_PATH:-}" =~ /_actions/([^/]+)/([^/]+)/[^/]+/?$ ]]; then
        echo "${BASH_REMATCH[1]}/${BASH_REMATCH[2]}"
    fi
}

# What to install: the action's own checkout, a release's wheel, or what pip is given.
if [ -z "$version" ]; then
    source="${GITHUB_ACTION_PATH:?the runner sets GITHUB_ACTION_PATH}"
elif [[ "$version" =~ ^v?[0-9]+\.[0-9]+\.[0-9]+([.-]?[a-z0-9]+)*$ ]]; then
    version="${version#v}"
    origin="$(repository)"
    [ -n "$origin" ] || fail "version ${version}: the action's repository is unknown here; give a wheel URL instead"
    source="https://github.com/${origin}/releases/download/v${version}/layer_sandbox-${version}-py3-none-any.whl"
else
    source="$version"
fi

# Another server on the port would answer the health check in this sandbox's place.
if curl -fsS --max-time 2 -o /dev/null "$url/__sandbox/health" 2>/dev/null; then
    fail "port ${port} is taken: something already answers at $url (give the action another port)"
fi

python3 -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || fail "layer-sandbox needs python3 3.11 or newer with venv (actions/setup-python, or the python3-venv package)"

mkdir -p "$run"
echo "::group::Install layer-sandbox from ${source}"
[ -x "$home/venv/bin/python" ] || python3 -m venv "$home/venv"
"$home/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$source" \
    || fail "could not install layer-sandbox from ${source}"
"$home/venv/bin/layer-sandbox" --version
echo "::endgroup::"

args=(--host 127.0.0.1 --port "$port" --seed "$seed" --scenario "$scenario" --journal-size "$journal_size")
if [ -n "${INPUT_TOKEN:-}" ]; then
    read -r -a tokens <<<"$INPUT_TOKEN"
    for token in "${tokens[@]}"; do
        args+=(--token "$token")
    done
fi
if [ -n "${INPUT_STATE_FILE:-}" ]; then
    mkdir -p "$(dirname "$INPUT_STATE_FILE")"
    args+=(--state-file "$INPUT_STATE_FILE")
fi

# In the background, past this step: the runner ends it with the job.
nohup "$home/venv/bin/layer-sandbox" "${args[@]}" >"$run/sandbox.log" 2>&1 &
pid=$!
echo "$pid" >"$run/pid"

for _ in $(seq 1 120); do
    if curl -fsS --max-time 2 -o /dev/null "$url/__sandbox/health" 2>/dev/null; then
        head -n 2 "$run/sandbox.log"
        echo "LAYER_SANDBOX_URL=$url" >>"${GITHUB_ENV:?the runner sets GITHUB_ENV}"
        echo "url=$url" >>"${GITHUB_OUTPUT:?the runner sets GITHUB_OUTPUT}"
        echo "layer-sandbox is ready at $url (its log: $run/sandbox.log)"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        cat "$run/sandbox.log"
        fail "layer-sandbox exited before it served: $(tail -n 1 "$run/sandbox.log")"
    fi
    sleep 0.5
done
cat "$run/sandbox.log"
fail "layer-sandbox did not answer $url/__sandbox/health within 60 s"
