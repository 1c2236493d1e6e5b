"""Provider states: the names a pact's `given(...)` may use, each set up through the control
routes a test can call itself (fixtures, clock, namespaces), so that a pact's ids come out in the
sandbox exactly as the consumer wrote them.

Built-in states (parameters are V3 `providerStates[].params`; every one optional unless said):

- `a business exists` (`id`, `name`): that business, with Layer's standard chart of accounts when new.
- `a customer exists` (`id`, `external_id`, `company_name`, `individual_name`, `email`, ...
  every field a customer fixture takes, and `business_id`).
- `an invoice exists` (`id`, `customer_id`, `total_amount`, `outstanding_balance`, ... and
  `business_id`): a `customer_id` that names no customer yet gets one with that id.
- `a customer credit exists` (`id`, `external_id`, `customer_id`, `amount` (one line item of
  that many cents on the SALES account) or `line_items`, `allocations`, `memo`, ... and
  `business_id`): a missing customer is made as above.
- `a ledger account exists` (a ledger-account fixture, and `business_id`).
- `no customer credits exist` (`business_id`): the business holds no credit, live or deleted.
- `the clock is frozen at` (`time`, required): the namespace's clock stands at that moment.
- `the sandbox is seeded` (`scenario`, `seed`): the namespace made again from them.
- `a request was made` (`method`, `path`, `query`, `body`): that API call, answered 2xx, made
  before the interaction (the pytest plugin's pacts replay a test's earlier writes this way).

The business of a state is its `business_id`, else the last `a business exists` of the same
interaction, else the namespace's first business. A team adds its own names with `--states
FILE`: YAML recipes of the same steps (see `StateBook.from_yaml`).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from urllib.parse import quote

from .resources import FIXTURES_DIR, load_yaml
from .naming import NAMESPACE_HEADER
from .testing import ControlClient

FIXTURE_KINDS = {"a customer exists": "customers", "an invoice exists": "invoices",
                 "a customer credit exists": "customer_credits", "a ledger account exists": "ledger_accounts"}
STEP_KINDS = ("fixtures", "clock", "seed", "request", "state")
API_TOKEN = "layer-sandbox-pact"  # what a `a request was made` state sends as its bearer token
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_DEPTH = 10


class StateError(Exception):
    """A state that could not be set up: unknown, or refused by the sandbox."""


class StatesFileError(ValueError):
    """A --states file that is not a mapping of recipes."""


@dataclass
class Setup:
    """One interaction's states, applied in order to one namespace."""

    control: ControlClient
    namespace: str
    api: object = None  # an httpx.Client on the sandbox's root, for `a request was made`
    business_id: str | None = None
    applied: list[str] = field(default_factory=list)

    def call(self, method: str, path: str, body=None, *, what: str, expected=(200, 201)) -> dict:
        answer = self.control.request(method, path, body=body, namespace=self.namespace)
        if answer.status_code not in expected:
            try:
                errors = answer.json().get("errors") or []
                reason = "; ".join(e.get("description", "") for e in errors) or answer.text
            except ValueError:
                reason = answer.text
            raise StateError(f"{what}: the sandbox answered {answer.status_code}: {reason[:500]}")
        return answer.json().get("data") if answer.text else {}

    def fresh(self, body: dict | None = None) -> None:
        """The namespace made anew (its data, clock, rules and journal)."""
        path = f"/__sandbox/namespaces/{quote(self.namespace)}"
        self.control.request("DELETE", path)
        self.call("PUT", path, body or {}, what="making the namespace")
        self.business_id = None

    def business(self, params: dict) -> str | None:
        return params.get("business_id") or self.business_id


@functools.cache
def _chart() -> tuple[dict, ...]:
    chart = load_yaml(FIXTURES_DIR / "chart_of_accounts.yaml")
    names = ("stable_name", "name", "account_number", "normality", "account_type", "account_subtype")
    return tuple(dict(zip(names, row)) for row in chart["accounts"])


def _businesses(setup: Setup) -> list[dict]:
    return setup.call("GET", "/__sandbox/businesses", what="reading the businesses")


def _holds_customer(setup: Setup, business_id: str | None, customer_id: str) -> bool:
    businesses = _businesses(setup)
    business = next((b for b in businesses if b["id"] == business_id), None) if business_id else (
        businesses[0] if businesses else None)
    return business is not None and any(c["id"] == customer_id.lower() for c in business["customers"])


