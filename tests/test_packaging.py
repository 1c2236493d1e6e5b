"""The wheel carries the contract and the fixtures; the Dockerfile is right by construction."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from support import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    [built] = out.glob("layer_sandbox-*.whl")
    with zipfile.ZipFile(built) as archive:
        yield archive


def test_wheel_carries_openapi_yaml_fixtures_and_the_dashboard(wheel):
    names = set(wheel.namelist())
    assert "layer_sandbox/openapi.yaml" in names
    assert {"layer_sandbox/stores/protocol.py", "layer_sandbox/stores/memory.py",
            "layer_sandbox/stores/redis_store.py"} <= names  # a subpackage, listed
    for asset in (ROOT / "sandbox" / "dashboard").iterdir():  # the dashboard's page, script and style
        assert wheel.read(f"layer_sandbox/dashboard/{asset.name}") == asset.read_bytes(), asset.name
    assert wheel.read("layer_sandbox/openapi.yaml") == (ROOT / "openapi.yaml").read_bytes()
    for fixture in (ROOT / "fixtures").rglob("*.yaml"):
        assert f"layer_sandbox/fixtures/{fixture.relative_to(ROOT / 'fixtures')}" in names, fixture.name
    entry_points = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "layer-sandbox = layer_sandbox.cli:main" in entry_points
    assert "layer_sandbox = layer_sandbox.pytest_plugin" in entry_points


def test_the_wheel_installs_one_import_package_named_ours_alone(wheel):
    """`sandbox` is a name consumers use for their own code; the wheel holds `layer_sandbox` only."""
    top_level = {name.split("/")[0] for name in wheel.namelist() if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"layer_sandbox"}


DOCKERFILE = (ROOT / "Dockerfile").read_text()


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_pinned_slim_non_root_and_healthchecked():
    base = re.search(r"^FROM (\S+)", DOCKERFILE, re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    assert re.search(r"^USER (?!root|0\b)\S+", DOCKERFILE, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*__sandbox/health", DOCKERFILE, re.M)
    assert re.search(r"^EXPOSE 8088", DOCKERFILE, re.M)
    assert 'ENTRYPOINT ["layer-sandbox"]' in DOCKERFILE
    assert "LAYER_SANDBOX_HOST=0.0.0.0" in DOCKERFILE and "LAYER_SANDBOX_PORT=8088" in DOCKERFILE


def test_readme_and_ci_run_the_same_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    commands = re.findall(r"^(python3 -m venv .*)$", readme, re.M)
    assert len(commands) >= 2, "the README opens with the two commands"
    start, test = commands[0], commands[1]
    assert "layer-sandbox" in start and "pytest" in test
    assert test in ci
    # Under `set -e`, a failed venv or install (before the last `&&`) would not stop .ci/run, and
    # the lowest-versions run after it could pass alone.
    assert f"{test} || exit 1" in ci
