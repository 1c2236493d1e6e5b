"""`layer-sandbox proxy --upstream URL`: a validating proxy in front of a real Layer environment.

Every call is forwarded unchanged to the upstream (the user's Layer sandbox account); the
request and Layer's real response are both validated against `openapi.yaml`, the response goes
back to the client as Layer sent it plus `X-Sandbox-Contract` with both outcomes, and every
drift between Layer and the contract is kept: in the journal (`GET /__sandbox/requests`), in a
summary printed on exit, and in a JUnit XML file on request. Nothing here changes what Layer
answers; the proxy only observes.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field
from xml.etree import ElementTree

import httpx
from werkzeug.datastructures import Headers

from .contract import Contract, ContractRequest, ContractResponse
from .errors import JSON, ApiError
from .inline_wsgi import read_body
from .journal import Journal
from .pipeline import CONTRACT_HEADER, _headers

# Hop-by-hop headers (RFC 9110 7.6.1), and those the proxy sets itself on each side: the
# upstream is asked for an encoding httpx decodes (so the body can be validated), and the
# decoded body goes back to the client without `Content-Encoding`.
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
               "transfer-encoding", "upgrade", "content-length"}
_NOT_SENT_UP = _HOP_BY_HOP | {"host", "accept-encoding"}
_NOT_SENT_BACK = _HOP_BY_HOP | {"content-encoding"}
_UNCHECKED_METHODS = ("OPTIONS", "HEAD")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
MAX_KEPT = 100_000


def _printable(text: str) -> str:
    """Text safe for a terminal and for XML 1.0: other characters as \\xNN escapes."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text).replace("\x1b", "\\x1b")


@dataclass
class Exchange:
    method: str
    path: str
    operation_id: str | None
    status: int | None
    duration_ms: float
    request_problems: list[str] = field(default_factory=list)
    response_problems: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        unknown = self.operation_id is None and self.method not in _UNCHECKED_METHODS
        return bool(self.request_problems or self.response_problems or unknown)


