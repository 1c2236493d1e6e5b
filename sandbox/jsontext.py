"""JSON as RFC 8259 has it, for everything the sandbox reads: no NaN or Infinity, no lone
surrogates, bounded nesting.

What the sandbox accepts it must be able to send back to a strict client (`JSON.parse`), so the
API bodies (through openapi-core), the control routes and state imports all read JSON here.

The API's own responses are written and re-read for validation with orjson, which is as strict
(it refuses NaN and lone surrogates when reading) and five to ten times faster than the standard
library on a page of credits; request bodies keep the standard library's parser and its exact
error messages.
"""

from __future__ import annotations

import json
import math
import re

import orjson

_SURROGATE = re.compile("[\ud800-\udfff]")
class ResponseJson:
    """The `json`-like module that connexion's Jsonifier writes the API's responses with."""

    @staticmethod
    def dumps(value, **_options) -> str:
        return orjson.dumps(value).decode()

    loads = staticmethod(json.loads)


def read_response(data: bytes | str, **_parameters):
    """A response body as openapi-core's response validator reads it (ValueError if not JSON)."""
    return orjson.loads(data)


# The only ways a lone surrogate gets into parsed JSON: a `\\uD800`-style escape, or, since
# json.loads decodes bytes with "surrogatepass", a surrogate code point encoded as UTF-8
# (ED A0..BF ..). Text without either needs no walk over the parsed value.
_SURROGATE_SOURCE_UTF8 = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")
_SURROGATE_SOURCE_TEXT = re.compile(r"\\u[dD][89a-fA-F]")


def foreign_charset(content_type: str | None) -> str | None:
    """The charset a Content-Type declares when it is not UTF-8 (JSON is UTF-8, RFC 8259 §8.1),
    else None: a body declared as UTF-16 or Latin-1 is refused rather than read as UTF-8."""
    for parameter in (content_type or "").split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return value.strip()
    return None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of the range of a JSON number")
    return value


def portable_problem(value) -> str | None:
    """Why a parsed value could not be sent as portable JSON, or None."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return "it holds a lone UTF-16 surrogate, which is not Unicode text"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{item} is not a JSON number"
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def _may_hold_surrogates(data: bytes | str) -> bool:
    if isinstance(data, str):
        return "\\u" in data and _SURROGATE_SOURCE_TEXT.search(data) is not None or _SURROGATE.search(data) is not None
    if json.detect_encoding(data) != "utf-8":
        return True  # UTF-16/32 bodies are rare: walk the value
    # `in` is a fast substring scan; the regular expression runs only when one may be there.
    return (b"\\u" in data or b"\xed" in data) and _SURROGATE_SOURCE_UTF8.search(data) is not None


def strict_loads(data: bytes | str, **_parameters):
    """Parse JSON strictly; ValueError says what is wrong."""
    try:
        value = json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None
    if not _may_hold_surrogates(data):  # numbers were checked while parsing
        return value
    problem = portable_problem(value)
    if problem:
        raise ValueError(problem)
    return value
