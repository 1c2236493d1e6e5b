"""Pact files read into one shape, whatever their specification (V1 to V4).

A pact is a consumer's record of the requests it sends a provider and the responses it relies
on. The specifications spell the same things differently (V2 a query string and one provider
state, V3 query maps and `providerStates` with `params`, V4 bodies wrapped in `content` and
message interactions beside HTTP ones); `verify-pact` judges an interaction once, in the shape
here, and hands Pact's own verifier the file as the consumer wrote it, less what it cannot replay.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PATH_TOKEN = re.compile(r"\.([^.\[\]]+)|\[(\d+|\*)\]|\['((?:[^'\\]|\\.)*)'\]")
NO_BODY = object()  # an interaction that says nothing about a body (not the same as JSON null)
HTTP_TYPE = "Synchronous/HTTP"


class PactFileError(ValueError):
    """A file that is not a pact (not JSON, no consumer or provider, no interactions)."""


@dataclass(frozen=True)
class ProviderState:
    name: str
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """One side of an HTTP interaction: what the consumer sends, or what it expects back."""

    headers: tuple[tuple[str, str], ...] = ()
    body: object = NO_BODY  # the JSON value, the text, or bytes for a binary body
    method: str = ""
    path: str = ""
    query: tuple[tuple[str, str], ...] = ()
    status: int = 0
    generated: tuple[str, ...] = ()  # JSON paths of body values Pact generates (no example given)
    body_type: str | None = None  # a V4 body's own contentType

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    @property
    def content_type(self) -> str | None:
        return self.header("Content-Type") or self.body_type

    def body_bytes(self) -> bytes | None:
        """The body as it goes on the wire (JSON serialized compactly), or None."""
        if self.body is NO_BODY:
            return None
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str) and not _is_json(self.content_type):
            return self.body.encode()
        return json.dumps(self.body, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Interaction:
    position: int  # 0-based, in the file
    description: str
    states: tuple[ProviderState, ...]
    kind: str  # "http", or "message" (not replayed: reported as skipped)
    request: Message = Message()
    response: Message = Message()

    @property
    def title(self) -> str:
        given = " and ".join(s.name for s in self.states)
        return f"{self.description}" + (f" (given {given})" if given else "")


@dataclass(frozen=True)
class PactFile:
    path: Path
    consumer: str
    provider: str
    specification: str  # "V1", "V2", "V3" or "V4"
    interactions: tuple[Interaction, ...]
    document: dict  # the file as read

    def replayable(self) -> dict:
        """The file with its HTTP interactions only, in their order, for Pact's verifier (which
        would stop at a message interaction it has no handler for)."""
        document = {key: value for key, value in self.document.items() if key != "messages"}
        raw = self.document.get("interactions") or []
        document["interactions"] = [raw[i.position] for i in self.http_interactions]
        return document

    @property
    def http_interactions(self) -> list[Interaction]:
        return [i for i in self.interactions if i.kind == "http"]


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "application/json").split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def segment(name: str) -> str:
    """One member in Pact's JSON path syntax: `.name`, or `['odd key']`."""
    return f".{name}" if _IDENTIFIER.match(name) else "['" + name.replace("'", "\\'") + "']"


def json_path(parts) -> str:
    """`$.data[0].id` from its parts (member names, list positions, "*" for every item)."""
    return "$" + "".join(f"[{part}]" if isinstance(part, int) or part == "*" else segment(part) for part in parts)


def path_parts(path: str) -> list | None:
    """`$.data[0].id`, `$['odd key'][*]` as parts (int, str, or "*"), or None if unreadable."""
    if not path.startswith("$"):
        return None
    parts, at = [], 1
    while at < len(path):
        found = _PATH_TOKEN.match(path, at)
        if found is None:
            return None
        name, index, quoted = found.groups()
        parts.append(name if name is not None else quoted.replace("\\'", "'") if quoted is not None else (
            "*" if index == "*" else int(index)))
        at = found.end()
    return parts


def specification_of(document: dict) -> str:
    metadata = document.get("metadata") if isinstance(document.get("metadata"), dict) else {}
    for key in ("pactSpecification", "pact-specification"):
        version = (metadata.get(key) or {}).get("version") if isinstance(metadata.get(key), dict) else None
        if version:
            return f"V{str(version).split('.')[0]}"
    if metadata.get("pactSpecificationVersion"):
        return f"V{str(metadata['pactSpecificationVersion']).split('.')[0]}"
    interactions = document.get("interactions") or []
    if any(isinstance(i, dict) and "type" in i for i in interactions):
        return "V4"
    if "messages" in document or any(isinstance(i, dict) and "providerStates" in i for i in interactions):
        return "V3"
    return "V2"


def _headers(raw) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict):
        return ()
    pairs = []
    for name, value in raw.items():
        for one in value if isinstance(value, list) else [value]:
            pairs.append((str(name), str(one)))
    return tuple(pairs)


def _query(raw) -> tuple[tuple[str, str], ...]:
    if isinstance(raw, str):
        return tuple(parse_qsl(raw, keep_blank_values=True))
    if isinstance(raw, dict):
        return tuple((str(name), str(one)) for name, value in raw.items()
                     for one in (value if isinstance(value, list) else [value]))
    return ()


