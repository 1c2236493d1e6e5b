"""`layer-sandbox` / `python -m sandbox`: start the sandbox.

Every flag can also come from an environment variable (for Docker and CI): `--port` from
`LAYER_SANDBOX_PORT`, and so on; a flag wins over its variable.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import socket
import sys
import warnings
from pathlib import Path

import click

from .config import DEFAULT_PORT, DEFAULT_SEED, NO_VALIDATION_VARIABLE, Config
from .resources import DEFAULT_SCENARIO, SPEC_PATH
from .seed import scenario_names

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
# How many collections of the middle generation come before a full one (Python's default is 10).
FULL_COLLECTION_AFTER = 100


def _listening_socket(host: str, port: int) -> socket.socket:
    from .serving import listening_socket

    try:
        return listening_socket(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _stop_cleanly_on_signals(server) -> None:
    """SIGTERM/SIGINT stop the server gracefully and the process exits 0, whenever they come.

    While it runs, uvicorn's own handlers shut it down gracefully (the app saves --state-file
    then) and afterwards raise the signal again against the handlers they found: these, which
    only ask the server to stop. One that comes before uvicorn's handlers are in place (right
    after the start is announced, say) asks the same, and the server stops as soon as it has
    started, instead of the process dying with 143."""
    def stop(*_) -> None:
        server.should_exit = True

    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, stop)


def _shown(host: str) -> str:
    """A host as a URL holds it: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def _announce(config: Config, port: int, app) -> None:
    shown_host = _shown(config.host)
    scoped = sum(1 for t in config.tokens if "=" in t)
    accepted = []
    if config.tokens:
        accepted.append(f"the {len(config.tokens)} configured --token(s), {scoped} scoped to one business")
    if config.clients:
        accepted.append(f"tokens issued to the {len(config.clients)} configured --client(s)")
    token = ("only " + " and ".join(accepted) if accepted else "any bearer token") + (
        "; control routes need --admin-token" if config.admin_token else "")
    lines = [
        f"layer-sandbox listening on http://{shown_host}:{port} "
        f"(scenario {app.sandbox.scenario.name}, seed {config.seed}, accepts {token})",
        f"  dashboard: http://{shown_host}:{port}/__sandbox/   health: http://{shown_host}:{port}/__sandbox/health"
        f"   ids: http://{shown_host}:{port}/__sandbox/businesses",
        "  seeded businesses:",
    ]
    for business in app.sandbox.store.all_businesses():
        lines.append(f"    {business.id}  {business.name}")
    click.echo("\n".join(lines))
    sys.stdout.flush()


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _warn_about_scoped_tokens(config: Config, app) -> None:
    """One warning per `--token T=BUSINESS_ID` whose business the sandbox does not hold: such a
    token is accepted, yet every request with it answers 404 (as for an unknown business, see
    contract.BearerAuth), which looks like a sandbox bug unless said at start. Names the business
    only: tokens are secrets and never reach a log."""
    from .contract import BearerAuth

    held = {business.id.lower() for business in app.sandbox.store.all_businesses()}
    for business in BearerAuth(config.tokens).scopes.values():  # parsed as requests will be
        if business is None or business in held:
            continue
        why = ("which is not a UUID (every business id is one)" if not _UUID.match(business)
               else f"which is not one of the {len(held)} seeded businesses")
        logging.getLogger("layer_sandbox").warning(
            "a --token is scoped to business %r, %s: requests with that token will answer 404, "
            "as for an unknown business", business, why)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", envvar="LAYER_SANDBOX_HOST", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 inside a container). [env LAYER_SANDBOX_HOST]")
@click.option("--port", envvar="LAYER_SANDBOX_PORT", type=click.IntRange(0, 65535), default=DEFAULT_PORT,
              show_default=True, help="Port to listen on; 0 picks a free one. [env LAYER_SANDBOX_PORT]")
