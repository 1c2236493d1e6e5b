"""The one configuration object, filled from command-line flags or environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .resources import DEFAULT_SCENARIO, SPEC_PATH

DEFAULT_SEED = 1
NO_VALIDATION_VARIABLE = "LAYER_SANDBOX_BENCH_NO_VALIDATION"
DEFAULT_PORT = 8088
# Browsers on any localhost origin (any port, http or https) may call the sandbox by default.
LOCALHOST_ORIGINS = r"^https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$"

@dataclass(frozen=True)
class Config:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    seed: int = DEFAULT_SEED
    # Empty accepts any well-formed bearer token. Otherwise only these: `T` for every business,
    # `T=BUSINESS_ID` for that business only (Layer's business-scoped tokens).
    tokens: tuple[str, ...] = ()
    # API clients (`ID:SECRET`) that may get tokens from POST /oauth2/token; empty: any id and
    # secret get one. With clients or tokens set, only issued or configured tokens pass.
    clients: tuple[str, ...] = ()
    # When set, the control routes under /__sandbox/ (health excepted) take only this bearer token.
    admin_token: str | None = None
    spec_path: Path = SPEC_PATH
    # A scenario name from fixtures/scenarios/ or a path to a scenario file.
    scenario: str = DEFAULT_SCENARIO
    # `system`, `frozen`, `frozen=<ISO 8601>` or `start=<ISO 8601>`; None is the system clock.
    clock: str | None = None
    max_namespaces: int = 100
    # `memory` (this process only) or a Redis URL (redis://, rediss://, unix://) whose data any
    # number of sandbox processes share; `store_prefix` starts every key the sandbox writes there.
    store: str = "memory"
    store_prefix: str = "lsbx"
    # Seconds a namespace other than the default one lives without a request (Redis store only):
    # for CI farms that make a namespace per job and never delete it. None: until deleted.
    namespace_ttl: int | None = None
    # Serving processes on the one port (more than one needs the Redis store): sandbox.workers.
    workers: int = 1
    journal_size: int = 1000
    state_file: Path | None = None
    # An export (GET /__sandbox/state) the default namespace starts from, unless --state-file
    # already holds a state.
    load_state: Path | None = None
    # Origins allowed by CORS; empty means any localhost origin.
    cors_origins: tuple[str, ...] = ()
    # Requests per second per token; None disables Layer's rate limit.
    rate_limit: int | None = None
    # Benchmark only (bench/run.py measures what validation costs): False skips openapi-core's
    # request and response checks. Set by the LAYER_SANDBOX_BENCH_NO_VALIDATION environment
    # variable alone, never by a flag; every response then says `request=skipped; response=skipped`.
    validate: bool = True
    # The largest request body taken, on every route (larger: 413); see sandbox.pipeline.Edge.
    max_body_bytes: int = 10 * 1024 * 1024
    # Seconds a client may take to send a request's head, and between two parts of its body
    # (slower: 408 and the connection is closed); see sandbox.serving.
    client_timeout: float = 10.0
    # Seconds in-flight requests get to finish on SIGTERM before the server stops anyway: well
    # inside the 10 s `docker stop` waits before its SIGKILL.
    shutdown_grace: float = 5.0
