"""Compiled schema checks under openapi-core, so that full validation stays cheap.

openapi-core still drives every check (path, operation, parameters, media type, status, body);
only the JSON-schema step underneath gets faster: each schema is turned once into plain JSON
Schema (draft 4, `$ref`s inlined, `nullable` as a `null` type, int32/int64 as bounds) and
compiled to Python by fastjsonschema, with the formats checked by openapi-core's own format
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
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import lru_cache

import fastjsonschema
from jsonschema_path import SchemaPath
from openapi_core.casting.schemas.factories import SchemaCastersFactory
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
            out = {"anyOf": [out, {"type": "null"}]} if "type" not in node else out
        return out

    def check(self, schema: SchemaPath):
        """A function that raises on invalid values, or None when this schema is not compiled."""
        key = tuple(schema.parts)
        found = self._compiled.get(key, False)
        if found is not False:
            return found
        try:
            converted = {"$schema": DRAFT4, **self._convert(self._node(key))}
            compiled = fastjsonschema.compile(converted, formats=self.formats)
        except (_Unconvertible, KeyError, IndexError, TypeError, ValueError, fastjsonschema.JsonSchemaDefinitionException):
            compiled = None  # openapi-core's own validator does the whole check
        with self._lock:
            self._compiled[key] = compiled
        return compiled


class _FastValidator(SchemaValidator):
    def __init__(self, schema: SchemaPath, validator, compiled) -> None:
        super().__init__(schema, validator)
        self._compiled = compiled

    def validate(self, value) -> None:
        if self._compiled is not None:
            try:
                self._compiled(value)
                return
            except fastjsonschema.JsonSchemaValueException:
                pass  # invalid: let jsonschema say exactly why
        super().validate(value)


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
    that matches nothing is looked up afresh each time, so its error is openapi-core's own)."""

    def __init__(self, spec, base_url=None) -> None:
        super().__init__(spec, base_url=base_url)
        self._found: OrderedDict[tuple[str, str], object] = OrderedDict()
        self._lock = threading.Lock()

    def find(self, method: str, name: str):
        key = (method, name)
        with self._lock:
            found = self._found.get(key)
            if found is not None:
                self._found.move_to_end(key)
                return found
        found = super().find(method, name)
        with self._lock:
            self._found[key] = found
            if len(self._found) > PATH_CACHE_SIZE:
                self._found.popitem(last=False)
        return found