@click.option("--seed", envvar="LAYER_SANDBOX_SEED", type=click.IntRange(0, 2**63 - 1), default=DEFAULT_SEED,
              show_default=True,
              help="Seed of the generated data; the same seed gives the same data. [env LAYER_SANDBOX_SEED]")
@click.option("--token", "tokens", envvar="LAYER_SANDBOX_TOKEN", multiple=True,
              help="Accept only the bearer tokens given (default: any): T for every business, T=BUSINESS_ID "
                   "for that business only; repeatable. [env LAYER_SANDBOX_TOKEN, space-separated]")
@click.option("--client", "clients", envvar="LAYER_SANDBOX_CLIENT", multiple=True,
              help="An API client ID:SECRET that may get tokens from POST /oauth2/token (default: any id and "
                   "secret get one); repeatable. With --client or --token set, only issued or configured tokens "
                   "pass. [env LAYER_SANDBOX_CLIENT, space-separated]")
@click.option("--admin-token", envvar="LAYER_SANDBOX_ADMIN_TOKEN", default=None,
              help="Control routes under /__sandbox/ (health aside) take only this bearer token. "
                   "[env LAYER_SANDBOX_ADMIN_TOKEN]")
@click.option("--scenario", envvar="LAYER_SANDBOX_SCENARIO", default=DEFAULT_SCENARIO, show_default=True,
              help=f"What to seed: a scenario name ({', '.join(scenario_names())}) or a scenario file. "
                   "[env LAYER_SANDBOX_SCENARIO]")
@click.option("--clock", envvar="LAYER_SANDBOX_CLOCK", default=None,
              help="system (default), frozen, frozen=2026-01-01T00:00:00Z or start=<time>: the clock that "
                   "stamps created_at/updated_at/deleted_at. [env LAYER_SANDBOX_CLOCK]")
@click.option("--state-file", envvar="LAYER_SANDBOX_STATE_FILE", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Load state from this file (and replay its log) at start if it exists; log "
                                 "every write before acknowledging it; snapshot atomically on SIGTERM/SIGINT and "
                                 "POST /__sandbox/save. [env LAYER_SANDBOX_STATE_FILE]")
@click.option("--load-state", envvar="LAYER_SANDBOX_LOAD_STATE", type=_FILE, default=None,
              help="Start the default namespace from this export (the answer of GET /__sandbox/state, saved "
                   "to a file); with --state-file, only when that file holds no state yet. "
                   "[env LAYER_SANDBOX_LOAD_STATE]")
@click.option("--cors-origin", "cors_origins", envvar="LAYER_SANDBOX_CORS_ORIGINS", multiple=True,
              help="Origin allowed to call from a browser (repeatable; env: space-separated); default: any "
                   "localhost origin. [env LAYER_SANDBOX_CORS_ORIGINS]")
@click.option("--rate-limit", envvar="LAYER_SANDBOX_RATE_LIMIT", type=click.IntRange(1), default=None,
              help="Apply Layer's rate limit: N requests per second per token (default: off). "
                   "[env LAYER_SANDBOX_RATE_LIMIT]")
@click.option("--journal-size", envvar="LAYER_SANDBOX_JOURNAL_SIZE", type=click.IntRange(0), default=1000,
              show_default=True, help="How many recent requests GET /__sandbox/requests keeps. "
                                      "[env LAYER_SANDBOX_JOURNAL_SIZE]")
@click.option("--max-namespaces", envvar="LAYER_SANDBOX_MAX_NAMESPACES", type=click.IntRange(1), default=100,
              show_default=True, help="How many X-Sandbox-Namespace namespaces may exist at once. "
                                      "[env LAYER_SANDBOX_MAX_NAMESPACES]")
@click.option("--store", envvar="LAYER_SANDBOX_STORE", default="memory", show_default=True,
              help="Where namespaces live: memory (this process) or a Redis URL (redis://HOST:PORT/DB, "
                   "rediss://..., unix:///path.sock) that any number of sandbox processes share; needs the "
                   "redis extra (pip install 'layer-sandbox[redis]'). [env LAYER_SANDBOX_STORE]")
