"""Contract checks with openapi-core, and Layer's bearer auth.

`Contract` holds openapi-core's request and response validators for one `openapi.yaml`, built
once when the app is built, and turns what they find into Layer errors that name the field.
The order in which a request meets these checks is `sandbox.pipeline`'s business.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from jsonschema_path import SchemaPath
from openapi_core import V30RequestValidator, V30ResponseValidator
from openapi_core.casting.schemas import (
    oas30_read_schema_casters_factory,
    oas30_write_schema_casters_factory,
)
from openapi_core.datatypes import RequestParameters
from openapi_core.templating.media_types.exceptions import MediaTypeNotFound
from openapi_core.validation.request.exceptions import (
    MissingRequestBodyError,
    ParameterValidationError,
    RequestBodyValidationError,
    SecurityValidationError,
)
from openapi_core.validation.schemas import (
    oas30_read_schema_validators_factory,
    oas30_write_schema_validators_factory,
)
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from werkzeug.datastructures import Headers, ImmutableMultiDict

from .errors import ApiError, bad_request, unauthorized
from .fastschema import (
    CachedPathFinder,
    CachedStyleDeserializersFactory,
    CachedValidatorsFactory,
    CompiledSchemas,
    PlannedContentMixin,
    PlannedRequestMixin,
)
from .jsontext import foreign_charset, read_response, strict_loads

_TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")
_BOOLEANS = ("true", "false")
RESOLVED_CACHE_SIZE = 16384


def _query_parameters(spec: dict) -> dict[tuple[str, str], dict[str, str]]:
    """(path, method) -> query parameter name -> schema type, from the spec."""
    def resolve(node):
        while "$ref" in node:
            target = spec
            for token in node["$ref"].lstrip("#/").split("/"):
                target = target[token]
            node = target
        return node

    found = {}
    for item in spec["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "operationId" in operation:
                params = [resolve(p) for p in operation.get("parameters", [])]
                found[operation["operationId"]] = {
                    p["name"]: resolve(p.get("schema", {})).get("type", "string") for p in params if p["in"] == "query"
                }
    return found


class ContractRequest:
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
        self.validated = None  # the checked parameters and body, once the request passed (fastschema)


@dataclass
class ContractResponse:
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


def _one_of_required(error) -> list[str] | None:
    """The names of an `anyOf` of `required` lists (one of them must be given), else None."""
    options = error.validator_value if error.validator == "anyOf" else None
    if not options or not all(set(option) == {"required"} for option in options):
        return None
    return [name for option in options for name in option["required"]]


def _schema_errors(exc: BaseException) -> list[tuple[str, str]]:
    """`(field, message)` for each problem under an openapi-core exception."""
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, InvalidSchemaValue):
        cause = cause.__cause__
    if cause is None:
        return [("(root)", str(exc.__cause__ or exc))]
    problems = []
    for error in cause.schema_errors:
        names = _one_of_required(error)
        if names:
            problems.append((_field_name(error.absolute_path, names[0]), f"{' or '.join(names)} is required"))
        else:
            problems.append((", ".join(_named_fields(error)), error.message))
    return problems


def _lines(problems: list[tuple[str, str]]) -> list[str]:
    return [f"{field}: {message}" for field, message in problems]


class _RequestValidator(PlannedRequestMixin, PlannedContentMixin, V30RequestValidator):
    """openapi-core's request validator for 3.0, with what each operation declares read once."""


class _ResponseValidator(PlannedContentMixin, V30ResponseValidator):
    """openapi-core's response validator for 3.0, with each response's media types read once."""


