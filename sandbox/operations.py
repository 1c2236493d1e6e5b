"""How connexion's Flask app calls the handlers: decorated once, with the values openapi-core
has already checked.

connexion wraps each handler in a `FlaskOperation` whose decorators are rebuilt on every request
(the handler's signature inspected again, a parameter decorator made again) and which parses
the path, query and body once more, after `sandbox.pipeline` had openapi-core parse and check
them: the same work twice per request, and a third of what a request cost. `prepare` swaps each
of the API's Flask views for one whose decorators are built once and which hands the handler
the values openapi-core produced (`sandbox.fastschema.Validated`), renamed as connexion names
them (`businessId` -> `business_id`, `body`). A request that was not checked (the benchmark's
validation-off switch) takes connexion's own path, unchanged.
"""

from __future__ import annotations

import functools

from connexion import context
from connexion.apps.flask import FlaskOperation
from connexion.decorators import FlaskDecorator
from connexion.decorators.parameter import inspect_function_arguments, pythonic, sanitized, unwrap_decorators
from connexion.decorators.response import SyncResponseDecorator
from connexion.frameworks.flask import Flask as FlaskFramework

from .pipeline import NOTES


class PreparedOperation:
    """A Flask view for one operation: the handler, called with openapi-core's values."""

    def __init__(self, view: FlaskOperation) -> None:
        handler = view._fn
        self.operation_id = view.operation_id
        self._parsed = FlaskDecorator(pythonic_params=view.pythonic_params, jsonifier=view.jsonifier)(handler)
        self._respond = SyncResponseDecorator(framework=FlaskFramework, jsonifier=view.jsonifier)(handler)
        arguments, self._any = inspect_function_arguments(unwrap_decorators(handler))
        self._arguments = frozenset(arguments)
        self._name = functools.lru_cache(maxsize=256)(pythonic if view.pythonic_params else sanitized)
        functools.update_wrapper(self, handler)

    def __call__(self, *args, **kwargs):
        validated = context.scope.get("extensions", {}).get(NOTES, {}).get("validated")
        if validated is None:
            return self._parsed(*args, **kwargs)
        values = {}
        for location in (validated.parameters.path, validated.parameters.query):
            for name, value in location.items():
                key = self._name(name)
                if self._any or key in self._arguments:
                    values[key] = value
        if validated.body is not None and (self._any or "body" in self._arguments):
            values["body"] = validated.body
        return self._respond(**values)


def prepare(flask_app) -> int:
    """Swap every connexion operation view of the Flask app for a prepared one; how many."""
    swapped = 0
    for endpoint, view in list(flask_app.view_functions.items()):
        if isinstance(view, FlaskOperation):
            flask_app.view_functions[endpoint] = PreparedOperation(view)
            swapped += 1
    return swapped
