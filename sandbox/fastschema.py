"""Compiled schema checks under openapi-core, so that full validation stays cheap.

openapi-core still drives every check (path, operation, parameters, media type, status, body);
only the JSON-schema step underneath gets faster: each schema is turned once into plain JSON
Schema (draft 4, `$ref`s inlined, `nullable` as a `null` type, int32/int64 as bounds) and
compiled by jsonschema-rs (Rust), with the formats checked by openapi-core's own format
checker. A value the compiled check accepts is valid; one it rejects goes through the original
jsonschema validator, which produces the detailed errors. The openapi-core validator objects
are cached per schema too, instead of being rebuilt for every request, and so are the style
deserializers of parameters (openapi-core builds them, with a deep copy of its format checker,
for every parameter of every request otherwise).

Finding the path and operation of a URL is a pure function of the method and the URL too, and
openapi-core does it twice per request (request and response) by trying every path template:
the last few thousand answers are kept.

A format check is a pure function of the format and the string, and the same ids and dates come
back in request after request: its answers are kept in a bounded cache.

Above the schema step, openapi-core reads the spec afresh for every parameter, security scheme
and media type of every request; `PlannedRequestMixin` and `PlannedContentMixin` read each once
and run openapi-core's own steps on what they read (see their docstrings).
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain

import jsonschema_rs
from jsonschema_path import SchemaPath
from openapi_core.casting.schemas.factories import SchemaCastersFactory
from openapi_core.datatypes import Parameters, RequestParameters
from openapi_core.exceptions import OpenAPIError
from openapi_core.schema.parameters import get_style_and_explode
from openapi_core.validation.request.exceptions import (
    InvalidParameter,
    MissingParameter,
    MissingRequestBody,
    MissingRequiredParameter,
    ParametersError,
    ParameterValidationError,
    RequestBodyValidationError,
    SecurityValidationError,
)
from openapi_core.security.exceptions import SecurityProviderError
from openapi_core.validation.decorators import ValidationErrorWrapper
from openapi_core.templating.security.exceptions import SecurityNotFound
from openapi_core.validation.request.exceptions import InvalidSecurity
from openapi_core.validation.schemas.exceptions import ValidateError
from openapi_core.deserializing.styles.exceptions import EmptyQueryParameterValue
from openapi_core.deserializing.styles import style_deserializers
from openapi_core.deserializing.styles.factories import StyleDeserializersFactory
from openapi_core.templating.paths.finders import APICallPathFinder
from openapi_core.validation.schemas.factories import SchemaValidatorsFactory
from openapi_core.validation.schemas.validators import SchemaValidator
from openapi_schema_validator import OAS30ReadValidator

DRAFT4 = "http://json-schema.org/draft-04/schema#"
_ANNOTATIONS = {"example", "examples", "description", "title", "xml", "externalDocs", "deprecated",
                "readOnly", "writeOnly", "discriminator", "nullable", "default"}
_INTEGER_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_STRING_FORMATS = ("uuid", "date-time", "date", "byte", "binary", "password", "email")
_UNCOMPILED_KEYWORDS = ("readOnly", "writeOnly")  # they differ between requests and responses
FORMAT_CACHE_SIZE = 65536
PATH_CACHE_SIZE = 4096


class _Unconvertible(Exception):
    pass


def _exclusive(branches: list) -> bool:
    """Whether no value can match two of these schemas: each is an object schema that requires
    one same property, and their `enum`s for it are disjoint (AccountId / AccountStableName by
    `type`). For such branches `oneOf` and `anyOf` agree, and `anyOf` need not try them all."""
    if not all(isinstance(b, dict) and b.get("type") == "object" for b in branches):
        return False
    shared = set.intersection(*(set(b.get("required", ())) for b in branches)) if branches else set()
    for name in sorted(shared):
        enums = [b.get("properties", {}).get(name, {}).get("enum") for b in branches]
        if all(isinstance(e, list) and all(isinstance(v, str) for v in e) for e in enums):
            values = [v for e in enums for v in e]
            if len(values) == len(set(values)):
                return True
    return False


class CompiledSchemas:
    """Compiled checks for the schemas of one document, made on first use and then kept."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        conforms = lru_cache(maxsize=FORMAT_CACHE_SIZE)(OAS30ReadValidator.FORMAT_CHECKER.conforms)
        self.formats = {name: (lambda value, name=name: conforms(value, name)) for name in _STRING_FORMATS}
        self._compiled: dict[tuple, object] = {}
        self._lock = threading.Lock()

    def _node(self, parts: tuple):
        node = self.spec
        for part in parts:
            node = self._deref(node)
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def _deref(self, node, depth: int = 0):
        while isinstance(node, dict) and "$ref" in node:
            if depth > 50 or not node["$ref"].startswith("#/"):
                raise _Unconvertible(node.get("$ref"))
            target = self.spec
            for token in node["$ref"][2:].split("/"):
                target = target[token.replace("~1", "/").replace("~0", "~")]
            node, depth = target, depth + 1
        return node

    def _convert(self, node, depth: int = 0):
        if depth > 40:
            raise _Unconvertible("too deep (recursive schema?)")
        node = self._deref(node)
        if isinstance(node, list):
            return [self._convert(item, depth + 1) for item in node]
        if not isinstance(node, dict):
            return node
        out = {}
        for key, value in node.items():
            if key in _UNCOMPILED_KEYWORDS and value:
                raise _Unconvertible(key)
            if key in _ANNOTATIONS:
                continue
            if key in ("properties", "patternProperties"):
                out[key] = {name: self._convert(sub, depth + 1) for name, sub in value.items()}
            elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
                out[key] = self._convert(value, depth + 1)
            elif key in ("allOf", "anyOf", "oneOf"):
                out[key] = [self._convert(sub, depth + 1) for sub in value]
                if key == "oneOf" and _exclusive(out[key]):
                    out["anyOf"] = out.pop("oneOf")  # same verdicts; stops at the first match
            else:
                out[key] = value
        if node.get("type") == "integer" and node.get("format") in _INTEGER_BOUNDS:
            low, high = _INTEGER_BOUNDS[node["format"]]
            out["minimum"] = max(out.get("minimum", low), low)
            out["maximum"] = min(out.get("maximum", high), high)
            out.pop("format")
        if node.get("nullable"):
            if "type" in out:
                out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = list(out["enum"]) + [None]
            # Without a `type`, openapi-core lets `nullable` admit nothing (a null must pass the
            # node's allOf/anyOf/oneOf as any value does), and so does the compiled check.
        return out

    def check(self, schema: SchemaPath):
        """A predicate that says whether a value is valid, or None when this schema is not compiled."""
        key = tuple(schema.parts)
        found = self._compiled.get(key, False)
        if found is not False:
            return found
        try:
            converted = {"$schema": DRAFT4, **self._convert(self._node(key))}
            compiled = jsonschema_rs.Draft4Validator(converted, formats=self.formats, validate_formats=True).is_valid
        except (_Unconvertible, KeyError, IndexError, TypeError, ValueError):
            compiled = None  # openapi-core's own validator does the whole check
        with self._lock:
            self._compiled[key] = compiled
        return compiled


