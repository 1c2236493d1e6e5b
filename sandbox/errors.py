"""The one error helper: every error the sandbox sends is Layer's `{"errors": [...]}` body.

`ApiError` carries a status and one Layer error item (`type`, `description`, `error_enum`,
optional `meta`); a 5xx item has no `error_enum`, as Layer sends it on 4xx errors only (openapi.yaml
holds both sides to it). Store errors, request-contract failures, auth failures, connexion's and
Flask's own HTTP errors and unexpected exceptions are all turned into one here, so that no
RFC 7807 `problem+json` body or stack trace ever reaches a client.
"""

from __future__ import annotations

import json
import logging

from .naming import NAMESPACE_HEADER, DefaultNamespace, NamespaceError, NamespaceLimit
from .store import InvalidInput, NotFound, RuleViolation, StoreError, StoreUnavailable

log = logging.getLogger("layer_sandbox.errors")

JSON = "application/json"

# status -> (type, error_enum). `SpecifiedBadRequest` and `SpecifiedIdNotFound` are the values
# Layer's SDK knows; the others are the sandbox's own (see README, "Errors"). 5xx have a type
# only: Layer sends no error_enum on them.
KINDS = {
    400: ("InvalidRequest", "SpecifiedBadRequest"),
    401: ("Unauthorized", "Unauthorized"),
    404: ("NotFound", "SpecifiedIdNotFound"),
    405: ("MethodNotAllowed", "MethodNotAllowed"),
    408: ("RequestTimeout", "RequestTimeout"),
    413: ("PayloadTooLarge", "PayloadTooLarge"),
    415: ("UnsupportedMediaType", "UnsupportedMediaType"),
    422: ("UnprocessableEntity", "SpecifiedBadRequest"),
    431: ("RequestHeaderFieldsTooLarge", "RequestHeaderFieldsTooLarge"),
    500: ("InternalError", None),
    503: ("ServiceUnavailable", None),
}
# Seconds a 503 asks the client to wait (`Retry-After`): a restarted sandbox is back within one.
SHUTDOWN_RETRY_AFTER = "1"


