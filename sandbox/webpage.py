"""The dashboard's files (sandbox/dashboard/: HTML, CSS, JavaScript modules; no build step,
nothing from a CDN) and the two questions about them that the control routes and the pipeline's
admin check must answer alike: which requests ask for the page, and which files it has."""

from __future__ import annotations

import functools
from pathlib import Path

import flask
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

DASHBOARD = Path(__file__).resolve().parent / "dashboard"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}
FILES = {path.name: _TYPES[path.suffix] for path in sorted(DASHBOARD.iterdir()) if path.suffix in _TYPES}
FILES_PREFIX = "/__sandbox/dashboard/"
# The page loads nothing from anywhere else. (`img-src data:`: its empty icon, so that the browser
# asks for no /favicon.ico.)
POLICY = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def wants_page(accept: str | None) -> bool:
    """Whether a request to /__sandbox/ asks for the page (a browser: HTML over JSON) rather than
    the JSON list of control routes."""
    accepted = parse_accept_header(accept, MIMEAccept)
    return accepted["text/html"] > accepted["application/json"]


def is_open(method: str, path: str, accept: str | None) -> bool:
    """The page and its files hold no state: a browser loads them without the --admin-token (it
    cannot send a bearer token for a page load), and the page then asks for the token."""
    if method not in ("GET", "HEAD"):
        return False
    if path.startswith(FILES_PREFIX):
        return path[len(FILES_PREFIX):] in FILES
    return path in ("/__sandbox", "/__sandbox/") and wants_page(accept)


@functools.cache
def _content(name: str) -> bytes:
    """A file's bytes, read from the package once (the page polls; its files are asked for often)."""
    return (DASHBOARD / name).read_bytes()


def file_response(name: str) -> flask.Response:
    answer = flask.Response(_content(name), mimetype=FILES[name].split(";")[0])
    answer.headers["Content-Type"] = FILES[name]
    answer.headers["Content-Security-Policy"] = POLICY
    answer.headers["Cache-Control"] = "no-cache"
    answer.headers["X-Content-Type-Options"] = "nosniff"
    return answer