class _FastValidator(SchemaValidator):
    def __init__(self, schema: SchemaPath, validator, compiled) -> None:
        super().__init__(schema, validator)
        self._compiled = compiled

    def validate(self, value) -> None:
        if self._compiled is not None and self._compiled(value):
            return
        super().validate(value)  # invalid (or not compiled): openapi-core's validator says exactly why

    def evolve(self, schema: SchemaPath) -> SchemaValidator:
        """openapi-core's validator of a subschema (an array's items, when it casts an array
        parameter): a plain one, as openapi-core makes it, for there is no compiled check of it."""
        with schema.resolve() as resolved:
            return SchemaValidator(schema, self.validator.evolve(schema=resolved.contents, _resolver=resolved.resolver))


class CachedValidatorsFactory(SchemaValidatorsFactory):
    """One of openapi-core's validators factories (read for responses, write for requests), with
    validators kept and compiled checks."""

    def __init__(self, base: SchemaValidatorsFactory, compiled: CompiledSchemas) -> None:
        super().__init__(base.schema_validator_cls, base.format_checker)
        self.compiled = compiled
        self._validators: dict[tuple, SchemaValidator] = {}

    def create(self, spec, schema, format_validators=None, extra_format_validators=None,
               forbid_unspecified_additional_properties=False, enforce_properties_required=False):
        key = (tuple(schema.parts), forbid_unspecified_additional_properties, enforce_properties_required,
               format_validators is None, extra_format_validators is None)
        found = self._validators.get(key)
        if found is None:
            plain = super().create(spec, schema, format_validators, extra_format_validators,
                                   forbid_unspecified_additional_properties, enforce_properties_required)
            found = self._validators[key] = _FastValidator(schema, plain.validator, self.compiled.check(schema))
        return found


