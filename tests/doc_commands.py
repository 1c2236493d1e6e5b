"""Runs the shell commands of the README and docs/ as printed, and checks what each one says it does.

A block fenced ```sh is run, command by command, in one bash session (so variables carry from one
command to the next, and from one block to the next), in order, against a fresh sandbox started
as the README starts it: `layer-sandbox` on its embedded default (127.0.0.1:8088, seed 1). The
session runs with `set -u`, so a variable the reader was never shown is an error. Each command
says what it should do in a trailing comment the reader sees too:

    curl -s "$S/health"                     # → 200
    layer-sandbox check-spec missing.md     # → exit 2
    layer-sandbox --clock frozen            # → starts

`→ NNN` is the HTTP status of the command's last `curl` (curl runs as printed; the session's
`curl` function only adds `-D` to keep the response head), `→ exit N` the command's exit status,
`→ starts` a server that must start and stop cleanly (it runs on its own). A `curl` without one
is an error; other commands must exit 0. Blocks fenced ```console are not run, and each must say
why in an HTML comment right above it (`<!-- not run: needs a Docker engine -->`).

The session and the sandbox live in a network namespace of their own (`unshare -rn`, loopback
only), so that port 8088 is theirs even while a developer's own sandbox or another test holds it.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXPECT = re.compile(r"\s#\s*→\s*(exit \d+|starts|\d{3})\b")
MARK = "__LAYER_SANDBOX_DOC_COMMAND_DONE__"
# Brings the loopback interface of a new network namespace up (it starts down), then becomes the
# given program: the same as `ip link set lo up`, without needing iproute2.
LOOPBACK_UP = (
    "import fcntl, os, socket, struct, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "fcntl.ioctl(s, 0x8914, struct.pack('16sH14s', b'lo', 0x1 | 0x8 | 0x40, bytes(14)))\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


@dataclass
class Command:
    text: str
    line: int  # where it starts in its file
    expect: str | None  # "200", "exit 1", "starts" or None

    def __str__(self) -> str:
        return f"line {self.line}: {self.text}"


@dataclass
class Block:
    fence: str
    line: int
    text: str
    note: str | None  # the HTML comment right above it


def blocks(markdown: str) -> list[Block]:
    found = []
    for match in re.finditer(r"(?:<!--(.*?)-->\s*\n)?^```(\w*)[^\n]*\n(.*?)^```\s*$", markdown, re.M | re.S):
        found.append(Block(match.group(2), markdown[:match.start(2)].count("\n") + 1, match.group(3),
                           match.group(1).strip() if match.group(1) else None))
    return found


def _unterminated(lines: list[str]) -> bool:
    """Whether a shell would read on: inside a quote, or after a trailing backslash."""
    text = "\n".join(lines)
    quote, escaped, in_comment, previous = None, False, False, "\n"
    for char in text:
        if in_comment:
            in_comment = char != "\n"
        elif escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote is None and char == "#" and previous.isspace():
            in_comment = True
        elif quote is None and char in "'\"":
            quote = char
        elif char == quote:
            quote = None
        previous = char
    return quote is not None or (not in_comment and text.rstrip().endswith("\\"))


def commands(block: Block) -> list[Command]:
    """The block's commands: a line, with the lines a backslash or an open quote joins to it."""
    found, pending, start = [], [], 0
    for number, line in enumerate(block.text.splitlines(), start=block.line + 1):
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            start = number
        pending.append(line)
        if not _unterminated(pending):
            text = "\n".join(pending)
            expect = EXPECT.search(pending[-1])
            found.append(Command(text, start, expect.group(1) if expect else None))
            pending = []
    if pending:
        raise AssertionError(f"line {start}: a command that never ends: {pending[0]}")
    return found


class Shell:
    """One bash session, fed one command at a time; each answer is its output, exit status and
    the HTTP status of its last curl."""

    def __init__(self, cwd: Path, env: dict, isolated: bool) -> None:
        self.head = cwd / ".curl-head"
        prefix = ["unshare", "-rn", sys.executable, "-c", LOOPBACK_UP] if isolated else []
        # A session of its own: closing it stops everything it started (the sandbox included).
        self.process = subprocess.Popen(prefix + ["bash", "--norc", "--noprofile"], cwd=cwd, env=env,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self._buffer = b""
        self.run(f"set -u -o pipefail; curl() {{ rm -f {self.head}; command curl -D {self.head} \"$@\"; }}")

    def run(self, text: str, timeout: float = 60.0) -> tuple[int, str, int | None]:
        self.process.stdin.write(
            f"{text}\n__s=$?; printf '\\n{MARK} %s %s\\n' \"$__s\" "
            f"\"$(grep -a -o '^HTTP/[0-9.]* [0-9]*' {self.head} 2>/dev/null | tail -n1 | cut -d' ' -f2)\"; "
            f"rm -f {self.head}\n".encode())
        self.process.stdin.flush()
        deadline = time.monotonic() + timeout
        while MARK.encode() not in self._buffer:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(0.0, remaining))
            if not ready:
                raise AssertionError(f"no answer within {timeout} s to: {text}\n{self._buffer.decode(errors='replace')}")
            chunk = os.read(self.process.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"the shell ended during: {text}\n{self._buffer.decode(errors='replace')}")
            self._buffer += chunk
        output, _, rest = self._buffer.partition(MARK.encode())
        line, _, self._buffer = rest.partition(b"\n")
        status, _, http = line.decode().strip().partition(" ")
        return int(status), output.decode(errors="replace").rstrip("\n"), int(http) if http else None

    def close(self) -> None:
        """Ends the session and whatever it started (SIGTERM, then SIGKILL)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=15)
                time.sleep(0.2)  # the group's other members get their signal too; let them go
            except subprocess.TimeoutExpired:
                continue
        self.process.stdin.close()
        self.process.stdout.close()


def can_isolate() -> bool:
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "-rn", sys.executable, "-c", LOOPBACK_UP, "true"],
                          capture_output=True, timeout=30).returncode == 0


@contextmanager
def port_8088():
    """Held by a test that uses the machine's own port 8088, so that two never do at once."""
    with open(Path(os.environ.get("TMPDIR", "/tmp")) / "layer-sandbox-port-8088.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def workdir(tmp: Path) -> Path:
    """A scratch directory that looks like the repository root (files the docs name are there;
    files the commands write land here)."""
    for entry in ("tests", "fixtures", "docs", "openapi.yaml", "README.md", "bench"):
        (tmp / entry).symlink_to(ROOT / entry)
    return tmp


def start_and_stop(text: str, cwd: Path, env: dict, isolated: bool, timeout: float = 120.0) -> str:
    """Runs a command that starts a server: it must say where it listens, and exit 0 on SIGTERM."""
    prefix = ["unshare", "-rn", sys.executable, "-c", LOOPBACK_UP] if isolated else []
    # The shell ignores the SIGTERM sent to the whole group at the end; the server, which handles
    # it, stops, and the shell answers with the server's exit status.
    process = subprocess.Popen(prefix + ["bash", "--norc", "--noprofile", "-c", f"set -u; trap '' TERM; {text}"], cwd=cwd,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while b"listening on http://" not in output:
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(process.stdout.fileno(), 65536) if ready else b""
            if not chunk:
                raise AssertionError(f"{text!r} did not start:\n{output.decode(errors='replace')}")
            output += chunk
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            rest, _ = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            rest, _ = process.communicate()
    output += rest
    assert process.returncode == 0, f"{text!r} exited {process.returncode} on SIGTERM:\n{output.decode(errors='replace')}"
    return output.decode(errors="replace")
