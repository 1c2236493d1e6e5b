"""connexion's Flask app, called on the event loop's own thread.

connexion hands a request to Flask through a2wsgi, which runs every WSGI call on a worker
thread and hops back to the event loop for each message: two thread switches and a wait on the
GIL per request, for handlers that only touch the in-memory store and never block. This adapter
calls the same Flask `wsgi_app` right where the request is, so a request costs no thread hop
and the store sees one request at a time. Nothing it serves may block for long: the store is
in memory, forced delays are `asyncio.sleep`s in the pipeline, and with `--state-file` a write
appends one line to the log; a whole snapshot (after a control route replaces state, on
`POST /__sandbox/save`, every 20,000 logged writes) does hold up the requests behind it, for as
long as writing the state takes (milliseconds for the default scenario).
"""

from __future__ import annotations

import io

from a2wsgi.wsgi import build_environ


async def read_body(receive) -> bytes:
    """The whole request body (an early disconnect ends it)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


class InlineWSGI:
    """An ASGI app that runs a WSGI app inline and sends its buffered response."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app

    async def __call__(self, scope, receive, send) -> None:
        body = await read_body(receive)
        environ = build_environ(scope, io.BytesIO(body))
        started: dict = {}

        def start_response(status: str, headers, exc_info=None):
            started["status"] = int(status.split(" ", 1)[0])
            started["headers"] = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
            return lambda _data: None  # the legacy write() callable; Flask never uses it

        result = self.wsgi_app(environ, start_response)
        try:
            data = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        await send({"type": "http.response.start", "status": started["status"], "headers": started["headers"]})
        await send({"type": "http.response.body", "body": data})