class CachedStyleDeserializersFactory(StyleDeserializersFactory):
    """openapi-core's parameter deserializers, made once per parameter instead of per request.

    A `StyleDeserializer` holds only what the parameter's definition says (style, explode, name,
    type and a caster over a cached validator), so one object serves every request."""

    def __init__(self, casters: SchemaCastersFactory, validators: CachedValidatorsFactory) -> None:
        super().__init__(SchemaCastersFactory(validators, casters.types_caster), style_deserializers=style_deserializers)
        self._made: dict[tuple, object] = {}

    def create(self, spec, schema, style, explode, name):
        key = (tuple(schema.parts), style, explode, name)
        found = self._made.get(key)
        if found is None:
            found = self._made[key] = super().create(spec, schema, style, explode, name)
        return found


class CachedPathFinder(APICallPathFinder):
    """openapi-core's path finder, remembering the last `PATH_CACHE_SIZE` URLs it matched (a URL
    that matches nothing is looked up afresh each time, so its error is openapi-core's own).

    Every match makes new spec accessors (`SchemaPath`s for the path, operation and server, each
    with its own resolver, registry and caches: some 15 objects the garbage collector tracks) for
    nodes that are the same for every credit id. Kept for thousands of URLs they made each full
    collection walk 100,000+ objects (10-20 ms pauses under load, the p99 at 32 connections); a
    remembered match keeps one accessor per spec node instead, and only its own variables."""

    def __init__(self, spec, base_url=None) -> None:
        super().__init__(spec, base_url=base_url)
        self._found: OrderedDict[tuple[str, str], object] = OrderedDict()
        self._nodes: dict[tuple, SchemaPath] = {}
        self._lock = threading.Lock()

    def _node(self, accessor: SchemaPath) -> SchemaPath:
        return self._nodes.setdefault(tuple(accessor.parts), accessor)

    def find(self, method: str, name: str):
        key = (method, name)
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
                return found
        found = super().find(method, name)
        with self._lock:
            found = self._found[key] = found._replace(
                path=self._node(found.path), operation=self._node(found.operation), server=self._node(found.server))
            if len(self._found) > PATH_CACHE_SIZE:
                self._found.popitem(last=False)
        return found


_NO_DEFAULT = object()


@dataclass(frozen=True)
class Validated:
    """A request's parameters (path, query, header, cookie) and body as openapi-core checked them."""

    parameters: Parameters
    body: object


class _ParameterPlan:
    """What openapi-core reads from one parameter's definition on every request, read once."""

    __slots__ = ("spec", "name", "location", "required", "deprecated", "simple", "allow_empty", "schema",
                 "default", "deserializer", "validator", "single")

    def __init__(self, validator, param: SchemaPath) -> None:
        self.spec = param
        self.name = (param / "name").read_str()
        self.location = (param / "in").read_str()
        self.required = (param / "required").read_bool(default=False)
        self.deprecated = (param / "deprecated").read_bool(default=False)
        self.simple = "content" not in param
        self.allow_empty = (param / "allowEmptyValue").read_bool(default=None)
        self.schema = param / "schema" if self.simple else None
        self.default = _NO_DEFAULT
        self.deserializer = self.validator = None
        # A primitive value is read from its own name alone, so an absent name means an absent
        # value: no need to let the deserializer raise (werkzeug's KeyError is costly to build).
        self.single = self.simple and (self.schema / "type").read_str(default="") in (
            "string", "integer", "number", "boolean")
        if self.simple:
            if "default" in self.schema:
                self.default = (self.schema / "default").read_value()
            style, explode = get_style_and_explode(param)
            self.deserializer = validator.style_deserializers_factory.create(
                validator.spec, self.schema, style, explode, name=self.name)
            self.validator = validator.schema_validators_factory.create(
                validator.spec, self.schema, format_validators=validator.format_validators,
                extra_format_validators=validator.extra_format_validators,
                forbid_unspecified_additional_properties=validator.forbid_unspecified_additional_properties,
                enforce_properties_required=validator.enforce_properties_required)


