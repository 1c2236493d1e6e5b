"""Wiring: connexion's FlaskApp on openapi.yaml, the contract pipeline, handlers and errors.

Everything derived from the spec is built here, once: the YAML is parsed once and handed to
both connexion (routing) and openapi-core (validation).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from functools import partial

import connexion
from connexion.jsonifier import Jsonifier
from connexion.lifecycle import ConnexionResponse
from connexion.middleware.context import ContextMiddleware
from connexion.middleware.exceptions import ExceptionMiddleware
from connexion.middleware.lifespan import LifespanMiddleware
from connexion.middleware.routing import RoutingMiddleware
from connexion.middleware.server_error import ServerErrorMiddleware
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.options import SwaggerUIOptions
from connexion.resolver import Resolver
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from werkzeug.exceptions import HTTPException as WerkzeugHTTPException

from . import control
from . import operations as operations_module
from .config import LOCALHOST_ORIGINS, Config
from .auth import Authenticator
from .contract import Contract
from .errors import (
    JSON,
    ApiError,
    from_http_status,
    from_store_error,
    internal_error,
    store_unavailable,
)
from .forced import ResponseCatalog
from .handlers import Handlers
from .inline_wsgi import InlineWSGI
from .jsontext import ResponseJson
from .pipeline import CONTRACT_HEADER, Edge, Pipeline
from .resources import load_spec
from .runtime import NAMESPACE_HEADER, Sandbox, open_sandbox
from .store import StoreError, StoreUnavailable

log = logging.getLogger("layer_sandbox")

def _flask_response(error: ApiError):
    import flask

    return flask.Response(error.encode(), status=error.status, mimetype=JSON, headers=error.headers)


def _werkzeug_error(exc: WerkzeugHTTPException):
    error = from_http_status(exc.code, exc.description)
    allow = dict(exc.get_headers()).get("Allow")
    if allow:
        error.headers["Allow"] = allow
    return _flask_response(error)


def _install_flask_error_handlers(flask_app) -> None:
    """Errors raised inside Flask become Layer errors there, so the contract step sees them."""
    flask_app.register_error_handler(ApiError, _flask_response)
    flask_app.register_error_handler(StoreError, lambda exc: _flask_response(from_store_error(exc)))
    flask_app.register_error_handler(StoreUnavailable, lambda exc: _flask_response(store_unavailable(exc)))
    flask_app.register_error_handler(WerkzeugHTTPException, _werkzeug_error)
    flask_app.register_error_handler(Exception, lambda exc: _flask_response(internal_error(exc)))


def _connexion_errors(contract: Contract):
    def handle(request, exc) -> ConnexionResponse:
        """Errors raised above Flask (routing: unknown method, ...) become Layer errors too."""
        if isinstance(exc, StarletteHTTPException):
            error = from_http_status(exc.status_code, exc.detail)
            if exc.status_code == 405:  # every method of the path, not just one route's
                error.headers["Allow"] = contract.allowed_methods(request.url.path) or (exc.headers or {}).get("Allow", "")
        else:
            error = internal_error(exc)
        return ConnexionResponse(status_code=error.status, mimetype=JSON, body=error.encode(),
                                 headers=dict(error.headers))

    return handle


class _Routing(RoutingMiddleware):
    """connexion's routing without Starlette's trailing-slash redirect (a bodiless 307): a path
    with a stray slash is a plain 404 Layer error like any other unknown path."""

    def add_api(self, *args, **kwargs) -> None:
        super().add_api(*args, **kwargs)
        self.router.redirect_slashes = False
        for route in self.router.routes:
            if hasattr(getattr(route, "app", None), "redirect_slashes"):
                route.app.redirect_slashes = False


def _cors(config: Config):
    """Starlette's CORS middleware: preflights answered, the sandbox's headers exposed."""
    origins = {"allow_origins": list(config.cors_origins)} if config.cors_origins else {
        "allow_origin_regex": LOCALHOST_ORIGINS}
    return partial(
        CORSMiddleware,
        **origins,
        allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
        # Layer's React SDK adds Layer-Locale, Layer-React-Version and (on writes) Cache-Control.
        allow_headers=["Authorization", "Content-Type", "Prefer", NAMESPACE_HEADER, "Layer-Locale",
                       "Layer-React-Version", "Cache-Control"],
        expose_headers=[CONTRACT_HEADER, "X-RateLimit-Limit", "X-RateLimit-Remaining",
                        "X-RateLimit-Reset", "Retry-After"],
        max_age=600,
    )


def create_app(config: Config | None = None, sandbox: Sandbox | None = None) -> connexion.FlaskApp:
    config = config or Config()
    sandbox = sandbox or open_sandbox(config)
    spec = load_spec(config.spec_path)
    contract = Contract(copy.deepcopy(spec))
    auth = Authenticator(config.clients, config.tokens, sandbox.clock_of, sandbox.token_book(), sandbox.whoami_key())
    handlers = Handlers(sandbox, auth)
    operations = handlers.operations
    journal = sandbox.journal(config.journal_size)
    catalog = ResponseCatalog(spec)  # forced answers, and the judge of rules (control routes)

    def resolve(operation_id: str):
        try:
            return operations[operation_id]
        except KeyError:
            raise LookupError(f"openapi.yaml has operation {operation_id!r} but the sandbox has no handler for it") from None

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        if sandbox.state_file is not None:  # SIGTERM / SIGINT end here, after in-flight requests
            written = sandbox.checkpoint()
            sandbox.state_file.close()
            log.info("saved %d namespaces (%d bytes) to %s", len(sandbox.list_namespaces()), written, config.state_file)

    middlewares = [
        partial(Edge, journal=journal, max_body_bytes=config.max_body_bytes, client_timeout=config.client_timeout,
                admin_token=config.admin_token),
        _cors(config),
        ServerErrorMiddleware,
        ExceptionMiddleware,
        SwaggerUIMiddleware,
        _Routing,
        partial(
            Pipeline,
            sandbox=sandbox,
            contract=contract,
            auth=auth,
            catalog=catalog,
            rate_limiter=sandbox.rate_limiter(config.rate_limit) if config.rate_limit else None,
            validate=config.validate,
        ),
        LifespanMiddleware,
        ContextMiddleware,
    ]
    app = connexion.FlaskApp(
        __name__,
        middlewares=middlewares,
        lifespan=lifespan,
        jsonifier=Jsonifier(ResponseJson),
        pythonic_params=True,
        swagger_ui_options=SwaggerUIOptions(swagger_ui_config={"persistAuthorization": True}),
    )
    app.add_api(spec, resolver=Resolver(function_resolver=resolve))
    # Flask runs on the event loop's thread, not on a2wsgi's worker threads: see inline_wsgi.
    app._middleware_app.asgi_app = InlineWSGI(app.app.wsgi_app)
    # Control routes keep the key order they build, compact, as the API responses do.
    app.app.json.sort_keys = False
    app.app.json.compact = True
    _install_flask_error_handlers(app.app)
    app.app.register_blueprint(control.blueprint(sandbox, journal, catalog))
    app.add_error_handler(StarletteHTTPException, _connexion_errors(contract))
    app.add_error_handler(Exception, _connexion_errors(contract))
    # connexion builds its middleware stack, and with it the API's Flask views, on the first
    # request; built here, start-up does the work once and the views can be prepared. Handlers
    # get the values openapi-core checked, through views decorated once: see sandbox.operations.
    middleware = app.middleware
    middleware.app, middleware.middleware_stack = middleware._build_middleware_stack()
    if operations_module.prepare(app.app) != len(operations):
        raise RuntimeError("connexion's Flask app does not hold one view per operation of openapi.yaml")
    app.sandbox = sandbox
    return app
