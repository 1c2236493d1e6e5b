"""The sandbox's own control routes under `/__sandbox/`, outside openapi.yaml.

They answer in Layer's envelope (`{"data": ...}` / `{"errors": [...]}`) like the API does, so a
client needs one parser for both. Routes that read or change state act on the namespace named
by `X-Sandbox-Namespace` (`default` without it), never on another.
"""

from __future__ import annotations

import functools
import re

import flask

from . import envelope, webpage
from .clock import ClockError
from .errors import ApiError, bad_request, from_namespace_error
from .fixtures import FixtureError
from .forced import ResponseCatalog
from .journal import Journal
from .pipeline import NOTES
from .jsontext import foreign_charset, strict_loads
from .rules import DirectiveError
from .runtime import (
    DEFAULT_NAMESPACE,
    NAMESPACE_HEADER,
    Namespace,
    NamespaceError,
    Sandbox,
    check_namespace_name,
)
from .seed import Scenario, ScenarioError, scenario_names
from .snapshot import StateError
from .timestamps import parse_timestamp


def business_summary(business) -> dict:
    """What a frontend developer needs to pick ids: customers, invoices, accounts."""
    return {
        "id": business.id,
        "name": business.name,
        "customers": [
            {
                "id": c.id,
                "external_id": c.external_id,
                "individual_name": c.individual_name,
                "company_name": c.company_name,
                "email": c.email,
                "status": c.status,
            }
            for c in business.customers.values()
        ],
        "invoices": [
            {
                "id": i.id,
                "invoice_number": i.invoice_number,
                "customer_id": i.customer_id,
                "sent_at": i.sent_at,
                "total": i.total_amount,
                "outstanding_balance": i.outstanding_balance,
            }
            for i in business.invoices.values()
        ],
        "ledger_accounts": [
            {
                "id": a.id,
                "stable_name": a.stable_name,
                "name": a.name,
                "account_number": a.account_number,
                "account_type": a.account_type,
                "account_subtype": a.account_subtype,
            }
            for a in business.ledger_accounts.values()
        ],
        "customer_credits": sum(1 for c in business.credits.values() if not c.is_deleted),
        "deleted_customer_credits": sum(1 for c in business.credits.values() if c.is_deleted),
    }


# Bodies of control routes are JSON under any content type curl sends for `-d` (none, or
# form-urlencoded) besides JSON's own; a type that declares another format is refused.
_JSON_TYPES = re.compile(r"^(application/json|application/[\w.+-]+\+json|application/x-www-form-urlencoded)$")


def _json_object(fields: tuple[str, ...] | None = None) -> dict:
    """The request's JSON object body (strict JSON); no body counts as `{}`. With `fields`,
    any other member is refused, as the API refuses unknown members."""
    raw = flask.request.get_data(cache=True)
    if not raw:
        return {}
    content_type = flask.request.headers.get("Content-Type")
    if content_type is not None:
        mimetype = content_type.split(";")[0].strip().lower()
        if not _JSON_TYPES.match(mimetype) or foreign_charset(content_type):
            raise ApiError(415, f"Content-Type {content_type!r} is not accepted; send JSON (application/json, UTF-8)",
                           {"location": "header", "field": "Content-Type"})
    try:
        payload = strict_loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"The body is not valid JSON: {exc}", location="body", field="(root)") from None
    if not isinstance(payload, dict):
        raise bad_request("The body must be a JSON object", location="body", field="(root)")
    unknown = sorted(set(payload) - set(fields)) if fields is not None else []
    if unknown:
        raise bad_request(f"Unknown fields: {', '.join(unknown)}; this route takes "
                          f"{', '.join(fields) or 'no fields'}", location="body", field=unknown[0])
    return payload


def _seed_of(payload: dict) -> int | None:
    seed = payload.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63):
        raise bad_request("seed must be a non-negative integer", location="body", field="seed")
    return seed


def _scenario(name: str, field: str = "scenario") -> Scenario:
    """A named scenario of fixtures/scenarios/ (files elsewhere only through --scenario). One
    that does not read or check (an unknown key, a wrong value) is the installation's fault: a
    500 whose description names the key and the file, and nothing is changed."""
    if name not in scenario_names():
        raise ApiError(404, f"No scenario {name!r}; known: {', '.join(scenario_names())}",
                       {"field": field, "resource": "scenario"})
    try:
        return Scenario.load(name)
    except ScenarioError as exc:
        raise ApiError(500, str(exc)) from None


def _int_arg(name: str, minimum: int = 0) -> int | None:
    value = flask.request.args.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise bad_request(f"{name} must be an integer of at least {minimum}", location="query", field=name)
    return number