@click.option("--store-prefix", envvar="LAYER_SANDBOX_STORE_PREFIX", default="lsbx", show_default=True,
              help="What every Redis key of this sandbox starts with: processes with the same --store and "
                   "prefix serve one sandbox. [env LAYER_SANDBOX_STORE_PREFIX]")
@click.option("--namespace-ttl", envvar="LAYER_SANDBOX_NAMESPACE_TTL", type=click.IntRange(1), default=None,
              help="With --store redis: a namespace (the default one aside) that gets no request for this many "
                   "seconds is deleted, its data swept (for CI farms that never clean up). "
                   "[env LAYER_SANDBOX_NAMESPACE_TTL]")
@click.option("--workers", envvar="LAYER_SANDBOX_WORKERS", type=click.IntRange(1), default=1, show_default=True,
              help="Serving processes on the one port; more than 1 needs --store redis://... (they share its "
                   "state). [env LAYER_SANDBOX_WORKERS]")
@click.option("--max-body-bytes", envvar="LAYER_SANDBOX_MAX_BODY_BYTES", type=click.IntRange(1),
              default=Config.max_body_bytes, show_default=True,
              help="Largest request body taken, on every route; larger gets 413. [env LAYER_SANDBOX_MAX_BODY_BYTES]")
@click.option("--client-timeout", envvar="LAYER_SANDBOX_CLIENT_TIMEOUT", type=click.FloatRange(0.1),
              default=Config.client_timeout, show_default=True,
              help="Seconds a client may take to send a request's head, or between parts of its body; "
                   "slower gets 408 and is disconnected. [env LAYER_SANDBOX_CLIENT_TIMEOUT]")
@click.option("--shutdown-grace", envvar="LAYER_SANDBOX_SHUTDOWN_GRACE", type=click.FloatRange(0),
              default=Config.shutdown_grace, show_default=True,
              help="Seconds in-flight requests get to finish on SIGTERM/SIGINT before the sandbox saves "
                   "and exits anyway. [env LAYER_SANDBOX_SHUTDOWN_GRACE]")
@click.option("--spec", "spec_path", envvar="LAYER_SANDBOX_SPEC", type=_FILE, default=SPEC_PATH,
              show_default=True, help="The contract to serve and enforce. [env LAYER_SANDBOX_SPEC]")