def _body(part: dict, specification: str):
    if "body" not in part:
        return NO_BODY
    body = part["body"]
    if specification != "V4":
        return body
    if not isinstance(body, dict) or "content" not in body:
        return NO_BODY if body is None else body
    content, encoded, json_type = body["content"], body.get("encoded", False), _is_json(body.get("contentType"))
    try:
        if encoded == "base64" or encoded is True:
            raw = base64.b64decode(str(content), validate=True)
            return json.loads(raw) if json_type else raw
        if encoded == "json" and isinstance(content, str):
            return json.loads(content)
    except ValueError as exc:  # binascii.Error and JSONDecodeError are ValueErrors
        raise PactFileError(f"a body encoded as {encoded!r} cannot be decoded: {exc}") from None
    if isinstance(content, str) and json_type:
        try:
            return json.loads(content)
        except ValueError:
            return content
    return content


def _body_type(part: dict, specification: str) -> str | None:
    """A V4 body's own `contentType`: the Content-Type Pact sends when no header gives one."""
    body = part.get("body")
    if specification == "V4" and isinstance(body, dict) and isinstance(body.get("contentType"), str):
        return body["contentType"]
    return None


def _states(raw: dict) -> tuple[ProviderState, ...]:
    if isinstance(raw.get("providerStates"), list):
        states = []
        for n, state in enumerate(raw["providerStates"]):
            if not isinstance(state, dict) or not isinstance(state.get("params", {}) or {}, dict):
                raise PactFileError(f"providerStates[{n}] of {raw.get('description')!r} is not a name with a "
                                    "mapping of params")
            states.append(ProviderState(str(state.get("name", "")), dict(state.get("params") or {})))
        return tuple(states)
    if isinstance(raw.get("providerState"), str) and raw["providerState"]:
        return (ProviderState(raw["providerState"]),)
    if isinstance(raw.get("provider_state"), str) and raw["provider_state"]:
        return (ProviderState(raw["provider_state"]),)
    return ()


def _interaction(position: int, raw, specification: str) -> Interaction:
    if not isinstance(raw, dict):
        raise PactFileError(f"interaction {position + 1} is not a JSON object")
    description = str(raw.get("description") or f"interaction {position + 1}")
    kind = raw.get("type", HTTP_TYPE) if specification == "V4" else HTTP_TYPE
    if kind != HTTP_TYPE:
        return Interaction(position, description, _states(raw), "message")
    request, response = raw.get("request"), raw.get("response")
    if not isinstance(request, dict) or not isinstance(response, dict):
        raise PactFileError(f"interaction {position + 1} ({description!r}) has no request or no response")
    status = response.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        # Pact's verifier stops on anything but a JSON integer here (a string "200" included).
        raise PactFileError(f"interaction {position + 1} ({description!r}): status {status!r} is not an HTTP "
                            "status (a JSON integer)")
    return Interaction(
        position, description, _states(raw), "http",
        Message(method=str(request.get("method", "GET")).upper(), path=str(request.get("path", "/")),
                query=_query(request.get("query")), headers=_headers(request.get("headers")),
                body=_body(request, specification), body_type=_body_type(request, specification)),
        Message(status=status, headers=_headers(response.get("headers")), body=_body(response, specification),
                body_type=_body_type(response, specification), generated=_generated(response)),
    )


def _generated(response: dict) -> tuple[str, ...]:
    """The JSON paths of the response body's generators (V3 and V4 keep them in the response)."""
    generators = response.get("generators") if isinstance(response.get("generators"), dict) else {}
    body = generators.get("body") if isinstance(generators.get("body"), dict) else {}
    return tuple(str(path) for path in body)


def read_pact(path: Path) -> PactFile:
    try:
        document = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise PactFileError(f"cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PactFileError(f"is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise PactFileError("is not a pact: the file is not a JSON object")
    names = {}
    for side in ("consumer", "provider"):
        name = document.get(side, {}).get("name") if isinstance(document.get(side), dict) else None
        if not isinstance(name, str) or not name:
            raise PactFileError(f"is not a pact: it names no {side} ({side}.name)")
        names[side] = name
    interactions, messages = document.get("interactions"), document.get("messages")
    if not isinstance(interactions, list) and not isinstance(messages, list):
        raise PactFileError("is not a pact: it has neither `interactions` nor `messages`")
    for key, value in (("interactions", interactions), ("messages", messages)):
        if value is not None and not isinstance(value, list):
            raise PactFileError(f"is not a pact: `{key}` is not a list")
    specification = specification_of(document)
    found = [_interaction(n, raw, specification) for n, raw in enumerate(interactions or [])]
    offset = len(found)
    found += [Interaction(offset + n, str(m.get("description") or f"message {n + 1}") if isinstance(m, dict)
                          else f"message {n + 1}", _states(m) if isinstance(m, dict) else (), "message")
              for n, m in enumerate(messages or [])]
    return PactFile(Path(path), names["consumer"], names["provider"], specification, tuple(found), document)


def pact_paths(arguments: list[Path]) -> list[Path]:
    """Files as given; a directory stands for its `*.json` files, in name order."""
    paths = []
    for argument in arguments:
        if Path(argument).is_dir():
            paths += sorted(p for p in Path(argument).glob("*.json") if p.is_file())
        else:
            paths.append(Path(argument))
    return paths
