"""The request pipeline: every `/v1` call passes through here, in one ordered sequence.

`Pipeline` sits right after connexion's routing. For a request routed to an operation of
`openapi.yaml` it:

1. reads the whole body (validation needs it; the handler gets it replayed);
2. picks the namespace (`X-Sandbox-Namespace`, created on first use);
3. authenticates the bearer token (401);
4. spends one request of the token's rate limit, when `--rate-limit` is on (429);
5. validates the request against the contract with openapi-core (400 / 415 naming the field),
   unless the benchmark-only switch turned validation off;
6. follows a forced response (`Prefer` header, else the first of the namespace's rules that
   its operation can follow), answered as a real one of its status is (`_forced`), or
7. runs the handler (through connexion's Flask app, on this same thread: `sandbox.inline_wsgi`)
   and buffers its response;
8. validates that response with openapi-core, whichever step produced it; one that breaks the
   contract is logged and replaced by a 500 Layer error naming each violation;
9. stamps `X-Sandbox-Contract` (and the rate-limit headers), waits any forced delay, and sends,
   or breaks the connection as a forced fault asks;
10. folds a long `--state-file` log into a new snapshot, now that no lock is held.

`Edge`, the outermost middleware (it holds the server's own `send`, so that a forced fault can
break the connection), times every request, reads its body before anything else sees it (413
over `--max-body-bytes`, 408 when the client stalls mid-body, nothing at all when it hangs up
mid-body: a half-sent request changes nothing), marks responses that no operation produced as
unchecked, and writes the journal entry from what the pipeline noted on the way.
Everything derived from the spec is built once, with the app.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time

from werkzeug.datastructures import Headers

from . import webpage
from .auth import Authenticator
from .contract import BearerAuth, Contract, ContractRequest, ContractResponse
from .errors import (
    JSON,
    SHUTDOWN_RETRY_AFTER,
    ApiError,
    OAuthError,
    bad_request,
    contract_violation,
    from_namespace_error,
    internal_error,
    shutting_down,
    store_unavailable,
    unauthorized,
)
from .forced import ResponseCatalog
from .inline_wsgi import read_body
from .journal import Journal
from .ratelimit import LAYER_SANDBOX_LIMIT, RateLimiter
from .rules import Directive, DirectiveError, parse_prefer
from .runtime import NAMESPACE_HEADER, REQUEST_NAMESPACES, NamespaceError, Sandbox
from .store import StoreUnavailable

log = logging.getLogger("layer_sandbox.contract")

ROUTING_CONTEXT = "connexion_routing"
NOTES = "layer_sandbox"
CONTRACT_HEADER = "X-Sandbox-Contract"
UNCHECKED_PATHS = ("/__sandbox", "/ui", "/openapi.json")
_UNROUTABLE = re.compile("[\x00-\x1f\x7f?#]")
_DOT_SEGMENT = re.compile(r"(^|/)\.\.?(/|$)")
NAMESPACE_PREFIX = "/__ns/"
# The token endpoint authenticates the client (HTTP Basic), not a bearer token, and answers
# errors in OAuth's shape. It and the auth-token routes answer with a token: their bodies are
# never kept in the journal.
CLIENT_AUTH_OPERATIONS = frozenset({"oauth2.token.post"})
TOKEN_OPERATIONS = frozenset({"oauth2.token.post", "business.auth-token.post", "business.auth-token.get"})


def _headers(raw) -> Headers:
    return Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw])


def _error_response(error: ApiError) -> ContractResponse:
    return ContractResponse(error.status, Headers({"content-type": JSON, **error.headers}), error.encode())


class Pipeline:
    """ASGI middleware placed after connexion's routing; see the module docstring."""

    def __init__(self, app, *, sandbox: Sandbox, contract: Contract, auth: Authenticator,
                 catalog: ResponseCatalog, rate_limiter: RateLimiter | None, validate: bool = True) -> None:
        self.app = app
        self.sandbox = sandbox
        self.contract = contract
        self.auth = auth
        self.catalog = catalog
        self.rate_limiter = rate_limiter
        # What a forced 429 reports: the --rate-limit, else Layer's sandbox limit (never spent).
        self.limits = rate_limiter or RateLimiter(LAYER_SANDBOX_LIMIT)
        self.validate = validate  # False only for the benchmark's validation-off run

    async def __call__(self, scope, receive, send) -> None:
        operation_id = scope.get("extensions", {}).get(ROUTING_CONTEXT, {}).get("operation_id")
        if scope["type"] != "http" or operation_id is None:
            await self.app(scope, receive, send)
            return
        resolved = REQUEST_NAMESPACES.set({})  # each namespace read once for this request
        try:
            await self._handle(scope, receive, send, operation_id)
        finally:
            REQUEST_NAMESPACES.reset(resolved)

    async def _handle(self, scope, receive, send, operation_id: str) -> None:
        notes = scope["extensions"].setdefault(NOTES, {})
        if scope["method"] == "HEAD":  # Starlette routes HEAD to GET operations; Layer has none
            allow = self.contract.allowed_methods(scope["path"]) or "GET"
            error = ApiError(405, "This route does not take HEAD", headers={"Allow": allow})
            await self._send(scope, send, _error_response(error), None, notes, unchecked=True)
            return
        notes["operation_id"] = operation_id
        if operation_id in TOKEN_OPERATIONS:
            notes["secret"] = True
        client_auth = operation_id in CLIENT_AUTH_OPERATIONS

        body = await read_body(receive)
        headers = _headers(scope["headers"])
        request = ContractRequest(scope, headers, body)
        extra_headers: dict[str, str] = {}
        directive = Directive()

        # The token and the contract are judged whatever the namespace, so that the journal says
        # whether the request itself kept the contract even when the sandbox cannot give it a
        # namespace; the namespace's problem is the one answered. A request without a valid token
        # makes no namespace.
        if client_auth:  # the client's Basic credentials (the body's client_id is the handler's)
            try:
                self.auth.authenticate_client(headers, None)
                error = None
            except OAuthError as refusal:
                error = refusal
        else:
            try:
                error = self.auth.check(headers, scope.get("path_params", {}).get("businessId"))
            except StoreUnavailable as exc:  # an issued token's namespace is read from the store
                error = store_unavailable(exc)
        namespace = namespace_error = None
        if error is None:
            try:
                if len(headers.getlist(NAMESPACE_HEADER)) > 1:
                    raise NamespaceError(f"{NAMESPACE_HEADER} is given more than once")
                namespace = self.sandbox.namespace(headers.get(NAMESPACE_HEADER))
            except NamespaceError as exc:
                namespace_error = from_namespace_error(exc, "prefix" if notes.get("namespace_from_path") else "header")
            except StoreUnavailable as exc:
                namespace_error = store_unavailable(exc)
        if not self.validate:
            notes["request_validation"] = "skipped"
        else:
            # A token scoped to another business gets a 404, yet the request itself kept the
            # contract: it is judged too. A request without a valid token is not (a 401 fails it).
            refused = error is not None and error.status == 401
            contract_error = None if refused else self.contract.request_error(request, operation_id)
            error = error or contract_error
            notes["request_validation"] = "fail" if refused or contract_error else "pass"
            notes["validated"] = request.validated  # what the handler is called with (sandbox.operations)
        error = namespace_error or error
        if error is not None and client_auth:
            error = OAuthError.from_api_error(error)
        if error is None and self.rate_limiter is not None:
            # A token request is counted against its client's credentials, as an API call against its token.
            caller = headers.get("authorization", "") if client_auth else BearerAuth.token_of(headers)
            try:
                allowed, extra_headers = self.rate_limiter.take(caller)
                if not allowed:
                    error = self.rate_limiter.refusal(extra_headers)
            except StoreUnavailable as exc:  # the buckets of every replica are in the store
                error = store_unavailable(exc)

        response = None
        if error is None:
            try:
                directive, source = self._directive(headers, namespace, scope, operation_id)
                forced = self.catalog.forced(operation_id, directive, source)
            except DirectiveError as exc:
                error = bad_request(str(exc), location="header", field="Prefer")
            except StoreUnavailable as exc:  # the namespace's rules are in the store
                error = store_unavailable(exc)
            except ApiError as exc:
                error = exc
            else:
                if forced is not None:
                    response, forced_headers = self._forced(*forced, operation_id)
                    extra_headers.update(forced_headers)
        if error is not None:
            response = _error_response(error)
        elif response is None:
            response = await self._call_handler(scope, receive, body)

        violations = self.contract.response_violations(request, response) if self.validate else []
        notes["response_validation"] = ("fail" if violations else "pass") if self.validate else "skipped"
        if violations:
            log.error(
                "contract violation: %s %s -> %s would break openapi.yaml: %s",
                scope["method"], scope["path"], response.status_code, "; ".join(violations),
            )
            notes["violation"] = violations[0]
            response = _error_response(contract_violation(
                f"The sandbox's {response.status_code} response to {operation_id} breaks "
                f"openapi.yaml: {'; '.join(violations)}",
                violations,
            ))
        elif error is not None:
            notes["error"] = error.description
            notes["field"] = (error.meta or {}).get("field")
        elif response.status_code >= 400:  # the handler's own Layer error (404, 422, ...)
            try:
                item = json.loads(response.data)["errors"][0]
                notes["error"], notes["field"] = item["description"], (item.get("meta") or {}).get("field")
            except (ValueError, KeyError, IndexError, TypeError):
                pass

        for name, value in extra_headers.items():
            response.headers[name] = value
        response.headers[CONTRACT_HEADER] = (
            f"request={notes['request_validation']}; response={notes['response_validation']}")
        response.headers["content-length"] = str(len(response.data))
        if directive.delay_ms:
            try:
                await asyncio.sleep(directive.delay_ms / 1000)
            except asyncio.CancelledError:
                # A shutdown whose grace ran out: the answer is ready and true, so it goes now
                # instead of the server's plain-text 500 for a cancelled request.
                notes["forced"] = f"{notes.get('forced')}; delay cut short by shutdown"
        await self._send(scope, send, response, directive.fault, notes)
        self.sandbox.compact_if_due()

    def _directive(self, headers: Headers, namespace, scope, operation_id: str) -> tuple[Directive, str]:
        """The request's own `Prefer`, else the first rule of its namespace that matches it and
        that its operation can follow; with where it came from (`Prefer` or the rule's id)."""
        notes = scope["extensions"][NOTES]
        directive = parse_prefer(headers.get("prefer"))
        if not directive.empty:
            notes["forced"] = f"Prefer: {directive.describe()}"
            return directive, "Prefer"
        rule = namespace.rules.match(scope["method"], scope["path"], operation_id)
        if rule is None:
            return directive, "Prefer"
        notes["forced"] = f"{rule.id}: {rule.directive.describe()}"
        return rule.directive, rule.id

    def _forced(self, status: int, body: bytes, operation_id: str) -> tuple[ContractResponse, dict[str, str]]:
        """A forced answer as a real one of its status is sent, and the headers that must win over
        the rate limiter's: a 429 is the limiter's own refusal (its limit, an empty bucket, the
        next refill, `Retry-After`), a 503 says when to retry as the shutdown's 503 does."""
        if status == 429:
            refusal = self.limits.exhausted()
            return _error_response(refusal), refusal.headers
        headers = {"content-type": JSON}
        if status == 503:
            headers["Retry-After"] = SHUTDOWN_RETRY_AFTER
        if status == 401:  # as a real 401 names the scheme to authenticate with
            scheme = "Basic" if operation_id in CLIENT_AUTH_OPERATIONS else "Bearer"
            headers["WWW-Authenticate"] = f'{scheme} realm="layer-sandbox"'
        return ContractResponse(status, Headers(headers), body), {}

    async def _send(self, scope, send, response: ContractResponse, fault: str | None, notes: dict,
                    unchecked: bool = False) -> None:
        if unchecked:
            response.headers["content-length"] = str(len(response.data))
        close = notes.get("close")
        if fault is not None and close is not None:
            notes["fault"] = fault
        else:
            fault = None
        if fault == "drop":
            close()
            await asyncio.sleep(0)  # let the server see the connection go before we return
            return
        await send({
            "type": "http.response.start",
            "status": response.status_code,
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()],
        })
        if fault == "empty":
            close()
            await asyncio.sleep(0)
            return
        if fault == "truncate":
            await send({"type": "http.response.body", "body": response.data[: len(response.data) // 2],
                        "more_body": True})
            close()
            await asyncio.sleep(0)
            return
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else response.data})

    async def _call_handler(self, scope, receive, body: bytes) -> ContractResponse:
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, _replay(body, receive), capture)
        headers = _headers(start.get("headers", []))
        headers.pop("content-length", None)
        return ContractResponse(start.get("status", 500), headers, b"".join(chunks))


