"""The contract pipeline: every `/v1` call passes through here, in one ordered sequence.

For a request that connexion routed to an operation of `openapi.yaml`:

1. read the whole body (validation needs it; the handler gets it replayed);
2. authenticate the bearer token (401);
3. validate the request against the contract with openapi-core (400 / 415 naming the field);
4. run the handler (through connexion's Flask app) and buffer its response;
5. validate that response with openapi-core, whichever step produced it; a response that breaks
   the contract is logged and replaced by a 500 Layer error naming each violation;
6. stamp `X-Sandbox-Contract` with both outcomes and send.

The openapi-core validators are built once, when the app is built, never per request.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from openapi_core import Config as OpenAPIConfig
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
from openapi_core.validation.request.exceptions import (
    MissingRequestBodyError,
    ParameterValidationError,
    RequestBodyValidationError,
)
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from werkzeug.datastructures import Headers, ImmutableMultiDict

from sandbox.errors import JSON, ApiError, bad_request, contract_violation, unauthorized

log = logging.getLogger("sandbox.contract")

ROUTING_CONTEXT = "connexion_routing"
CONTRACT_HEADER = "X-Sandbox-Contract"
_TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")


class _Request:
    """An ASGI request as openapi-core's `Request` protocol wants it."""

    def __init__(self, scope: dict, headers: Headers, body: bytes) -> None:
        server = scope.get("server") or ("127.0.0.1", 80)
        self.host_url = f"{scope.get('scheme', 'http')}://{headers.get('host') or '%s:%s' % server}"
        self.path = scope["path"]
        self.method = scope["method"].lower()
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        self.parameters = RequestParameters(query=ImmutableMultiDict(query), header=headers)
        self.content_type = (headers.get("content-type") or "").lower()
        self.body = body or None


@dataclass
class _Response:
    """A buffered response as openapi-core's `Response` protocol wants it."""

    status_code: int
    headers: Headers
    data: bytes

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").lower()


def _field_name(path, name: str | None = None) -> str:
    parts = list(path) + ([name] if name is not None else [])
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return text or "(root)"


def _named_fields(error) -> list[str]:
    """The fields a JSON-schema error is about: the missing or unexpected ones when it names some."""
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [name for name in error.validator_value if name not in error.instance]
        return [_field_name(error.absolute_path, name) for name in missing] or [_field_name(error.absolute_path)]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        extra = sorted(name for name in error.instance if name not in known)
        return [_field_name(error.absolute_path, name) for name in extra] or [_field_name(error.absolute_path)]
    return [_field_name(error.absolute_path)]


def _schema_errors(exc: BaseException) -> list[tuple[str, str]]:
    """`(field, message)` for each problem under an openapi-core exception."""
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, InvalidSchemaValue):
        cause = cause.__cause__
    if cause is None:
        return [("(root)", str(exc.__cause__ or exc))]
    return [(", ".join(_named_fields(error)), error.message) for error in cause.schema_errors]


def _lines(problems: list[tuple[str, str]]) -> list[str]:
    return [f"{field}: {message}" for field, message in problems]


class Contract:
    """openapi-core validators for one `openapi.yaml`, built once.

    openapi-core's own check of the document is skipped: connexion already checks it against
    the OpenAPI schema when it builds its routes, and the test suite runs the full
    openapi-spec-validator on it. Checking it a second time would only slow down start-up.
    """

    def __init__(self, spec: dict) -> None:
        self.openapi = OpenAPI.from_dict(spec, config=OpenAPIConfig(spec_validator_cls=None))
        # Touch the cached validators now, so the first request pays nothing extra.
        self._requests = self.openapi.request_validator
        self._responses = self.openapi.response_validator

    def request_error(self, request: _Request) -> ApiError | None:
        """The first way this request breaks the contract, as the error the client gets."""
        for error in self._requests.iter_errors(request):
            if isinstance(error, MediaTypeNotFound) or isinstance(error.__cause__, MediaTypeNotFound):
                return ApiError(415, f"Content-Type {request.content_type or '(none)'!r} is not "
                                     "accepted; send application/json", {"location": "header",
                                                                          "field": "Content-Type"})
            if isinstance(error, ParameterValidationError):
                if isinstance(error.__cause__, InvalidSchemaValue):
                    details = [message for _, message in _schema_errors(error)]
                elif error.__cause__ is not None:  # could not even be cast to the parameter's type
                    details = [f"{_raw_value(request, error)!r} is not a valid value for this parameter"]
                else:
                    details = [str(error)]
                return bad_request(
                    f"Invalid {error.location} parameter {error.name!r}: {'; '.join(details)}",
                    location=error.location, field=error.name, violations=details,
                )
            if isinstance(error, MissingRequestBodyError):
                return bad_request("A JSON request body is required", location="body", field="(root)")
            if isinstance(error, RequestBodyValidationError):
                if isinstance(error.__cause__, InvalidSchemaValue):
                    problems = _schema_errors(error)
                else:
                    problems = [("(root)", "the body is not valid JSON")]
                return bad_request(
                    f"Invalid request body: {'; '.join(_lines(problems))}",
                    location="body", field=problems[0][0], violations=_lines(problems),
                )
            return bad_request(f"The request breaks the contract: {error}")
        return None

    def response_violations(self, request: _Request, response: _Response) -> list[str]:
        violations = []
        for error in self._responses.iter_errors(request, response):
            if isinstance(error.__cause__, InvalidSchemaValue):
                violations.extend(f"response body {line}" for line in _lines(_schema_errors(error)))
            else:
                violations.append(str(error) or type(error).__name__)
        return violations


