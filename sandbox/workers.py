"""`--workers N`: N serving processes on one listening socket, all on the shared Redis store.

The parent does everything once (checks Redis, seeds the default namespace, compiles the
contract's validators, binds the socket and announces it), then forks the workers, which inherit
all of it (copy on write, after `gc.freeze()`). Each worker runs its own uvicorn server on the
inherited socket, and the kernel hands each new connection to whichever worker accepts first, so
an idle worker takes the next client while a busy one finishes. Not uvicorn's own `workers=`,
which starts fresh interpreters that import and seed everything again; not SO_REUSEPORT, which
spreads connections by hash, busy or not.

The parent only supervises: SIGTERM or SIGINT is passed to every worker, which finishes its
requests in flight (`--shutdown-grace`); a worker still there after the grace and five seconds
more is killed. A worker that dies on its own is replaced.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

log = logging.getLogger("layer_sandbox")

POLL_SECONDS = 0.1
# A worker that dies within this long of its start is not restarted at once (a crash loop).
RESPAWN_PAUSE_SECONDS = 1.0


def serve(run_worker: Callable[[], None], count: int, grace: float, ready: Callable[[], None] = lambda: None) -> int:
    """Fork `count` workers running `run_worker` and supervise them until asked to stop; the exit
    status (0 after a requested stop). `ready` runs once the parent's signal handlers are in place,
    before the first fork (the start-up announcement)."""
    children: dict[int, float] = {}
    stop_requested: list[float] = []

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            for number in (signal.SIGTERM, signal.SIGINT):
                signal.signal(number, signal.SIG_DFL)
            status = 0
            try:
                run_worker()
            except BaseException:  # noqa: BLE001 - reported, and the worker exits non-zero
                log.exception("worker %d failed", os.getpid())
                status = 1
            finally:
                logging.shutdown()
                os._exit(status)
        children[pid] = time.monotonic()

    def stop(*_) -> None:
        if not stop_requested:
            stop_requested.append(time.monotonic())
            for pid in list(children):
                _signal(pid, signal.SIGTERM)

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop)
    ready()
    for _ in range(count):
        spawn()
    log.info("%d workers serving (pids %s)", count, " ".join(str(pid) for pid in children))
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if stop_requested and time.monotonic() - stop_requested[0] > grace + 5:
                for straggler in list(children):
                    log.warning("worker %d did not stop within the grace; killing it", straggler)
                    _signal(straggler, signal.SIGKILL)
            time.sleep(POLL_SECONDS)
            continue
        started = children.pop(pid, None)
        if started is None or stop_requested:
            continue
        log.warning("worker %d exited (status %d); starting another", pid, os.waitstatus_to_exitcode(status))
        if time.monotonic() - started < RESPAWN_PAUSE_SECONDS:
            time.sleep(RESPAWN_PAUSE_SECONDS)
        spawn()
    return 0


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass
