"""The sandbox's live state: isolated namespaces, each with its store, clock, scenario and rules.

A namespace is chosen per request by the `X-Sandbox-Namespace` header (`default` without it) and
created, seeded from the start-up scenario, on first use. Reset, scenario loads, state imports,
rules and the clock act on one namespace and never touch another, so parallel CI jobs can share
one sandbox.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import fixtures, persistence
from .clock import Clock, ClockError
from .config import Config
from .rules import RuleBook
from .seed import Scenario, ScenarioError, Templates, scenario_names
from .snapshot import StateError, export_store, import_store
from .naming import (  # noqa: F401 -- re-exported: the namespace vocabulary lives in .naming
    DEFAULT_NAMESPACE,
    NAMESPACE_HEADER,
    DefaultNamespace,
    NamespaceError,
    NamespaceLimit,
    check_namespace_name,
)
from .store import Store
from .timestamps import format_timestamp

log = logging.getLogger("layer_sandbox")

# The namespaces one API request has resolved (name -> namespace), set by the pipeline for the
# request's span: a store that reads its namespaces from elsewhere (Redis) reads each once per
# request, not once per layer that asks.
REQUEST_NAMESPACES: contextvars.ContextVar[dict | None] = contextvars.ContextVar("request_namespaces", default=None)


@dataclass
class Namespace:
    name: str
    scenario: Scenario
    seed: int
    clock: Clock
    store: Store
    # Where fresh seeded stores come from (shared by every namespace of the sandbox).
    templates: Templates
    rules: RuleBook = field(default_factory=RuleBook)
    # Told of every write to the store this namespace holds (see `_attach`; a replaced store is
    # detached first).
    on_write: Callable | None = None

    def __post_init__(self) -> None:
        self._attach(self.store)

    def _attach(self, store: Store) -> None:
        if self.on_write is not None:
            store.on_write = lambda business, **changed: self.on_write(self, business, **changed)

    def detach(self) -> None:
        """The store this namespace held stops reporting writes (it is being replaced or dropped)."""
        with self.store.lock:
            self.store.on_write = None

    def reset(self, seed: int | None = None, scenario: Scenario | None = None) -> None:
        """Freshly seeded data (this seed and scenario, or the current ones); rules are cleared."""
        scenario = scenario or self.scenario
        seed = self.seed if seed is None else seed
        store = self.templates.store(scenario, seed, clock=self.clock)
        self._attach(store)
        self.detach()
        self.scenario, self.seed, self.store = scenario, seed, store
        self.rules.clear()

    def describe(self) -> dict:
        return {"namespace": self.name, "scenario": self.scenario.name, "seed": self.seed}

    def save_clock(self) -> None:
        """The clock lives in this process: a change is kept as it is made."""

    def add_fixtures(self, body: dict) -> dict:
        """Add exact records (sandbox.fixtures), all or none; what was added. FixtureError says why not."""
        with self.store.lock:  # no write lands between the export and the new store
            store, added = fixtures.apply(self.store, body, lambda: format_timestamp(self.clock()))
            self._attach(store)
            self.detach()
            self.store = store
        return added

    def export(self) -> dict:
        return {**export_store(self.store), "namespace": self.name, "scenario": self.scenario.name,
                "seed": self.seed, "clock": self.clock.state()}

    def load(self, document: dict) -> None:
        """Replace the data with an exported document, all or nothing (StateError on any problem).

        The document's seed and scenario (a known scenario name) become what reset returns to,
        and its clock setting is restored.
        """
        store = import_store(document, clock=self.clock)  # checks the whole document first
        self._attach(store)
        scenario = scenario_of(document, self.scenario)
        if "clock" in document:
            try:
                self.clock.restore(document["clock"])
            except ClockError as exc:
                raise StateError([f"clock: {exc}"]) from None
        self.detach()
        self.store, self.scenario = store, scenario
        self.seed = document.get("seed", self.seed)


def scenario_of(document: dict, current: Scenario) -> Scenario:
    """The scenario an export names, when it names a known one (else `current`): what a namespace
    loaded from it resets to. StateError when the named scenario cannot be read."""
    name = document.get("scenario")
    if name not in scenario_names():
        return current
    try:
        return Scenario.load(name)
    except ScenarioError as exc:
        raise StateError([f"scenario: {exc}"]) from None


class Sandbox:
    """All namespaces of one running sandbox, and the --state-file that keeps them."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.scenario = Scenario.load(config.scenario)
        self.templates = Templates()
        self._lock = threading.Lock()
        self.namespaces: dict[str, Namespace] = {}
        self.state_file = persistence.StateFile(config.state_file) if config.state_file is not None else None
        if self.state_file is not None:
            self._restore()
        if DEFAULT_NAMESPACE not in self.namespaces:
            self.namespaces[DEFAULT_NAMESPACE] = self._new(DEFAULT_NAMESPACE)
            if config.load_state is not None:
                self._load_export(self.namespaces[DEFAULT_NAMESPACE], config.load_state)
        if self.state_file is not None:
            self.checkpoint()  # the log starts empty, with every write so far in the snapshot

    @staticmethod
    def _load_export(namespace: Namespace, path) -> None:
        """--load-state: the default namespace starts from an export (GET /__sandbox/state's
        answer, its `data` envelope optional), as PUT /__sandbox/state would load it."""
        try:
            document = json.loads(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise persistence.StateFileError(f"--load-state {path}: not a readable JSON file ({exc})") from None
        if isinstance(document, dict) and set(document) == {"data"}:
            document = document["data"]
        try:
            namespace.load(document)
        except StateError as exc:
            raise persistence.StateFileError(f"--load-state {path}: not a state the sandbox can load: {exc}") from None

    def _restore(self) -> None:
        """Load the saved state and replay the log, all namespaces or none (StateFileError says why)."""
        saved = self.state_file.load()
        if saved is None:
            return
        loaded = {}
        for name, document in saved.items():
            try:
                check_namespace_name(name)
                namespace = self._new(name)
                namespace.load(document)
            except (NamespaceError, StateError) as exc:
                raise persistence.StateFileError(f"state file {self.state_file.path}: namespace {name!r}: {exc}") from None
            loaded[name] = namespace
        self.namespaces.update(loaded)

    def _new(self, name: str, seed: int | None = None, scenario: Scenario | None = None) -> Namespace:
        """A namespace of the start-up scenario and seed (or the ones given), freshly seeded."""
        clock = Clock()
        if self.config.clock:
            clock.configure(self.config.clock)
        scenario = scenario or self.scenario
        seed = self.config.seed if seed is None else seed
        store = self.templates.store(scenario, seed, clock=clock)
        on_write = self._log_write if self.state_file is not None else None
        return Namespace(name, scenario, seed, clock, store, self.templates, on_write=on_write)

    def _log_write(self, namespace: Namespace, business, **changed) -> None:
        """Called under the store's lock by every write: logged before it is acknowledged."""
        self.state_file.append(persistence.write_record(namespace.name, business, namespace.store.ids.drawn, **changed))

    def checkpoint(self) -> int:
        """Write every namespace to --state-file and start an empty log; the snapshot's size.

        Every store's lock is held, in one order, while the snapshot is taken, so that no write
        lands between the snapshot and the new log. Call it where no store lock is held."""
        with self._lock, contextlib.ExitStack() as held:
            namespaces = dict(self.namespaces)
            for namespace in namespaces.values():
                held.enter_context(namespace.store.lock)
            exports = {name: namespace.export() for name, namespace in namespaces.items()}
            drawn = {name: namespace.store.ids.drawn for name, namespace in namespaces.items()}
            return self.state_file.checkpoint(exports, drawn)

    def compact_if_due(self) -> None:
        """Fold a long log into a new snapshot; called between requests, where no lock is held.
        A failure is logged here (the request it follows is answered already); the log stays
        closed, so the next write fails loudly until a snapshot can be written."""
        if self.state_file is not None and self.state_file.compaction_due:
            try:
                written = self.checkpoint()
            except (OSError, persistence.StateFileError):
                log.exception("state file: the log could not be folded into a new snapshot")
                return
            log.info("state file log compacted into a %d-byte snapshot", written)

    def namespace(self, name: str | None) -> Namespace:
        """The named namespace (None: the default one), created and seeded on first use."""
        name = DEFAULT_NAMESPACE if name is None else name
        found = self.namespaces.get(name)
        if found is not None:
            return found
        return self.create(name)[0]

    def create(self, name: str, seed: int | None = None, scenario: Scenario | None = None,
               replace: bool = False) -> tuple[Namespace, bool]:
        """The named namespace, made now (a clone of its scenario's seeded template) unless it
        exists; one that exists is reset to this seed and scenario (the start-up ones when not
        given) when `replace` is set. Also says whether it was made."""
        check_namespace_name(name)
        with self._lock:
            found = self.namespaces.get(name)
            if found is None:
                if len(self.namespaces) >= self.config.max_namespaces:
                    raise NamespaceLimit(
                        f"this sandbox already holds {len(self.namespaces)} namespaces, its limit "
                        "(--max-namespaces); delete one with DELETE /__sandbox/namespaces/NAME")
                found = self.namespaces[name] = self._new(name, seed, scenario)
                if self.state_file is not None:
                    self.state_file.append(persistence.namespace_record(name, found.export(), found.store.ids.drawn))
                return found, True
        if replace:
            found.reset(self.config.seed if seed is None else seed, scenario or self.scenario)
        return found, False

    def drop(self, name: str) -> bool:
        """Delete a namespace and its data; whether there was one."""
        if name == DEFAULT_NAMESPACE:
            raise DefaultNamespace("the default namespace cannot be deleted (requests without a namespace "
                                   "use it); reset it with POST /__sandbox/reset")
        with self._lock:
            dropped = self.namespaces.pop(name, None)
            if dropped is not None:
                dropped.detach()
        if dropped is not None and self.state_file is not None:
            self.checkpoint()
        return dropped is not None

    def describe(self, name: str) -> dict:
        """What a namespace holds, or would be made with, without making it."""
        found = self.namespaces.get(name)
        if found is None:
            return {"namespace": name, "exists": False, "scenario": self.scenario.name, "seed": self.config.seed}
        return {**found.describe(), "exists": True}

    # What the sandbox keeps beside the namespaces, here in this process (the Redis sandbox keeps
    # them in Redis, for every worker and replica).
    def token_book(self):
        from .auth import TokenBook

        return TokenBook()

    def whoami_key(self) -> bytes | None:
        return None  # a random key of the process's own

    def rate_limiter(self, per_second: int):
        from .ratelimit import RateLimiter

        return RateLimiter(per_second)

    def journal(self, size: int):
        from .journal import Journal

        return Journal(size)

    def list_namespaces(self) -> list[dict]:
        return [namespace.describe() for namespace in list(self.namespaces.values())]

    def close(self) -> None:
        return None

    def clock_of(self, name: str):
        """A namespace's clock, or None when there is no such namespace (it was deleted)."""
        found = self.namespaces.get(name)
        return found.clock if found is not None else None

    # The default namespace, for code that predates namespaces (and for printing at start-up).
    @property
    def store(self) -> Store:
        return self.namespace(DEFAULT_NAMESPACE).store


def open_sandbox(config: Config):
    """The sandbox's namespaces in this process (`--store memory`, the default) or in Redis
    (`--store redis://...`: any number of processes share them; sandbox.stores.redis_namespaces)."""
    if config.store == "memory":
        return Sandbox(config)
    from .stores.redis_namespaces import RedisSandbox

    return RedisSandbox(config)
