"""The README and docs/ run as printed: every shell command, in order, against a fresh sandbox,
answering what its comment says (see tests/doc_commands.py for how). A block with
`<!-- file: NAME -->` right above it (a test file, a YAML file the page tells the reader to save)
is written to NAME, as printed, where it stands among the commands."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

import doc_commands
from doc_commands import ROOT, Shell, blocks, commands, start_and_stop
from support import copy_of_repository, report

PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
README = ROOT / "README.md"


def _saved_as(block) -> str | None:
    """The name `<!-- file: NAME -->` gives the block below it, or None."""
    match = re.fullmatch(r"file: (\S+)", block.note or "")
    return match.group(1) if match else None


def _runnable(page: Path) -> list:
    found = [block for block in blocks(page.read_text()) if block.fence == "sh" or _saved_as(block)]
    if page == README:  # the README's first block: the set-up command, below
        found.remove(next(block for block in found if block.fence == "sh"))
    return found


def _env() -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("page", [p for p in PAGES if _runnable(p)], ids=lambda p: p.name)
def test_every_shell_command_runs_as_printed_and_answers_as_documented(page, tmp_path):
    isolated = doc_commands.can_isolate()
    cwd = doc_commands.workdir(tmp_path)
    env = _env()
    held = None if isolated else doc_commands.port_8088()
    if held:
        held.__enter__()
    shell = Shell(cwd, env, isolated)
    ran = 0
    try:
        status, output, _ = shell.run("layer-sandbox > sandbox.log 2>&1 & for _ in $(seq 600); do "
                                      "command curl -sf http://127.0.0.1:8088/__sandbox/health > /dev/null && break; "
                                      "sleep 0.05; done; command curl -sf http://127.0.0.1:8088/__sandbox/health")
        assert status == 0, f"the sandbox did not start: {output}\n{(cwd / 'sandbox.log').read_text()}"
        for block in _runnable(page):
            name = _saved_as(block)
            if name:
                assert Path(name).name == name and not name.startswith("."), f"{page.name} line {block.line}: {name}"
                (cwd / name).write_text(block.text)
                continue
            for command in commands(block):
                where = f"{page.name} {command}"
                if command.expect == "starts":
                    start_and_stop(command.text, cwd, env, isolated)
                    ran += 1
                    continue
                assert command.expect or "curl" not in command.text, f"{where}: say what it answers (# → NNN)"
                status, output, http = shell.run(command.text)
                ran += 1
                if command.expect is None:
                    assert status == 0, f"{where}\nexited {status}:\n{output}"
                elif command.expect.startswith("exit "):
                    assert status == int(command.expect.split()[1]), f"{where}\nexited {status}:\n{output}"
                else:
                    assert status == 0 and http == int(command.expect), (
                        f"{where}\nanswered {http} (curl exited {status}), not {command.expect}:\n{output[-3000:]}")
    finally:
        shell.close()
        if held:
            held.__exit__(None, None, None)
    report(f"docs: {page.name}: {ran} commands ran as printed" + ("" if isolated else " (on this machine's port 8088)"))


def test_the_readme_start_command_runs_as_printed(tmp_path):
    """In a copy of the repository, as a newcomer runs it: a venv, an install, a sandbox on 8088."""
    [start] = commands(blocks(README.read_text())[0])
    assert start.expect == "starts" and "pip install ." in start.text
    copy = copy_of_repository(tmp_path / "checkout")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(Path(sys.prefix))))
    with doc_commands.port_8088():  # the command names no port: it must have 8088, as a newcomer's would
        output = start_and_stop(start.text, copy, env, isolated=False, timeout=600)
    assert "listening on http://127.0.0.1:8088" in output and "cd613e30-d8f1-4adf-91b7-584a2265b1f5" in output


def test_the_readme_test_command_is_what_ci_runs():
    second = blocks(README.read_text())[1]
    assert second.fence == "console" and "pytest" in second.text
    assert second.text.strip() in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_that_are_not_run_say_why(page):
    for block in blocks(page.read_text()):
        assert block.fence not in ("bash", "shell", "shell-session", ""), (
            f"{page.name} line {block.line}: fence shell commands as sh (run by the tests) or console (not run, "
            "with a reason); other blocks by their language")
        if block.fence == "console":
            assert block.note and block.note.startswith("not run:"), (
                f"{page.name} line {block.line}: a console block needs <!-- not run: why --> right above it")


def test_no_page_points_outside_the_repository():
    for page in PAGES:
        text = page.read_text()
        assert "/".join(("..", "shared")) not in text, page.name  # the research folder beside a checkout
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if not re.match(r"https?://", target):
                assert (page.parent / target).resolve().exists(), f"{page.name} links to {target}, which is missing"


def test_the_contract_page_lists_every_deviation_of_openapi_yaml():
    import yaml

    deviations = yaml.safe_load((ROOT / "openapi.yaml").read_text())["x-deviations"]
    listed = re.findall(r"^\| (D\d+) \| (.+) \|$", (ROOT / "docs" / "contract.md").read_text(), re.M)
    assert listed == [(d["id"], d["title"]) for d in deviations]
    assert f"its {len(deviations)} deviations" in README.read_text()