def a_business_exists(setup: Setup, params: dict) -> None:
    business_id = params.get("id") or params.get("business_id")
    if business_id is None:
        setup.business_id = None
        return
    if not any(b["id"] == str(business_id).lower() for b in _businesses(setup)):
        body = {"business_id": business_id, "ledger_accounts": list(_chart())}
        if params.get("name"):
            body["business_name"] = params["name"]
        setup.call("POST", "/__sandbox/fixtures", body, what="a business exists")
    setup.business_id = str(business_id).lower()


def a_record_exists(name: str):
    kind = FIXTURE_KINDS[name]

    def apply(setup: Setup, params: dict) -> None:
        business_id = setup.business(params)
        record = {key: value for key, value in params.items() if key != "business_id"}
        if kind == "customer_credits" and "amount" in record:
            amount = record.pop("amount")
            record.setdefault("line_items", [{"amount": amount, "revenue_account_identifier": {
                "type": "StableName", "stable_name": "SALES"}}])
        body = {kind: [record]}
        if kind in ("invoices", "customer_credits") and isinstance(record.get("customer_id"), str) and not (
                _holds_customer(setup, business_id, record["customer_id"])):
            body["customers"] = [{"id": record["customer_id"]}]  # in the same call: one export and import
        if business_id:
            body["business_id"] = business_id
        setup.call("POST", "/__sandbox/fixtures", body, what=name)

    return apply


def no_customer_credits_exist(setup: Setup, params: dict) -> None:
    state = setup.call("GET", "/__sandbox/state", what="no customer credits exist")
    business_id = setup.business(params)
    changed = False
    for position, business in enumerate(state["businesses"]):
        if (business["id"] == business_id) if business_id else position == 0:
            changed = bool(business["customer_credits"])
            business["customer_credits"] = []
    if changed:
        setup.call("PUT", "/__sandbox/state", state, what="no customer credits exist")


def the_clock_is_frozen_at(setup: Setup, params: dict) -> None:
    if not params.get("time"):
        raise StateError("the clock is frozen at: give the moment as the `time` parameter (ISO 8601)")
    setup.call("POST", "/__sandbox/clock", {"frozen_at": params["time"]}, what="the clock is frozen at")


def the_sandbox_is_seeded(setup: Setup, params: dict) -> None:
    unknown = sorted(set(params) - {"scenario", "seed"})
    if unknown:
        raise StateError(f"the sandbox is seeded takes scenario and seed, not {', '.join(unknown)}")
    setup.fresh(params)


def a_request_was_made(setup: Setup, params: dict) -> None:
    method, path = str(params.get("method", "GET")).upper(), params.get("path")
    if not isinstance(path, str) or not path.startswith("/"):
        raise StateError("a request was made: give the request's `path` (and `method`, `query`, `body`)")
    query = params.get("query")
    target = path + (f"?{query}" if query else "")
    body = params.get("body")
    answer = setup.api.request(method, target, headers={"Authorization": f"Bearer {API_TOKEN}",
                                                         NAMESPACE_HEADER: setup.namespace},
                               **({} if body is None else {"json": body}))
    if not 200 <= answer.status_code < 300:
        raise StateError(f"a request was made: {method} {target} was answered {answer.status_code}: "
                         f"{answer.text[:300]}")


BUILT_IN = {
    "a business exists": a_business_exists,
    **{name: a_record_exists(name) for name in FIXTURE_KINDS},
    "no customer credits exist": no_customer_credits_exist,
    "the clock is frozen at": the_clock_is_frozen_at,
    "the sandbox is seeded": the_sandbox_is_seeded,
    "a request was made": a_request_was_made,
}


def _normal(name: str) -> str:
    return " ".join(name.lower().split())


def _filled(template, params: dict, recipe: str):
    """`template` with `{name}` replaced by the state's parameter: a whole-string placeholder
    keeps the parameter's JSON type, one inside text is written into it."""
    if isinstance(template, dict):
        return {key: _filled(value, params, recipe) for key, value in template.items()}
    if isinstance(template, list):
        return [_filled(item, params, recipe) for item in template]
    if not isinstance(template, str):
        return template

    def value(name: str):
        if name not in params:
            raise StateError(f"the recipe {recipe!r} uses {{{name}}}, which this state's params do not give "
                             f"(given: {', '.join(sorted(params)) or 'none'})")
        return params[name]

    whole = _PLACEHOLDER.fullmatch(template)
    if whole:
        return value(whole.group(1))
    return _PLACEHOLDER.sub(lambda m: str(value(m.group(1))), template)