@click.version_option(package_name="layer-sandbox")
@click.pass_context
def main(ctx: click.Context, **options) -> None:
    """A local, stateful sandbox of Layer's customer-credits API."""
    if ctx.invoked_subcommand is not None:
        return
    # Start-up makes a few hundred thousand objects that live as long as the process (modules,
    # the contract, the seeded store): no collection can free any of them, so none runs until
    # they exist, and then they are frozen out of every later collection (shorter GC pauses).
    gc.disable()
    import uvicorn

    # connexion imports starlette's test client, which warns when httpx (a test extra) is present.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from .app import create_app
    from .serving import uvicorn_options
    from .clock import Clock, ClockError
    from .persistence import StateFileError
    from .seed import ScenarioError
    from .stores.protocol import StoreStartError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("connexion").setLevel(logging.WARNING)
    options["cors_origins"] = tuple(o for value in options["cors_origins"] for o in value.split())
    options["tokens"] = tuple(options["tokens"])
    options["clients"] = tuple(options["clients"])
    if os.environ.get(NO_VALIDATION_VARIABLE) == "1":
        options["validate"] = False
        logging.getLogger("layer_sandbox").warning(
            "%s=1: requests and responses are NOT checked against openapi.yaml (a benchmark switch)",
            NO_VALIDATION_VARIABLE)
    config = Config(**options)
    if config.workers > 1 and config.store == "memory":
        raise click.UsageError("--workers above 1 needs --store redis://...: workers share no memory, so each "
                               "would hold a sandbox of its own")
    if config.namespace_ttl is not None and config.store == "memory":
        raise click.UsageError("--namespace-ttl needs --store redis://... (a memory sandbox's namespaces end "
                               "with it; delete one with DELETE /__sandbox/namespaces/NAME)")
    if config.store != "memory":
        if not config.store.startswith(("redis://", "rediss://", "unix://")):
            raise click.BadParameter("use memory or a redis://, rediss:// or unix:// URL", param_hint="--store")
        if config.state_file is not None:
            raise click.UsageError("--state-file keeps the memory store; Redis persists itself (run it with "
                                   "appendonly yes and appendfsync always), so --store redis takes no --state-file")
    try:
        if config.clock:
            Clock().configure(config.clock)
        app = create_app(config)
    except (ClockError, ScenarioError, StateFileError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except ImportError as exc:
        if exc.name != "redis":
            raise
        raise click.ClickException("--store redis needs the redis package: pip install 'layer-sandbox[redis]'") from None
    except StoreStartError as exc:
        raise click.ClickException(str(exc)) from None
    gc.freeze()
    # Later full collections find next to nothing (what a request leaves behind dies young: a few
    # hundred objects per full run under the benchmark's load), yet each walks every credit and
    # remembered URL made since start-up, 5-10 ms during which every request in flight waits (at
    # 32 connections, most of the p99). bench/run.py measured p99 45 -> 33 ms with them a tenth
    # as often.
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_AFTER)
    gc.enable()
    sock = _listening_socket(config.host, config.port)

    def announce() -> None:
        _announce(config, sock.getsockname()[1], app)
        _warn_about_scoped_tokens(config, app)

    def server() -> uvicorn.Server:
        made = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(config)))
        _stop_cleanly_on_signals(made)
        return made

    if config.workers == 1:
        single = server()
        announce()
        single.run(sockets=[sock])
        return
    from .workers import serve

    app.sandbox.close()  # each worker opens connections of its own
    sys.exit(serve(lambda: server().run(sockets=[sock]), config.workers, config.shutdown_grace, ready=announce))


@main.command("check-spec")
# Not `exists=True`: a file that is missing or unreadable gets the same exit status 2 and, with
# --format json, the same JSON answer as one that holds no spec.
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--spec", "spec_path", type=_FILE, default=SPEC_PATH, show_default=True,
              help="The contract to compare with.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people; json prints one JSON document on stdout for CI: file, spec, "
                   "contradictions, differences (each finding with kind, where and message) and counts; "
                   "file, spec and error instead when the exit status is 2.")
def check_spec(file: Path, spec_path: Path, output_format: str) -> None:
    """How a published Layer spec FILE (OpenAPI YAML/JSON, or a page with a ```yaml block) differs
    from the sandbox's contract, and which of its own statements contradict each other.

    Exit status: 0 nothing found; 1 contradictions or differences found; 2 FILE (or --spec) cannot
    be read or holds no OpenAPI document (the reason on stderr), or a usage error."""
    import json

    from .specdiff import SpecFileError, check, load_document, report, report_json

    try:
        found, diffs = check(file, load_document(spec_path))
    except SpecFileError as exc:
        if output_format == "json":
            click.echo(json.dumps({"file": str(file), "spec": str(spec_path), "error": str(exc)}, indent=2))
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    click.echo(report_json(file, spec_path, found, diffs) if output_format == "json" else report(file, found, diffs))
    sys.exit(1 if found or diffs else 0)


# The proxy's own port and variables (LAYER_SANDBOX_PROXY_*): a proxy and a sandbox started side
# by side, or from one environment (a CI job, a compose file), never take each other's settings.
DEFAULT_PROXY_PORT = 8089