class PlannedRequestMixin:
    """openapi-core's request validator with each operation's security and parameters read from
    the spec once.

    For every request openapi-core walks the spec for every parameter an operation declares (its
    name, location, style, schema, default: ~30 path lookups each, 13 parameters on the list),
    which cost more than checking the values. Here those readings are made once per operation and
    the same steps run on them in the same order: openapi-core's own style deserializer and
    casting, its empty-value and required checks, its schema validator, and its exceptions
    (`MissingRequiredParameter`, `InvalidParameter` from the cause, `ParametersError`). A
    parameter described by `content` rather than `schema` goes through openapi-core unchanged.
    """

    def _plans(self, operation: SchemaPath, path: SchemaPath) -> list[_ParameterPlan]:
        key = (tuple(path.parts), tuple(operation.parts))
        plans = self.__dict__.setdefault("_parameter_plans", {}).get(key)
        if plans is None:
            plans, seen = [], set()
            empty = SchemaPath.from_dict({})
            for param in chain(operation.get("parameters", empty), path.get("parameters", empty)):
                plan = _ParameterPlan(self, param)
                if (plan.name, plan.location) not in seen:  # an operation's own wins over its path's
                    seen.add((plan.name, plan.location))
                    plans.append(plan)
            self._parameter_plans[key] = plans
        return plans

    def _iter_errors(self, request, operation: SchemaPath, path: SchemaPath):
        """openapi-core's three request checks (security, parameters, body), in its order; a
        request that passes all three keeps what they produced as `request.validated`, so that
        the handler is called with these values rather than parsing the request again."""
        try:
            self._get_security(request.parameters, operation)
        except SecurityValidationError as exc:
            yield exc
            return
        failed, parameters, body = False, None, None
        try:
            parameters = self._get_parameters(request.parameters, operation, path)
        except ParametersError as exc:
            failed = True
            yield from exc.errors
        try:
            body = self._get_body(request.body, request.content_type, operation)
        except MissingRequestBody:
            pass
        except RequestBodyValidationError as exc:
            failed = True
            yield exc
        if not failed:
            request.validated = Validated(parameters, body)

    @ValidationErrorWrapper(SecurityValidationError, InvalidSecurity)
    def _get_security(self, parameters: RequestParameters, operation: SchemaPath):
        """openapi-core's `_get_security`, with each operation's requirements and their
        providers read once: the first requirement whose every scheme is satisfied wins."""
        plans = self.__dict__.setdefault("_security_plans", {})
        key = tuple(operation.parts)
        plan = plans.get(key)
        if plan is None:
            security = operation / "security" if "security" in operation else (
                self.spec / "security" if "security" in self.spec else None)
            schemes = self.spec / "components#securitySchemes"
            plan = plans[key] = (not security, [] if not security else [
                [(name, self.security_provider_factory.create(schemes[name]) if name in schemes else None)
                 for name in requirement.str_keys()]
                for requirement in security
            ])
        unsecured, requirements = plan
        if unsecured:
            return {}
        for requirement in requirements:
            try:
                return {name: provider(parameters) if provider is not None else None
                        for name, provider in requirement}
            except SecurityProviderError:
                continue
        raise SecurityNotFound([[name for name, _ in requirement] for requirement in requirements])

    def _get_parameters(self, parameters: RequestParameters, operation: SchemaPath, path: SchemaPath) -> Parameters:
        errors, validated = [], Parameters()
        for plan in self._plans(operation, path):
            if not plan.simple:
                try:
                    value = self._get_parameter(parameters, plan.spec)
                except MissingParameter:
                    continue
                except ParameterValidationError as exc:
                    errors.append(exc)
                    continue
            else:
                try:
                    value = self._planned_value(parameters, plan)
                except MissingParameter:
                    continue
                except ParameterValidationError as exc:
                    errors.append(exc)
                    continue
                except ValidateError as exc:
                    errors.append(_raised(InvalidParameter(plan.name, plan.location), exc))
                    continue
                except OpenAPIError as exc:
                    errors.append(_raised(ParameterValidationError(plan.name, plan.location), exc))
                    continue
            getattr(validated, plan.location)[plan.name] = value
        if errors:
            raise ParametersError(errors=errors, parameters=validated)
        return validated

    def _planned_value(self, parameters: RequestParameters, plan: _ParameterPlan):
        """openapi-core's `_get_parameter` and `_get_simple_param_or_header`, on a plan."""
        location = parameters[plan.location]
        if plan.deprecated and plan.name in location:
            warnings.warn(f"{plan.name} parameter is deprecated", DeprecationWarning)
        try:
            if plan.single and plan.name not in location:
                raise KeyError(plan.name)
            value = plan.deserializer.deserialize(location)
        except KeyError:
            if plan.default is _NO_DEFAULT:
                if plan.required:
                    raise MissingRequiredParameter(plan.name, plan.location) from None
                raise MissingParameter(plan.name, plan.location) from None
            value = plan.default
        else:
            if plan.location == "query" and value == "" and not plan.allow_empty:
                raise EmptyQueryParameterValue(plan.name)
        plan.validator.validate(value)
        return value


