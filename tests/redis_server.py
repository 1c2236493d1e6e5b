"""A real Redis server for the tests: Debian's `redis-server` (installed by .ci/run), started on a
free loopback port in a scratch folder, with the durability the Redis store documents (AOF,
fsync on every write), and stopped at the end. No mock: the tests that use it make claims about
what Redis itself does."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


class RedisUnavailable(RuntimeError):
    pass


class RedisServer:
    def __init__(self, folder: Path, attempts: int = 5, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisUnavailable("no redis-server on PATH: .ci/run installs Debian's redis-server")
        self.folder = folder
        last = ""
        for _ in range(attempts):  # redis-server cannot pick a port itself: one found free may be taken
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            self.process = subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
                 "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--logfile", "redis.log"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.process.poll() is None:
                if self._answers():
                    self.url = f"redis://127.0.0.1:{self.port}/0"
                    return
                time.sleep(0.02)
            self.stop()
            log = folder / "redis.log"
            last = log.read_text()[-2000:] if log.exists() else "(no log)"
        raise RedisUnavailable(f"redis-server did not start: {last}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