def _raw_value(request: _Request, error: ParameterValidationError) -> str | None:
    if error.location == "query":
        return request.parameters.query.get(error.name)
    if error.location == "header":
        return request.parameters.header.get(error.name)
    return None


class BearerAuth:
    """Layer's bearer auth: any well-formed token, or only the configured one."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    def check(self, headers: Headers) -> ApiError | None:
        header = headers.get("authorization")
        if header is None:
            return unauthorized("Missing Authorization header; send 'Authorization: Bearer <token>'")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or not _TOKEN.match(token):
            return unauthorized("Malformed Authorization header; expected 'Bearer <token>'")
        if self.token is not None and not hmac.compare_digest(token.encode(), self.token.encode()):
            return unauthorized("The bearer token is not valid for this sandbox")
        return None


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


class ContractMiddleware:
    """ASGI middleware placed after connexion's routing; see the module docstring."""

    def __init__(self, app, *, contract: Contract, auth: BearerAuth) -> None:
        self.app = app
        self.contract = contract
        self.auth = auth

    async def __call__(self, scope, receive, send) -> None:
        operation_id = scope.get("extensions", {}).get(ROUTING_CONTEXT, {}).get("operation_id")
        if scope["type"] != "http" or operation_id is None:
            await self.app(scope, receive, send)
            return

        body = await _read_body(receive)
        headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]])
        request = _Request(scope, headers, body)

        error = self.auth.check(headers) or self.contract.request_error(request)
        request_outcome = "fail" if error else "pass"
        if error is None:
            response = await self._call_handler(scope, receive, body)
        else:
            response = _error_response(error)

        violations = self.contract.response_violations(request, response)
        response_outcome = "fail" if violations else "pass"
        if violations:
            log.error(
                "contract violation: %s %s -> %s would break openapi.yaml: %s",
                scope["method"], scope["path"], response.status_code, "; ".join(violations),
            )
            response = _error_response(contract_violation(
                f"The sandbox's {response.status_code} response to {operation_id} breaks "
                f"openapi.yaml: {'; '.join(violations)}",
                violations,
            ))

        response.headers[CONTRACT_HEADER] = f"request={request_outcome}; response={response_outcome}"
        response.headers["content-length"] = str(len(response.data))
        await send({
            "type": "http.response.start",
            "status": response.status_code,
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()],
        })
        await send({"type": "http.response.body", "body": response.data})

    async def _call_handler(self, scope, receive, body: bytes) -> _Response:
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, replay, capture)
        headers = Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])])
        headers.pop("content-length", None)
        return _Response(start.get("status", 500), headers, b"".join(chunks))


class UncheckedMarker:
    """Outermost ASGI middleware: a response that no operation of the contract produced (control
    routes, unknown paths, wrong methods) says so in `X-Sandbox-Contract`, so that every
    response carries the header."""

    UNCHECKED = (CONTRACT_HEADER.lower().encode(), b"request=skipped; response=skipped")

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def mark(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == self.UNCHECKED[0] for name, _ in headers):
                    message = {**message, "headers": headers + [self.UNCHECKED]}
            await send(message)

        await self.app(scope, receive, mark)


def _error_response(error: ApiError) -> _Response:
    headers = Headers({"content-type": JSON, **error.headers})
    return _Response(error.status, headers, error.encode())