class ValidatingProxy:
    def __init__(self, upstream: str, contract: Contract, journal: Journal, timeout: float = 30.0) -> None:
        self.upstream = upstream.rstrip("/")
        self.contract = contract
        self.journal = journal
        self.timeout = timeout
        self.exchanges: list[Exchange] = []
        self.counts: Counter = Counter()
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["path"].startswith("/__sandbox/"):
            await self._control(scope, send)
            return
        started = time.perf_counter()
        body = await read_body(receive)
        headers = _headers(scope["headers"])
        request = ContractRequest(scope, headers, body)
        operation_id = self.contract.operation_for(scope["method"], scope["path"])
        request_problems = []
        if operation_id is not None:
            error = self.contract.request_error(request, operation_id)
            if error is not None:
                request_problems = [_printable(error.description)]
        try:
            response = await self._forward(scope, headers, body)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = ApiError(502, f"The upstream {self.upstream} did not answer: {type(exc).__name__}: {exc}",
                             kind=("BadGateway", None))  # a 5xx: no error_enum
            response = ContractResponse(502, Headers({"content-type": JSON}), error.encode())
            response_problems = [f"no response from the upstream ({type(exc).__name__})"]
        else:
            response_problems = ([_printable(p) for p in self.contract.response_violations(request, response)]
                                 if operation_id is not None else [])
        def outcome(problems: list[str]) -> str:
            return "skipped" if operation_id is None else ("fail" if problems else "pass")

        response.headers[CONTRACT_HEADER] = f"request={outcome(request_problems)}; response={outcome(response_problems)}"
        response.headers["content-length"] = str(len(response.data))
        exchange = Exchange(scope["method"], scope["path"], operation_id, response.status_code,
                            round((time.perf_counter() - started) * 1000, 3), request_problems, response_problems)
        self._keep(exchange, scope, outcome)
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]})
        await send({"type": "http.response.body", "body": response.data})

    async def _forward(self, scope, headers: Headers, body: bytes) -> ContractResponse:
        # The path as the client wrote it (percent-encoding kept), not the decoded one.
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{self.upstream}{path}" + (f"?{query}" if query else "")
        forwarded = [(k, v) for k, v in headers.items() if k.lower() not in _NOT_SENT_UP]
        forwarded.append(("Accept-Encoding", "gzip, deflate"))
        upstream = await self._client.request(scope["method"], url, headers=forwarded, content=body)
        kept = Headers([(k, v) for k, v in upstream.headers.multi_items() if k.lower() not in _NOT_SENT_BACK])
        return ContractResponse(upstream.status_code, kept, upstream.content)

    def _keep(self, exchange: Exchange, scope, outcome) -> None:
        self.counts[(exchange.operation_id, exchange.drifted)] += 1
        if len(self.exchanges) < MAX_KEPT:
            self.exchanges.append(exchange)
        self.journal.record({
            "method": exchange.method, "path": exchange.path,
            "query": scope.get("query_string", b"").decode("latin-1"), "namespace": "proxy",
            "operation_id": exchange.operation_id, "status": exchange.status, "duration_ms": exchange.duration_ms,
            "request_validation": outcome(exchange.request_problems),
            "response_validation": outcome(exchange.response_problems),
            "error": (exchange.request_problems + exchange.response_problems or [None])[0],
            "violations": {"request": exchange.request_problems, "response": exchange.response_problems},
        })

    async def _control(self, scope, send) -> None:
        import json
        from urllib.parse import parse_qsl

        args = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        if scope["path"] == "/__sandbox/health":
            status, payload = 200, {"data": {"status": "ok", "mode": "proxy", "upstream": self.upstream}}
        elif scope["path"] == "/__sandbox/requests" and scope["method"] == "GET":
            try:
                numbers = {k: int(args[k]) for k in ("status", "after", "limit") if k in args}
            except ValueError:
                numbers = None
            if numbers is None or numbers.get("limit", 1) < 1:
                status, payload = 400, ApiError(400, "status, after and limit are integers (limit at least 1)").body()
            else:
                status, payload = 200, {"data": self.journal.query(
                    method=args.get("method"), path=args.get("path"), contract=args.get("contract"),
                    operation_id=args.get("operation_id"), **numbers)}
        elif scope["path"] == "/__sandbox/requests" and scope["method"] == "DELETE":
            status, payload = 200, {"data": {"cleared": self.journal.clear()}}
        else:
            status, payload = 404, ApiError(404, "The proxy has /__sandbox/health and /__sandbox/requests").body()
        body = json.dumps(payload, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ---------------------------------------------------------------------------- reports

    def summary(self) -> str:
        total = sum(self.counts.values())
        drifted = [e for e in self.exchanges if e.drifted]
        lines = [f"layer-sandbox proxy: {total} exchange(s) with {self.upstream}, "
                 f"{sum(n for (_, bad), n in self.counts.items() if bad)} with drift from openapi.yaml"]
        operations = sorted({op for op, _ in self.counts}, key=lambda op: op or "")
        for operation in operations:
            good, bad = self.counts[(operation, False)], self.counts[(operation, True)]
            lines.append(f"  {operation or '(no such operation)'}: {good + bad} call(s), {bad} drifted")
        for exchange in drifted[:200]:
            lines.append(f"  - {exchange.method} {_printable(exchange.path)} -> {exchange.status}")
            for problem in exchange.request_problems:
                lines.append(f"      request: {problem}")
            for problem in exchange.response_problems:
                lines.append(f"      response: {problem}")
            if exchange.operation_id is None:
                lines.append("      no operation of openapi.yaml has this method and path")
        return "\n".join(lines)

    def junit(self) -> bytes:
        suite = ElementTree.Element("testsuite", name="layer-contract-proxy", tests=str(len(self.exchanges)),
                                    failures=str(sum(1 for e in self.exchanges if e.drifted)), errors="0")
        for exchange in self.exchanges:
            case = ElementTree.SubElement(suite, "testcase", classname=exchange.operation_id or "unknown-operation",
                                          name=_printable(f"{exchange.method} {exchange.path} -> {exchange.status}"),
                                          time=f"{exchange.duration_ms / 1000:.6f}")
            if exchange.drifted:
                problems = ([f"request: {p}" for p in exchange.request_problems]
                            + [f"response: {p}" for p in exchange.response_problems]
                            or ["no operation of openapi.yaml has this method and path"])
                failure = ElementTree.SubElement(case, "failure", message=problems[0][:500])
                failure.text = "\n".join(problems)
        suites = ElementTree.Element("testsuites")
        suites.append(suite)
        return ElementTree.tostring(suites, encoding="utf-8", xml_declaration=True)