def blueprint(sandbox: Sandbox, journal: Journal, catalog: ResponseCatalog) -> flask.Blueprint:
    """The control routes; `catalog` (what each operation of the contract declares) judges rules."""
    routes = flask.Blueprint("sandbox_control", __name__, url_prefix="/__sandbox")

    def saved(view):
        """A route that replaces what a namespace holds: with --state-file, the new state is in
        a new snapshot before the answer leaves (the log records credit writes only)."""
        @functools.wraps(view)
        def checkpointed(*args, **kwargs):
            answer = view(*args, **kwargs)
            if sandbox.state_file is not None:
                sandbox.checkpoint()
            return answer
        return checkpointed

    def named_in() -> str:
        """Where the request named its namespace: a `/__ns/NAME/...` URL, or the header."""
        notes = flask.request.environ.get("asgi.scope", {}).get("extensions", {}).get(NOTES, {})
        return "prefix" if notes.get("namespace_from_path") else "header"

    def current() -> Namespace:
        try:
            return sandbox.namespace(flask.request.headers.get(NAMESPACE_HEADER))
        except NamespaceError as exc:
            raise from_namespace_error(exc, named_in()) from None

    # ------------------------------------------------------------------ the dashboard

    @routes.get("/")
    def index():
        """The dashboard for a browser (which asks for HTML first); for anything else, what the
        control routes are (JSON stays the answer to `Accept: application/json`)."""
        if webpage.wants_page(flask.request.headers.get("Accept")):
            answer = webpage.file_response("index.html")
        else:
            listed = sorted({rule.rule for rule in flask.current_app.url_map.iter_rules()
                              if rule.rule.startswith("/__sandbox/")})
            answer = flask.current_app.make_response(
                envelope.data({"dashboard": "GET /__sandbox/ with Accept: text/html", "routes": listed}))
        answer.vary.add("Accept")
        return answer

    @routes.get("/dashboard/<name>")
    def dashboard_asset(name: str):
        if name not in webpage.FILES:
            raise ApiError(404, f"No dashboard file {name!r}", {"field": "name"})
        return webpage.file_response(name)

    @routes.get("/health")
    def health():
        """Ready, and what the asked namespace holds (or would be made with): asking never makes it."""
        return envelope.data({"status": "ok", **sandbox.describe(journal_namespace())})

    @routes.get("/businesses")
    def businesses():
        return envelope.data([business_summary(b) for b in current().store.all_businesses()])

    # ------------------------------------------------------------------ reset and scenarios

    @routes.post("/reset")
    @saved
    def reset():
        payload = _json_object(("seed", "scenario"))
        namespace = current()
        scenario = _scenario(payload["scenario"]) if isinstance(payload.get("scenario"), str) else None
        if "scenario" in payload and scenario is None:
            raise bad_request("scenario must be a scenario name", location="body", field="scenario")
        namespace.reset(_seed_of(payload), scenario)
        return envelope.data({"status": "reset", **namespace.describe()})

    @routes.get("/scenarios")
    def scenarios():
        listed = []
        for name in scenario_names():
            scenario = _scenario(name, field="name")
            listed.append({"name": name, "description": scenario.description,
                           "businesses": len(scenario.businesses),
                           "credits_per_business": [b["credits"] for b in scenario.businesses]})
        return envelope.data(listed)

    @routes.post("/scenarios/<name>")
    @saved
    def load_scenario(name: str):
        scenario = _scenario(name, field="name")
        namespace = current()
        namespace.reset(_seed_of(_json_object(("seed",))), scenario)
        return envelope.data({"status": "loaded", **namespace.describe()})

    # ------------------------------------------------------------------ fixtures

    @routes.post("/fixtures")
    @saved
    def add_fixtures():
        """Exact records (customers, invoices, ledger accounts, credits) added to the namespace,
        with the ids given, all or none: see sandbox.fixtures."""
        payload = _json_object()
        try:
            added = current().add_fixtures(payload)
        except FixtureError as exc:
            raise bad_request(f"Fixtures not added, nothing changed: {exc}", location="body", field=exc.field,
                              problems=exc.problems) from None
        return envelope.data(added), 201

    # ------------------------------------------------------------------ state

    @routes.get("/state")
    def export_state():
        return envelope.data(current().export())

    @routes.put("/state")
    @saved
    def import_state():
        payload = _json_object()
        document = payload.get("data", payload)  # an export as GET returned it, or its `data`
        namespace = current()
        try:
            namespace.load(document)
        except StateError as exc:
            raise bad_request(f"State not imported, nothing changed: {exc}", location="body",
                              field="(root)", problems=exc.problems) from None
        return envelope.data({"status": "imported", **namespace.describe()})

    @routes.post("/save")
    def save():
        if sandbox.config.state_file is None:
            raise ApiError(409, "No --state-file was given to this sandbox; nothing to save to",
                           kind=("Conflict", "NoStateFile"))
        _json_object(())
        written = sandbox.checkpoint()
        return envelope.data({"status": "saved", "path": str(sandbox.config.state_file),
                              "bytes": written, "namespaces": sorted(ns["namespace"] for ns in sandbox.list_namespaces())})

    # ------------------------------------------------------------------ clock

    @routes.get("/clock")
    def get_clock():
        return envelope.data(current().clock.describe())

    @routes.post("/clock")
    @saved
    def set_clock():
        """All of the body's settings, or none of them."""
        payload = _json_object(("frozen_at", "start_at", "system", "advance_seconds", "freeze"))
        namespace = current()
        clock = namespace.clock
        moments = {}
        for name in ("frozen_at", "start_at"):
            if name in payload:
                try:
                    moments[name] = parse_timestamp(str(payload[name]))
                except (ValueError, OverflowError):
                    raise bad_request(f"Clock not changed: {name} {payload[name]!r} is not an ISO 8601 date-time",
                                      location="body", field=name) from None
        step = payload.get("advance_seconds")
        if "advance_seconds" in payload and (isinstance(step, bool) or not isinstance(step, (int, float))):
            raise bad_request("Clock not changed: advance_seconds must be a number of seconds",
                              location="body", field="advance_seconds")
        before = clock.state()
        try:
            if payload.get("system"):
                clock.use_system()
            if "frozen_at" in moments:
                clock.freeze(moments["frozen_at"])
            elif payload.get("freeze"):
                clock.freeze()
            if "start_at" in moments:
                clock.run_from(moments["start_at"])
            if step is not None:
                clock.advance(step)
            described = clock.describe()
        except (ClockError, OverflowError) as exc:
            clock.restore(before)
            field = next((k for k in ("advance_seconds", "start_at", "frozen_at") if k in payload), "(root)")
            raise bad_request(f"Clock not changed: {exc}", location="body", field=field) from None
        namespace.save_clock()
        return envelope.data(described)

    # ------------------------------------------------------------------ rules

    @routes.get("/rules")
    def list_rules():
        return envelope.data(current().rules.list())

    @routes.post("/rules")
    def add_rule():
        try:
            rule = current().rules.add(_json_object(), scope=catalog.rule_scope)
        except DirectiveError as exc:
            raise bad_request(str(exc), location="body", field=exc.field) from None
        return envelope.data(rule.to_dict()), 201

    @routes.delete("/rules")
    def clear_rules():
        current().rules.clear()
        return envelope.data([])

    @routes.delete("/rules/<rule_id>")
    def delete_rule(rule_id: str):
        if not current().rules.remove(rule_id):
            raise ApiError(404, f"No rule {rule_id!r} in this namespace", {"field": "rule_id"})
        return envelope.data({"deleted": rule_id})

    # ------------------------------------------------------------------ journal

    def journal_namespace() -> str:
        """The namespace a journal route reads, without creating it: entries can outlive it."""
        name = flask.request.headers.get(NAMESPACE_HEADER) or DEFAULT_NAMESPACE
        try:
            check_namespace_name(name)
        except NamespaceError as exc:
            raise from_namespace_error(exc, named_in()) from None
        return name

    @routes.get("/requests")
    def requests():
        args = flask.request.args
        namespace = journal_namespace() if args.get("namespace") is None else args["namespace"]
        contract = args.get("contract")
        if contract not in (None, "pass", "fail", "skipped", "violation"):
            raise bad_request("contract is pass, fail, skipped or violation (fail, or a route the contract "
                              "does not have)", location="query", field="contract")
        entries = journal.query(
            namespace=None if namespace == "*" else namespace,
            method=args.get("method"), path=args.get("path"), status=_int_arg("status"),
            operation_id=args.get("operation_id"), contract=contract, after=_int_arg("after"),
            limit=_int_arg("limit", minimum=1),
        )
        return envelope.data(entries)

    @routes.delete("/requests")
    def clear_requests():
        everywhere = flask.request.args.get("namespace") == "*"
        removed = journal.clear(None if everywhere else journal_namespace())
        return envelope.data({"cleared": removed})

    # ------------------------------------------------------------------ namespaces

    @routes.get("/namespaces")
    def namespaces():
        return envelope.data(sandbox.list_namespaces())

    @routes.put("/namespaces/<name>")
    def put_namespace(name: str):
        """A fresh namespace of this seed and scenario (the start-up ones by default): made now,
        201, or an existing one reset to them, 200. Cheap: a clone of the seeded template."""
        payload = _json_object(("seed", "scenario"))
        scenario = None
        if "scenario" in payload:
            if not isinstance(payload["scenario"], str):
                raise bad_request("scenario must be a scenario name", location="body", field="scenario")
            scenario = _scenario(payload["scenario"])
        try:
            namespace, created = sandbox.create(name, _seed_of(payload), scenario, replace=True)
        except NamespaceError as exc:
            raise from_namespace_error(exc, "name") from None
        if not created and sandbox.state_file is not None:
            sandbox.checkpoint()
        return envelope.data({"status": "created" if created else "reset", **namespace.describe()}), (
            201 if created else 200)

    @routes.delete("/namespaces/<name>")
    def drop_namespace(name: str):
        try:
            dropped = sandbox.drop(name)
        except NamespaceError as exc:
            raise from_namespace_error(exc, "name") from None
        if not dropped:
            raise ApiError(404, f"No namespace {name!r}", {"field": "name", "resource": "namespace"})
        journal.clear(name)
        return envelope.data({"deleted": name})

    return routes