def _replay(body: bytes, receive):
    """A `receive` that hands over the body already read, then waits on the real one (which
    reports a disconnect)."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _namespace_from_path(scope: dict) -> dict:
    """`/__ns/NAME/rest` is `/rest` with `X-Sandbox-Namespace: NAME`: a base URL alone can then
    point a client that cannot add headers (code under test) at its own namespace."""
    name, _, rest = scope["path"][len(NAMESPACE_PREFIX):].partition("/")
    header = NAMESPACE_HEADER.lower().encode()
    headers = [(k, v) for k, v in scope["headers"] if k.lower() != header]
    return {**scope, "path": "/" + rest, "raw_path": ("/" + rest).encode(),
            "headers": headers + [(header, name.encode("utf-8", "surrogateescape"))]}


class Edge:
    """Outermost ASGI middleware: timing, the unchecked mark, the journal, the connection."""

    UNCHECKED = (CONTRACT_HEADER.lower().encode(), b"request=skipped; response=skipped")

    def __init__(self, app, *, journal: Journal, max_body_bytes: int, client_timeout: float,
                 admin_token: str | None = None) -> None:
        self.app = app
        self.journal = journal
        self.admin_token = admin_token
        self.max_body_bytes = max_body_bytes
        self.client_timeout = client_timeout

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        from_path = scope["path"].startswith(NAMESPACE_PREFIX)
        if from_path:
            scope = _namespace_from_path(scope)
        if _UNROUTABLE.search(scope["path"]) or _DOT_SEGMENT.search(scope["path"]):
            # No route has any of these. Starlette and werkzeug disagree on whether `[^/]+` takes
            # a newline; and routing takes a `..` segment (%2e%2e), or an id holding `?` or `#`
            # (%3F, %23), as an id, where openapi-core's URL join resolves the segment away or
            # ends the path at the `?` or `#`: the two would judge, and the handler act on,
            # different ids.
            await self._refuse(scope, send, started)
            return
        notes = scope.setdefault("extensions", {}).setdefault(NOTES, {})
        if from_path:
            notes["namespace_from_path"] = True
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is not None:
            notes["close"] = transport.abort
        journaled = scope["method"] == "OPTIONS" or scope["path"].startswith(UNCHECKED_PATHS)
        responded = False
        body = None
        entry = None

        async def mark(message) -> None:
            nonlocal journaled, responded, entry
            if message["type"] == "http.response.start":
                responded = True
                headers = list(message.get("headers", []))
                if not any(name.lower() == self.UNCHECKED[0] for name, _ in headers):
                    message = {**message, "headers": headers + [self.UNCHECKED]}
                if not journaled:
                    # Journal before any byte leaves: a client that reads the journal right after
                    # its response must find the entry there (its body follows as it is sent).
                    # A token's request and answer keep no body (credentials, the token).
                    journaled = True
                    secret = notes.get("secret")
                    entry = self._record(scope, notes, message["status"], started, None if secret else body,
                                         withheld="a token route: its bodies hold credentials or a token"
                                         if secret else None, deferred=not secret)
                    if secret:
                        entry = None
            elif message["type"] == "http.response.body" and entry is not None:
                self.journal.add_body(entry, message.get("body", b""), final=not message.get("more_body", False))
            await send(message)

        try:
            if self._needs_admin(scope):
                await self._refuse(scope, send, started, unauthorized(
                    "The control routes under /__sandbox/ take only the --admin-token; send 'Authorization: Bearer <admin token>'"))
                journaled = True
                return
            try:
                body = await self._body(scope, receive)
            except ApiError as refusal:
                await self._refuse(scope, send, started, refusal)
                journaled = True
                return
            if body is None:  # the client hung up before its body was whole: nothing to do
                return
            await self.app(scope, _replay(body, receive), mark)
        except (asyncio.CancelledError, Exception) as exc:  # noqa: BLE001 -- answered here, logged
            # Left unanswered by everything inside: a shutdown whose grace ran out (uvicorn
            # cancels what is left) or a bug above connexion's own error handling. uvicorn would
            # send plain text; a request still arriving gets a Layer 503 (nothing was done), a bug
            # a Layer 500 (its traceback to the log only), and an answer already on its way is cut.
            if responded:
                if "close" in notes:
                    notes["close"]()
                return
            error = internal_error(exc) if not isinstance(exc, asyncio.CancelledError) else shutting_down()
            await self._refuse(scope, send, started, error)
            journaled = True
        finally:
            if not journaled:  # no response was started: a dropped connection, or a failure
                self._record(scope, notes, None, started, body)

    def _needs_admin(self, scope) -> bool:
        """Whether this is a control route (health aside: container health checks use it) and the
        request lacks the --admin-token that was set. The dashboard's page and files are open
        (see webpage.is_open); the page sends the token on every control route it reads."""
        path = scope["path"]
        if self.admin_token is None or scope["method"] == "OPTIONS" or path == "/__sandbox/health":
            return False
        if path != "/__sandbox" and not path.startswith("/__sandbox/"):
            return False
        headers = _headers(scope["headers"])
        if webpage.is_open(scope["method"], path, headers.get("accept")):
            return False
        token = BearerAuth.token_of(headers) or ""
        return not hmac.compare_digest(token.encode(), self.admin_token.encode())

    async def _body(self, scope, receive) -> bytes | None:
        """The whole body, or None when the client disconnected first; ApiError 413 / 408."""
        declared = next((v for k, v in scope["headers"] if k.lower() == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise ApiError(413, f"The request body exceeds {self.max_body_bytes} bytes", headers={"Connection": "close"})
        chunks, size = [], 0
        while True:
            try:
                async with asyncio.timeout(self.client_timeout):  # no task per message, as wait_for makes
                    message = await receive()
            except TimeoutError:
                raise ApiError(408, f"The request body stalled for {self.client_timeout:g} s",
                               headers={"Connection": "close"}) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise ApiError(413, f"The request body exceeds {self.max_body_bytes} bytes", headers={"Connection": "close"})
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _refuse(self, scope, send, started: float, error: ApiError | None = None) -> None:
        """Answer before routing: a path no route can have, a body too large or too slow."""
        error = error or ApiError(404, "No such route: the path holds a control character, '?' or '#' (decoded), "
                                       "or a '.' or '..' segment")
        body = error.encode()
        extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers.items()]
        await send({"type": "http.response.start", "status": error.status, "headers": [
            (b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode()), self.UNCHECKED, *extra]})
        await send({"type": "http.response.body", "body": body})
        self._record(scope, {"error": error.description}, error.status, started)

    def _record(self, scope, notes: dict, status: int | None, started: float, body: bytes | None = None,
                withheld: str | None = None, deferred: bool = False) -> dict:
        """The journal entry of a request. `deferred`: its response body follows (`add_body`),
        and a journal kept elsewhere (Redis) may write the entry with the first part of it, in one
        round trip, still before any byte of the body leaves."""
        headers = _headers(scope["headers"])
        entry = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "namespace": headers.get(NAMESPACE_HEADER) or "default",
            "operation_id": notes.get("operation_id"),
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3),
            "request_validation": notes.get("request_validation", "skipped"),
            "response_validation": notes.get("response_validation", "skipped"),
            "error": notes.get("violation") or notes.get("error"),
            "field": notes.get("field"),
            "forced": notes.get("forced"),
            "fault": notes.get("fault"),
        }
        if withheld is not None:
            entry["bodies_withheld"] = withheld
        self.journal.record(entry, body, deferred=deferred)
        return entry