@main.command("proxy")
# LAYER_SANDBOX_UPSTREAM: the variable's name before the proxy had its own prefix, still read.
@click.option("--upstream", required=True, envvar=["LAYER_SANDBOX_PROXY_UPSTREAM", "LAYER_SANDBOX_UPSTREAM"],
              help="Base URL of the real Layer environment, e.g. https://sandbox.layerfi.com. "
                   "[env LAYER_SANDBOX_PROXY_UPSTREAM]")
@click.option("--host", envvar="LAYER_SANDBOX_PROXY_HOST", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 inside a container). [env LAYER_SANDBOX_PROXY_HOST]")
@click.option("--port", envvar="LAYER_SANDBOX_PROXY_PORT", type=click.IntRange(0, 65535), default=DEFAULT_PROXY_PORT,
              show_default=True, help="Port to listen on; 0 picks a free one. Not the sandbox's 8088, so that "
                                      "both can run at once. [env LAYER_SANDBOX_PROXY_PORT]")
@click.option("--junit-xml", envvar="LAYER_SANDBOX_PROXY_JUNIT_XML", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write every exchange as a JUnit test case (drift = failure) here on exit. "
                                 "[env LAYER_SANDBOX_PROXY_JUNIT_XML]")
@click.option("--timeout", envvar="LAYER_SANDBOX_PROXY_TIMEOUT", type=click.FloatRange(0.1), default=30.0,
              show_default=True, help="Seconds to wait for the upstream. [env LAYER_SANDBOX_PROXY_TIMEOUT]")
@click.option("--journal-size", envvar="LAYER_SANDBOX_PROXY_JOURNAL_SIZE", type=click.IntRange(0), default=1000,
              show_default=True, help="How many recent exchanges GET /__sandbox/requests keeps. "
                                      "[env LAYER_SANDBOX_PROXY_JOURNAL_SIZE]")
@click.option("--spec", "spec_path", envvar="LAYER_SANDBOX_PROXY_SPEC", type=_FILE, default=SPEC_PATH,
              show_default=True, help="The contract to validate against. [env LAYER_SANDBOX_PROXY_SPEC]")
def proxy(upstream: str, host: str, port: int, junit_xml: Path | None, timeout: float, journal_size: int,
          spec_path: Path) -> None:
    """Forward every call to a real Layer environment and report where it drifts from the contract.

    Every option can also come from its LAYER_SANDBOX_PROXY_* variable (a flag wins over it), never
    from the sandbox's (LAYER_SANDBOX_PORT, ...): a proxy and a sandbox can share one environment."""
    import copy

    import uvicorn

    from .contract import Contract
    from .journal import Journal
    from .proxy import ValidatingProxy
    from .serving import uvicorn_options
    from .resources import load_spec

    if not upstream.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http:// or https:// URL", param_hint="--upstream")
    app = ValidatingProxy(upstream, Contract(copy.deepcopy(load_spec(spec_path))), Journal(journal_size), timeout)
    sock = _listening_socket(host, port)
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(Config())))
    _stop_cleanly_on_signals(server)
    shown_host = _shown(host)
    click.echo(f"layer-sandbox proxy listening on http://{shown_host}:{sock.getsockname()[1]} -> {upstream} "
               f"(drift report: GET /__sandbox/requests{', JUnit: ' + str(junit_xml) if junit_xml else ''})")
    sys.stdout.flush()
    server.run(sockets=[sock])
    click.echo(app.summary())
    if junit_xml is not None:
        junit_xml.write_bytes(app.junit())
        click.echo(f"JUnit XML written to {junit_xml}")


@main.command("verify-pact")
@click.argument("pacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--url", default=None, help="A running sandbox to replay against (default: one started for the run, "
                                          "on a free loopback port, stopped after it).")
@click.option("--admin-token", default=None, help="The --admin-token of the sandbox at --url.")
@click.option("--states", "states_file", type=_FILE, default=None,
              help="YAML recipes of your own provider states (see docs/pact.md), beside the built-in ones.")