class StateBook:
    """The state names this run knows: the built-in ones and a team's recipes."""

    def __init__(self, recipes: dict | None = None) -> None:
        self.recipes = {_normal(name): recipe for name, recipe in (recipes or {}).items()}
        self._names = {_normal(name): name for name in list(BUILT_IN) + list(recipes or {})}

    @classmethod
    def from_yaml(cls, path) -> StateBook:
        """A --states file: `states:` mapping each name to its steps (a list), or to `params`
        (defaults) and `steps`. A step is one of `fixtures: {...}` (POST /__sandbox/fixtures),
        `clock: {...}` (POST /__sandbox/clock), `seed: {scenario, seed}`, `request: {method, path,
        query, body}` or `state: NAME` with `params: {...}`; `{param}` in any string is the
        state's parameter."""
        try:
            document = load_yaml(path)
        except OSError as exc:
            raise StatesFileError(f"{path}: cannot be read: {exc.strerror or exc}") from None
        except Exception as exc:  # yaml.YAMLError and its kin: the file is not YAML
            raise StatesFileError(f"{path}: is not YAML: {exc}") from None
        states = document.get("states") if isinstance(document, dict) else None
        if not isinstance(states, dict) or not states:
            raise StatesFileError(f"{path}: expected a top-level `states:` mapping of state names to recipes")
        recipes = {}
        for name, recipe in states.items():
            if isinstance(recipe, list):
                recipe = {"params": {}, "steps": recipe}
            if not isinstance(recipe, dict) or not isinstance(recipe.get("steps"), list) or not isinstance(
                    recipe.get("params", {}), dict) or set(recipe) - {"params", "steps", "description"}:
                raise StatesFileError(f"{path}: states.{name}: a list of steps, or `steps:` (and `params:`)")
            for n, step in enumerate(recipe["steps"]):
                kinds = set(step) & set(STEP_KINDS) if isinstance(step, dict) else set()
                if len(kinds) != 1 or set(step) - set(STEP_KINDS) - {"params"}:
                    raise StatesFileError(f"{path}: states.{name}.steps[{n}]: one of {', '.join(STEP_KINDS)}")
            recipes[str(name)] = recipe
        return cls(recipes)

    @property
    def names(self) -> list[str]:
        return sorted(self._names.values())

    def apply(self, setup: Setup, name: str, params: dict | None, depth: int = 0) -> None:
        params = dict(params or {})
        key = _normal(name)
        if depth > MAX_DEPTH:
            raise StateError(f"the state {name!r} calls states more than {MAX_DEPTH} deep")
        if key in self.recipes:
            recipe = self.recipes[key]
            self._run(setup, name, {**recipe.get("params", {}), **params}, recipe["steps"], depth)
        elif key in {_normal(n) for n in BUILT_IN}:
            BUILT_IN[next(n for n in BUILT_IN if _normal(n) == key)](setup, params)
        else:
            raise StateError(f"unknown provider state {name!r}; the states this sandbox knows: "
                             + "; ".join(self.names) + " (add your own with --states FILE)")
        setup.applied.append(name)

    def _run(self, setup: Setup, name: str, params: dict, steps: list, depth: int) -> None:
        for step in steps:
            kind = next(k for k in STEP_KINDS if k in step)
            body = _filled(step[kind], params, name)
            if kind == "fixtures":
                if setup.business_id and isinstance(body, dict) and "business_id" not in body and "business" not in body:
                    body = {**body, "business_id": setup.business_id}
                setup.call("POST", "/__sandbox/fixtures", body, what=name)
            elif kind == "clock":
                setup.call("POST", "/__sandbox/clock", body, what=name)
            elif kind == "seed":
                the_sandbox_is_seeded(setup, body or {})
            elif kind == "request":
                a_request_was_made(setup, body or {})
            else:
                self.apply(setup, str(body), _filled(step.get("params") or {}, params, name), depth + 1)