class ApiError(Exception):
    def __init__(self, status: int, description: str, meta: dict | None = None,
                 headers: dict[str, str] | None = None, kind: tuple[str, str | None] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.meta = meta
        self.headers = headers or {}
        self.kind = kind or KINDS.get(status, ("Error", "Error"))

    def body(self) -> dict:
        error_type, error_enum = self.kind
        item = {"type": error_type, "description": self.description}
        if self.status < 500:  # Layer's error_enum is a 4xx thing; a server error has none
            item["error_enum"] = error_enum
        if self.meta:
            item["meta"] = self.meta
        return {"errors": [item]}

    def encode(self) -> bytes:
        return json.dumps(self.body(), separators=(",", ":")).encode()


def bad_request(description: str, **meta) -> ApiError:
    return ApiError(400, description, meta or None)


def unauthorized(description: str) -> ApiError:
    return ApiError(401, description, headers={"WWW-Authenticate": 'Bearer realm="layer-sandbox"'})


def contract_violation(description: str, violations: list[str]) -> ApiError:
    return ApiError(500, description, {"violations": violations}, kind=("SandboxContractViolation", None))


def shutting_down() -> ApiError:
    """A request still arriving when a shutdown's grace ran out: nothing was done, and the
    connection closes; `Retry-After` says when the restarted sandbox may take it again."""
    return ApiError(503, "The sandbox is shutting down; this request was not processed, retry it",
                    headers={"Connection": "close", "Retry-After": SHUTDOWN_RETRY_AFTER})


def internal_error(exc: BaseException) -> ApiError:
    """A bug in the sandbox: logged with its traceback, reported without one."""
    log.error("unhandled error in the sandbox", exc_info=exc)
    return ApiError(500, f"The sandbox failed to handle this request ({type(exc).__name__}); "
                         "see the sandbox's log")


def from_store_error(exc: StoreError) -> ApiError:
    meta = {"field": exc.field} if exc.field else {}
    meta.update(exc.meta)
    if isinstance(exc, NotFound):
        return ApiError(404, exc.message, meta or None)
    if isinstance(exc, RuleViolation):
        return ApiError(422, exc.message, meta or None)
    if isinstance(exc, InvalidInput):
        return ApiError(400, exc.message, meta or None)
    return ApiError(400, exc.message, meta or None)


def store_unavailable(exc: StoreUnavailable) -> ApiError:
    """The store (Redis) cannot be reached, or a write kept losing its race: nothing was changed,
    and the client may retry after `Retry-After`; the sandbox reconnects by itself."""
    log.warning("store unavailable: %s", exc)
    if exc.in_doubt:
        return ApiError(503, f"The sandbox's store became unavailable during this write ({exc})",
                        {"reason": "store_in_doubt"}, headers={"Retry-After": SHUTDOWN_RETRY_AFTER})
    return ApiError(503, f"The sandbox's store is unavailable; nothing was changed, retry shortly ({exc})",
                    {"reason": "store_unavailable"}, headers={"Retry-After": SHUTDOWN_RETRY_AFTER})


def from_namespace_error(exc: NamespaceError, named_in: str) -> ApiError:
    """A namespace the sandbox cannot give: a bad name is the client's (400), naming where the
    name came from (`named_in`: the `header`, a `/__ns/NAME` `prefix` of the URL, or the route's
    own `name`); the namespace limit is the sandbox's own (503, until one is deleted); the default
    namespace is never deleted (409)."""
    where = {"header": {"location": "header", "field": NAMESPACE_HEADER},
             "prefix": {"location": "path", "field": "/__ns/{namespace}"},
             "name": {"location": "path", "field": "name"}}[named_in]
    if isinstance(exc, NamespaceLimit):
        return ApiError(503, f"No new namespace: {exc}", {"reason": "namespace_limit"})
    if isinstance(exc, DefaultNamespace):
        return ApiError(409, str(exc), {"field": "name"}, kind=("Conflict", "DefaultNamespace"))
    return ApiError(400, str(exc), where)


def from_http_status(status: int, detail: str | None = None) -> ApiError:
    """An error for routing-level failures (unknown path, wrong method, ...)."""
    descriptions = {
        404: ("No such route. Layer's routes live under /v1/businesses/{businessId}/ (invoices/customer-credits, "
              "customers, invoices, auth-token), and at /oauth2/token and /whoami; the sandbox's own under /__sandbox/"),
        405: "This route does not take that method",
    }
    return ApiError(status, descriptions.get(status) or detail or "Request failed")


class OAuthError(ApiError):
    """An error of the token endpoint, in OAuth 2.0's own shape (RFC 6749, section 5.2):
    `{"error": "invalid_client", "error_description": "..."}`, not Layer's `errors` list, as
    Layer's authorization server answers. `invalid_client` is a 401 that names the Basic scheme."""

    def __init__(self, code: str, description: str) -> None:
        status = 401 if code == "invalid_client" else 400
        headers = {"WWW-Authenticate": 'Basic realm="layer-sandbox"'} if status == 401 else {}
        super().__init__(status, description, headers={**headers, "Cache-Control": "no-store"})
        self.code = code

    def body(self) -> dict:
        return {"error": self.code, "error_description": self.description}

    @classmethod
    def from_api_error(cls, error: ApiError) -> ApiError:
        """A request the contract refused, told as OAuth tells it: missing or malformed client
        credentials are `invalid_client`; any other malformed request (a JSON body, no
        grant_type) is `invalid_request`. A 413 or 429 keeps Layer's own body."""
        if isinstance(error, OAuthError) or error.status not in (400, 401, 415):
            return error
        if error.status == 401:
            return cls("invalid_client", "Client authentication failed: send the client id and secret with "
                                         "HTTP Basic (Authorization: Basic base64(id:secret))")
        field = (error.meta or {}).get("field")
        given = "required property" not in error.description  # a value was sent, and is not one offered
        if field == "grant_type" and given:
            return cls("unsupported_grant_type", f"{error.description}; use client_credentials")
        if field == "scope" and given:
            return cls("invalid_scope", f"{error.description}; ask for Layer's sandbox scope, or none")
        return cls("invalid_request", error.description)