@click.option("--scenario", default="empty", show_default=True,
              help="What each interaction's fresh namespace holds before its provider states, in a sandbox "
                   "started for the run: `empty` is one business with its customers, invoices and chart of "
                   "accounts, and no credits (a running sandbox at --url uses its own start-up scenario).")
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True,
              help="The seed of that namespace (a sandbox started for the run).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text for people; json prints one JSON document on stdout: each pact, each interaction "
                   "with its contract and sandbox checks (result, problems, notes), and a summary.")
@click.option("--junit-xml", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a JUnit report here: a test case per interaction and check.")
def verify_pact(pacts: tuple[Path, ...], url: str | None, admin_token: str | None, states_file: Path | None,
                scenario: str, seed: int, output_format: str, junit_xml: Path | None) -> None:
    """Check consumers' pact files (V2, V3, V4; a directory for its *.json files) against Layer's
    contract and replay them against the sandbox with Pact's own verifier.

    Each HTTP interaction is checked twice, each reported on its own: against openapi.yaml (is
    the request one the contract accepts, and the expected response one it allows, member by
    member?) and against the sandbox's behaviour (Pact's verifier replays it in a fresh namespace
    after setting up its provider states). Message interactions are reported as skipped.

    Exit status: 0 every interaction passed both; 1 any failed; 2 a file is not a pact (the
    others are still reported), or a usage error."""
    from .pactfile import PactFileError, pact_paths, read_pact
    from .pactstates import StateBook, StatesFileError
    from .pactverify import Unreadable, exit_status, json_report, junit_report, text_report, verify

    try:
        import pact  # noqa: F401 - pact-python: Pact's own verifier (the Rust Pact FFI)
    except ImportError:
        raise click.ClickException("verify-pact replays pacts with pact-python: pip install "
                                   "'layer-sandbox[pact]'") from None
    if admin_token and not url:
        raise click.BadParameter("goes with --url: a sandbox started for the run takes a token of its own",
                                 param_hint="--admin-token")
    if junit_xml is not None and not junit_xml.parent.is_dir():
        raise click.BadParameter(f"{junit_xml.parent} is not a directory", param_hint="--junit-xml")
    try:
        book = StateBook.from_yaml(states_file) if states_file else StateBook()
    except StatesFileError as exc:
        raise click.BadParameter(str(exc), param_hint="--states") from None
    found, unreadable = [], []
    paths = pact_paths(list(pacts))
    if not paths:
        raise click.BadParameter("no pact files there (a directory is read for its *.json files)",
                                 param_hint="PACTS")
    for path in paths:
        try:
            found.append(read_pact(path))
        except PactFileError as exc:
            unreadable.append(Unreadable(path, str(exc)))
    reports = []
    if found:
        from .pactcontract import PactContractCheck
        from .resources import SPEC_PATH, load_spec
        from .testing import RunningSandbox, SandboxProcess, SandboxUnavailable

        try:
            # A sandbox of the run's own: none of the LAYER_SANDBOX_* settings of this shell (a
            # --token or --admin-token there would refuse the pacts' requests and our states).
            server = RunningSandbox(url, admin_token) if url else SandboxProcess(
                ["--scenario", scenario, "--seed", str(seed), "--journal-size", "0"],
                environment={k: v for k, v in os.environ.items() if not k.startswith("LAYER_SANDBOX_")})
        except SandboxUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        try:
            reports, refused = verify(found, contract=PactContractCheck(load_spec(SPEC_PATH)), book=book,
                                      base_url=server.url, control=server.control)
            unreadable += refused
        finally:
            server.stop()
    if junit_xml is not None:
        junit_xml.write_bytes(junit_report(reports, unreadable))
    click.echo(json_report(reports, unreadable) if output_format == "json" else text_report(reports, unreadable))
    sys.exit(exit_status(reports, unreadable))