def _raised(error: Exception, cause: Exception) -> Exception:
    """`error` as if raised `from cause`, as openapi-core's ValidationErrorWrapper leaves it."""
    error.__cause__ = cause
    return error


CONTENT_PLANS = 256  # (content node, Content-Type) pairs kept; the Content-Type comes from clients


class PlannedContentMixin:
    """openapi-core's body handling (request and response) with what the spec says read once.

    For each body openapi-core finds the media type among the declared ones, builds a
    deserializer for it and looks up its schema's validator. For a given content node and
    Content-Type that is always the same answer, so it is kept (a bounded number, since the
    Content-Type is the client's); the body itself is deserialized and validated every time by
    the same objects openapi-core builds. An unknown Content-Type is not kept: openapi-core looks
    it up afresh and raises its own MediaTypeNotFound.
    """

    def _content_plan(self, content: SchemaPath, mimetype: str | None):
        plans = self.__dict__.setdefault("_content_plans", OrderedDict())
        key = (tuple(content.parts), mimetype)
        plan = plans.get(key)
        if plan is not None:
            plans.move_to_end(key)
            return plan
        mime_type, parameters, media_type = self._find_media_type(content, mimetype)
        schema = media_type.get("schema")
        validator = None if schema is None else self.schema_validators_factory.create(
            self.spec, schema, format_validators=self.format_validators,
            extra_format_validators=self.extra_format_validators,
            forbid_unspecified_additional_properties=self.forbid_unspecified_additional_properties,
            enforce_properties_required=self.enforce_properties_required)
        deserializer = self.media_type_deserializers_factory.create(
            self.spec, mime_type, schema=schema, schema_validator=validator, parameters=parameters,
            encoding=media_type.get("encoding") if "encoding" in media_type else None,
            extra_media_type_deserializers=self.extra_media_type_deserializers)
        plan = plans[key] = (deserializer, schema if "schema" in media_type else None, validator)
        if len(plans) > CONTENT_PLANS:
            plans.popitem(last=False)
        return plan

    def _get_content_schema_value_and_schema(self, raw, content: SchemaPath, mimetype: str | None = None):
        deserializer, schema, _validator = self._content_plan(content, mimetype)
        return deserializer.deserialize(raw), schema

    def _get_content_and_schema(self, raw, content: SchemaPath, mimetype: str | None = None):
        deserializer, schema, validator = self._content_plan(content, mimetype)
        value = deserializer.deserialize(raw)
        if schema is None:
            return value, None
        validator.validate(value)
        return value, schema
