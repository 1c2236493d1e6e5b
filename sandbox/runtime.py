"""The sandbox's live state: isolated namespaces, each with its store, clock, scenario and rules.

A namespace is chosen per request by the `X-Sandbox-Namespace` header (`default` without it) and
created, seeded from the start-up scenario, on first use. Reset, scenario loads, state imports,
rules and the clock act on one namespace and never touch another, so parallel CI jobs can share
one sandbox.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

from sandbox import persistence
from sandbox.clock import Clock, ClockError
from sandbox.config import Config
from sandbox.rules import RuleBook
from sandbox.seed import Scenario, ScenarioError, build_store, scenario_names
from sandbox.snapshot import StateError, export_store, import_store
from sandbox.store import Store

DEFAULT_NAMESPACE = "default"
NAMESPACE_HEADER = "X-Sandbox-Namespace"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class NamespaceError(ValueError):
    """A namespace name the sandbox refuses, or one too many."""


@dataclass
class Namespace:
    name: str
    scenario: Scenario
    seed: int
    clock: Clock
    store: Store
    rules: RuleBook = field(default_factory=RuleBook)

    def reset(self, seed: int | None = None, scenario: Scenario | None = None) -> None:
        """Freshly seeded data (this seed and scenario, or the current ones); rules are cleared."""
        scenario = scenario or self.scenario
        seed = self.seed if seed is None else seed
        store = build_store(scenario, seed, clock=self.clock)
        self.scenario, self.seed, self.store = scenario, seed, store
        self.rules.clear()

    def export(self) -> dict:
        return {**export_store(self.store), "namespace": self.name, "scenario": self.scenario.name,
                "seed": self.seed, "clock": self.clock.state()}

    def load(self, document: dict) -> None:
        """Replace the data with an exported document, all or nothing (StateError on any problem).

        The document's seed and scenario (a known scenario name) become what reset returns to,
        and its clock setting is restored.
        """
        store = import_store(document, clock=self.clock)  # checks the whole document first
        scenario = self.scenario
        name = document.get("scenario")
        if name in scenario_names():
            try:
                scenario = Scenario.load(name)
            except ScenarioError as exc:
                raise StateError([f"scenario: {exc}"]) from None
        if "clock" in document:
            try:
                self.clock.restore(document["clock"])
            except ClockError as exc:
                raise StateError([f"clock: {exc}"]) from None
        self.store, self.scenario = store, scenario
        self.seed = document.get("seed", self.seed)


class Sandbox:
    """All namespaces of one running sandbox."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.scenario = Scenario.load(config.scenario)
        self._lock = threading.Lock()
        self.namespaces: dict[str, Namespace] = {}
        self.namespace(DEFAULT_NAMESPACE)
        if config.state_file is not None:
            self._restore(config.state_file)

    def _restore(self, path) -> None:
        """Load a saved state file, all namespaces or none (StateFileError says why)."""
        saved = persistence.load(path)
        if saved is None:
            return
        loaded = {}
        for name, document in saved.items():
            try:
                check_namespace_name(name)
                namespace = self._new(name)
                namespace.load(document)
            except (NamespaceError, StateError) as exc:
                raise persistence.StateFileError(f"state file {path}: namespace {name!r}: {exc}") from None
            loaded[name] = namespace
        self.namespaces.update(loaded)

    def _new(self, name: str) -> Namespace:
        clock = Clock()
        if self.config.clock:
            clock.configure(self.config.clock)
        store = build_store(self.scenario, self.config.seed, clock=clock)
        return Namespace(name, self.scenario, self.config.seed, clock, store)

    def namespace(self, name: str | None) -> Namespace:
        """The named namespace (None: the default one), created and seeded on first use."""
        name = DEFAULT_NAMESPACE if name is None else name
        found = self.namespaces.get(name)
        if found is not None:
            return found
        check_namespace_name(name)
        with self._lock:
            found = self.namespaces.get(name)
            if found is None:
                if len(self.namespaces) >= self.config.max_namespaces:
                    raise NamespaceError(
                        f"this sandbox already holds {len(self.namespaces)} namespaces, its limit "
                        "(--max-namespaces); delete one with DELETE /__sandbox/namespaces/NAME")
                found = self.namespaces[name] = self._new(name)
            return found

    def drop(self, name: str) -> bool:
        with self._lock:
            if name == DEFAULT_NAMESPACE:
                self.namespaces[name] = self._new(name)
                return True
            return self.namespaces.pop(name, None) is not None

    # The default namespace, for code that predates namespaces (and for printing at start-up).
    @property
    def store(self) -> Store:
        return self.namespace(DEFAULT_NAMESPACE).store


def check_namespace_name(name: str) -> None:
    if not _NAME.match(name):
        raise NamespaceError(
            f"{name[:80]!r} is not a namespace name: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
