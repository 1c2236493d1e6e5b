"""How uvicorn serves the sandbox: its options, and the HTTP protocol that guards the connection.

uvicorn's httptools protocol waits for a request's head as long as the client likes and takes a
head of any size: a client that sends its headers a byte at a time, or connects and sends
nothing, would hold its connection forever, and a megabyte of headers would be parsed and kept.
`GuardedHttpToolsProtocol` gives every request head a deadline (408, then the connection is
closed) and a size limit (431), and answers what the parser cannot read with a 400; all three
are Layer errors. Body size and body timeouts are
the ASGI side's business (`sandbox.pipeline.Edge`), which sees the body.
"""

from __future__ import annotations

import socket
from functools import partial

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .config import Config
from .errors import JSON, ApiError

# The most a request line and its headers may take together, as front ends commonly allow.
MAX_HEAD_BYTES = 64 * 1024
# How long a connection may idle between requests: longer than client pools keep one (httpx 5 s,
# Go 90 s), so that the client, not the server, closes it. A server that closes first races the
# client's next request on that connection, which fails ("server disconnected"). uvicorn's default is 5 s.
KEEP_ALIVE_SECONDS = 120
REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


def uvicorn_options(config: Config) -> dict:
    """Options for `uvicorn.Config`, wherever the sandbox is served (the CLI, the pytest plugin).

    asyncio's own event loop, not uvloop: under 32 connections uvloop answered some connections
    late (p99 1.3 s against a 130 ms median while no request took the server over 10 ms), asyncio
    fairly (p99 ~220 ms) and no slower; bench/run.py measures it. In-flight requests get
    `shutdown_grace` seconds to finish when the server is asked to stop."""
    return {
        "loop": "asyncio",
        "http": partial(GuardedHttpToolsProtocol, head_timeout=config.client_timeout),
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": config.shutdown_grace,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    }


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound and listening before uvicorn starts, so the port (0: the kernel picks) is
    known and held from the start; raises OSError when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say TCP;
    # without it every response waited ~40 ms for a delayed ACK between its head and its body.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _refusal(status: int, description: str) -> bytes:
    body = ApiError(status, description).encode()
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status]),
        b"content-type: " + JSON.encode() + b"\r\n",
        b"content-length: %d\r\n" % len(body),
        b"x-sandbox-contract: request=skipped; response=skipped\r\n",
        b"connection: close\r\n\r\n",
        body,
    ])


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on each request head."""

    def __init__(self, *args, head_timeout: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.head_timeout = head_timeout
        self._head_deadline = None
        self._head_bytes = 0
        self._refused = False

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _refuse(self, status: int, description: str) -> None:
        if self._refused:
            return
        self._refused = True
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(_refusal(status, description))
            self.transport.close()

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        self._refuse(408, f"The request's line and headers did not arrive within {self.head_timeout:g} s")

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()  # a connection that sends nothing is closed too

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """Bytes the HTTP parser cannot read (raw non-ASCII in the request line, a bad header
        line): a Layer 400 instead of uvicorn's plain text. A refusal raised inside a parser
        callback lands here too; it is sent already."""
        self._refuse(400, "The request is not valid HTTP/1.1 (request line or headers malformed, "
                          "or raw non-ASCII bytes in the path; percent-encode them)")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._head_deadline is None:
            self._arm()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(431, f"The request's line and headers exceed {MAX_HEAD_BYTES} bytes")
            raise ConnectionAbortedError("request head too large")  # stops the parser

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()
