"""The sandbox's live state: the current store, and how to get back to the seeded one."""

from __future__ import annotations

from sandbox.config import Config
from sandbox.seed import build_store
from sandbox.store import Store


class Sandbox:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.seed = config.seed
        self.store: Store = build_store(config.fixture_path, config.seed)

    def reset(self, seed: int | None = None) -> None:
        """Replace the whole state with freshly seeded data (the same seed unless given)."""
        self.seed = self.config.seed if seed is None else seed
        self.store = build_store(self.config.fixture_path, self.seed)