class Contract:
    """openapi-core validators for one `openapi.yaml`, built once.

    openapi-core's own check of the document is skipped: connexion already checks it against
    the OpenAPI schema when it builds its routes, and the test suite runs the full
    openapi-spec-validator on it. Checking it a second time would only slow down start-up.
    """

    def __init__(self, spec: dict) -> None:
        self.query_types = _query_parameters(spec)
        # operationId -> the media types its request body takes
        self.media_types = {op["operationId"]: list(op.get("requestBody", {}).get("content", {}))
                            for item in spec["paths"].values() for op in item.values()
                            if isinstance(op, dict) and "operationId" in op}
        self._routes = [
            (re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(path)) + "$"),
             {m.upper(): op["operationId"] for m, op in item.items() if isinstance(op, dict) and "operationId" in op})
            for path, item in spec["paths"].items()
        ]
        # jsonschema-path keeps no resolved nodes unless asked; without this cache every request
        # re-resolves each parameter and schema it reads (~220 lookups for a list request).
        document = SchemaPath.from_dict(spec, resolved_cache_maxsize=RESOLVED_CACHE_SIZE)
        compiled = CompiledSchemas(spec)
        writes = CachedValidatorsFactory(oas30_write_schema_validators_factory, compiled)
        reads = CachedValidatorsFactory(oas30_read_schema_validators_factory, compiled)
        # The validators of openapi-core's OpenAPI facade for 3.0, built once, with the caches
        # above; requests are judged as writes and responses as reads, as openapi-core does.
        self._requests = _RequestValidator(
            document,
            schema_validators_factory=writes,
            style_deserializers_factory=CachedStyleDeserializersFactory(oas30_write_schema_casters_factory, writes),
            extra_media_type_deserializers={"application/json": strict_loads},
            path_finder_cls=CachedPathFinder,
        )
        self._responses = _ResponseValidator(
            document,
            schema_validators_factory=reads,
            style_deserializers_factory=CachedStyleDeserializersFactory(oas30_read_schema_casters_factory, reads),
            extra_media_type_deserializers={"application/json": read_response},
            path_finder_cls=CachedPathFinder,
        )

    def allowed_methods(self, path: str) -> str | None:
        """The `Allow` header for a path of the contract (None when it is no such path)."""
        for pattern, operations in self._routes:
            if pattern.match(path):
                return ", ".join(operations)
        return None

    def operation_for(self, method: str, path: str) -> str | None:
        """The operationId for a method and a concrete path, or None."""
        for pattern, operations in self._routes:
            if pattern.match(path):
                return operations.get(method.upper())
        return None

    def _query_error(self, request: ContractRequest, operation_id: str) -> ApiError | None:
        """What openapi-core lets through but connexion would read differently: a parameter given
        twice (one validator reads the first value, the other the last) and booleans spelled
        other than true/false."""
        types = self.query_types.get(operation_id, {})
        query = request.parameters.query
        for name in query:
            values = query.getlist(name)
            if name in types and types[name] != "array" and len(values) > 1:
                return bad_request(f"Query parameter {name!r} is given {len(values)} times; give it once",
                                   location="query", field=name)
            if types.get(name) == "boolean" and values[0].lower() not in _BOOLEANS:
                return bad_request(f"Invalid query parameter {name!r}: {values[0]!r} is not true or false",
                                   location="query", field=name)
        return None

    def request_error(self, request: ContractRequest, operation_id: str) -> ApiError | None:
        """The first way this request breaks the contract, as the error the client gets."""
        query_error = self._query_error(request, operation_id)
        if query_error is not None:
            return query_error
        charset = foreign_charset(request.content_type) if request.body else None
        if charset:
            return ApiError(415, f"Content-Type charset {charset!r} is not accepted; JSON is sent as UTF-8",
                            {"location": "header", "field": "Content-Type"})
        for error in self._requests.iter_errors(request):
            if isinstance(error, MediaTypeNotFound) or isinstance(error.__cause__, MediaTypeNotFound):
                expected = " or ".join(self.media_types.get(operation_id) or ["application/json"])
                return ApiError(415, f"Content-Type {request.content_type or '(none)'!r} is not "
                                     f"accepted; send {expected}", {"location": "header", "field": "Content-Type"})
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
                expected = " or ".join(self.media_types.get(operation_id) or ["application/json"])
                return bad_request(f"A request body is required ({expected})", location="body", field="(root)")
            if isinstance(error, RequestBodyValidationError):
                if isinstance(error.__cause__, InvalidSchemaValue):
                    problems = _schema_errors(error)
                else:
                    reason = getattr(error.__cause__, "__context__", None)
                    kind = "valid JSON" if "application/json" in (self.media_types.get(operation_id) or []) else (
                        "a valid form body")
                    problems = [("(root)", f"the body is not {kind}" + (f": {reason}" if reason else ""))]
                return bad_request(
                    f"Invalid request body: {'; '.join(_lines(problems))}",
                    location="body", field=problems[0][0], violations=_lines(problems),
                )
            if isinstance(error, SecurityValidationError):
                return unauthorized(f"The request lacks the credentials this route takes: {error}")
            return bad_request(f"The request breaks the contract: {error}")
        return None

    def response_violations(self, request: ContractRequest, response: ContractResponse) -> list[str]:
        violations = []
        try:
            for error in self._responses.iter_errors(request, response):
                if isinstance(error.__cause__, InvalidSchemaValue):
                    violations.extend(f"response body {line}" for line in _lines(_schema_errors(error)))
                else:
                    violations.append(str(error) or type(error).__name__)
        except (ValueError, UnicodeError) as exc:  # a body that is not even text
            violations.append(f"the response could not be read: {type(exc).__name__}: {exc}")
        return violations


def _raw_value(request: ContractRequest, error: ParameterValidationError) -> str | None:
    if error.location == "query":
        return request.parameters.query.get(error.name)
    if error.location == "header":
        return request.parameters.header.get(error.name)
    return None


class BearerAuth:
    """Layer's bearer auth: any well-formed token, or only the configured ones, each for every
    business (`T`) or for one (`T=BUSINESS_ID`, as Layer's business-scoped tokens). A scoped
    token sees no other business: asking for one gets the 404 an unknown business gets, so a
    token learns nothing about businesses that are not its own."""

    def __init__(self, tokens: tuple[str, ...] = ()) -> None:
        self.scopes: dict[str, str | None] = {}
        for entry in tokens:
            token, _, business = entry.partition("=")
            self.scopes[token] = business.strip().lower() or None

    @staticmethod
    def well_formed(token: str) -> bool:
        return bool(_TOKEN.match(token))

    @staticmethod
    def token_of(headers: Headers) -> str | None:
        scheme, _, token = (headers.get("authorization") or "").strip().partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def scope_of(self, token: str):
        """The business a configured token is for (None: all), or False for an unknown token.
        Every configured token is compared, in constant time, whatever matches."""
        found = False
        for known, business in self.scopes.items():
            if hmac.compare_digest(token.encode(), known.encode()):
                found = business
        return found

    def check(self, headers: Headers, business_id: str | None = None) -> ApiError | None:
        header = headers.get("authorization")
        if header is None:
            return unauthorized("Missing Authorization header; send 'Authorization: Bearer <token>'")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or not _TOKEN.match(token):
            return unauthorized("Malformed Authorization header; expected 'Bearer <token>'")
        if not self.scopes:
            return None
        scope = self.scope_of(token)
        if scope is False:
            return unauthorized("The bearer token is not valid for this sandbox")
        if scope is not None and business_id is not None and business_id.lower() != scope:
            # Word for word what an unknown business gets (sandbox.store.Store.business).
            return ApiError(404, f"Business {business_id} not found",
                            {"field": "businessId", "resource": "business", "id": business_id})
        return None
