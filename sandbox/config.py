"""The one configuration object, filled from command-line flags or environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.resources import DEFAULT_FIXTURE, SPEC_PATH

DEFAULT_SEED = 1
DEFAULT_PORT = 8088


@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    seed: int = DEFAULT_SEED
    # None accepts any well-formed bearer token; a string accepts only that token.
    token: str | None = None
    spec_path: Path = SPEC_PATH
    fixture_path: Path = DEFAULT_FIXTURE
