"""Wiring: connexion's FlaskApp on openapi.yaml, the contract pipeline, handlers and errors.

Everything derived from the spec is built here, once: the YAML is parsed once and handed to
both connexion (routing) and openapi-core (validation).
"""

from __future__ import annotations

import copy
import json
from functools import partial

import connexion
import yaml
from connexion.jsonifier import Jsonifier
from connexion.middleware.exceptions import ExceptionMiddleware
from connexion.middleware.lifespan import LifespanMiddleware
from connexion.middleware.context import ContextMiddleware
from connexion.middleware.routing import RoutingMiddleware
from connexion.middleware.server_error import ServerErrorMiddleware
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.resolver import Resolver
from connexion.lifecycle import ConnexionResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from werkzeug.exceptions import HTTPException as WerkzeugHTTPException

from sandbox import control
from sandbox.config import Config
from sandbox.contract import BearerAuth, Contract, ContractMiddleware, UncheckedMarker
from sandbox.errors import JSON, ApiError, from_http_status, from_store_error, internal_error
from sandbox.handlers import CreditHandlers
from sandbox.runtime import Sandbox
from sandbox.store import StoreError

try:
    _Loader = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader


def load_spec(path) -> dict:
    with open(path, "rb") as stream:
        return yaml.load(stream, Loader=_Loader)


def _flask_response(error: ApiError):
    import flask

    return flask.Response(error.encode(), status=error.status, mimetype=JSON, headers=error.headers)


def _install_flask_error_handlers(flask_app) -> None:
    """Errors raised inside Flask become Layer errors there, so the contract step sees them."""
    flask_app.register_error_handler(ApiError, _flask_response)
    flask_app.register_error_handler(StoreError, lambda exc: _flask_response(from_store_error(exc)))
    flask_app.register_error_handler(
        WerkzeugHTTPException, lambda exc: _flask_response(from_http_status(exc.code, exc.description))
    )
    flask_app.register_error_handler(Exception, lambda exc: _flask_response(internal_error(exc)))


def _connexion_error(_request, exc) -> ConnexionResponse:
    """Errors raised above Flask (routing: unknown method, ...) become Layer errors too."""
    if isinstance(exc, StarletteHTTPException):
        error = from_http_status(exc.status_code, exc.detail)
    else:
        error = internal_error(exc)
    return ConnexionResponse(status_code=error.status, mimetype=JSON, body=error.encode(),
                             headers=dict(error.headers))


def create_app(config: Config = Config(), sandbox: Sandbox | None = None) -> connexion.FlaskApp:
    sandbox = sandbox or Sandbox(config)
    spec = load_spec(config.spec_path)
    contract = Contract(copy.deepcopy(spec))
    handlers = CreditHandlers(sandbox)
    operations = handlers.operations

    def resolve(operation_id: str):
        try:
            return operations[operation_id]
        except KeyError:
            raise LookupError(f"openapi.yaml has operation {operation_id!r} but the sandbox has no handler for it") from None

    middlewares = [
        UncheckedMarker,
        ServerErrorMiddleware,
        ExceptionMiddleware,
        SwaggerUIMiddleware,
        RoutingMiddleware,
        partial(ContractMiddleware, contract=contract, auth=BearerAuth(config.token)),
        LifespanMiddleware,
        ContextMiddleware,
    ]
    app = connexion.FlaskApp(
        __name__,
        middlewares=middlewares,
        jsonifier=Jsonifier(json, separators=(",", ":")),
        pythonic_params=True,
    )
    app.add_api(spec, resolver=Resolver(function_resolver=resolve))
    # Control routes keep the key order they build, compact, as the API responses do.
    app.app.json.sort_keys = False
    app.app.json.compact = True
    _install_flask_error_handlers(app.app)
    app.app.register_blueprint(control.blueprint(sandbox))
    app.add_error_handler(StarletteHTTPException, _connexion_error)
    app.add_error_handler(Exception, _connexion_error)
    app.sandbox = sandbox
    return app
