"""Who a request is: Layer's client-credentials tokens, business-scoped tokens, and the tokens
configured with `--token`.

Layer's clients first ask the authorization server for a token (`POST /oauth2/token`, HTTP Basic
with the client id and secret, `grant_type=client_credentials`), then call the API with it; a
backend mints business-scoped tokens for browsers (`POST /v1/businesses/{id}/auth-token`). The
sandbox issues both. A token it issued carries its client, its business (if scoped) and the
namespace whose virtual clock it expires on, so a client's refresh logic is tested by moving that
clock (`POST /__sandbox/clock {"advance_seconds": 3600}`) instead of waiting an hour.

Without `--client` and `--token` the sandbox stays open: any client id and secret get a token and
any well-formed bearer token is taken, as before. With either set, only the configured clients
get tokens, and only issued or configured tokens pass. Tokens live in memory only: never logged,
journaled or written to the state file; a restarted sandbox has forgotten them (clients ask again,
as they do when Layer's expire).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import unquote_plus

from werkzeug.datastructures import Headers

from .contract import BearerAuth
from .errors import ApiError, OAuthError, unauthorized

TOKEN_LIFETIME = 3600  # seconds; Layer's tokens last one hour
MAX_SESSION_DURATION = 86400
# Scopes a token request may ask for: Layer's sandbox scope (what a client configured for Layer's
# sandbox sends). Asking for none is allowed too.
SCOPES = frozenset({"https://sandbox.layerfi.com/sandbox"})
# Issued tokens kept at most; past it the oldest are forgotten (they then answer 401).
MAX_TOKENS = 100_000
# Every token the sandbox issues starts so: one it does not know (forgotten at a restart, or made
# up) is refused even in the open mode, so a client's re-authentication is exercised.
TOKEN_PREFIX = "lsbx_"
# The longest client id and secret taken (an id is kept with every token issued to it).
MAX_CREDENTIAL = 256
OPEN_CLIENT_NAME = "layer-sandbox (open: any token)"
STATIC_CLIENT_NAME = "layer-sandbox (--token)"


@dataclass(frozen=True, slots=True)
class Client:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Issued:
    """What an issued token stands for: its client, its business (if scoped), and the namespace
    (by name, and its clock) whose virtual time it expires on."""

    client: Client
    namespace: str
    clock: object
    expires_at: datetime
    business_id: str | None = None
    # The namespace's identity where its clock is read afresh per request (the Redis store):
    # the same name made again after a deletion is another namespace.
    nsid: str | None = None


def parse_clients(entries: tuple[str, ...]) -> dict[str, str]:
    """`ID:SECRET` entries as id -> secret; ValueError naming a malformed one (no secret shown)."""
    clients = {}
    for position, entry in enumerate(entries, start=1):
        client_id, colon, secret = entry.partition(":")
        if not colon or not client_id or not secret or len(client_id) > MAX_CREDENTIAL or len(secret) > MAX_CREDENTIAL:
            # The entry itself is never shown: without its colon, it may be all secret.
            raise ValueError(f"--client number {position}: expected ID:SECRET, both non-empty and at most "
                             f"{MAX_CREDENTIAL} characters")
        clients[client_id] = secret
    return clients


class Authenticator:
    """The bearer check of every API request, and the token issuer.

    `clock_of(namespace)` gives a namespace's clock (None when the namespace is gone): an issued
    token is judged on the clock of the namespace it was issued in."""

    def __init__(self, clients: tuple[str, ...], tokens: tuple[str, ...], clock_of, issued=None,
                 key: bytes | None = None) -> None:
        self.clients = parse_clients(clients)
        self.static = BearerAuth(tokens)
        self.open = not self.clients and not self.static.scopes
        self.clock_of = clock_of
        # Issued tokens: in this process (TokenBook), or in Redis for every worker and replica.
        self._issued = issued if issued is not None else TokenBook()
        # Keys the client ids /whoami derives from tokens not issued here (see client_of); shared
        # through Redis by the workers and replicas of one sandbox.
        self._key = key if key is not None else secrets.token_bytes(32)

    # ----------------------------------------------------------------- the bearer check

    def check(self, headers: Headers, business_id: str | None = None) -> ApiError | None:
        """None when the request's bearer token may call this route (of this business)."""
        header = headers.get("authorization")
        if header is None:
            return unauthorized("Missing Authorization header; send 'Authorization: Bearer <token>'")
        token = BearerAuth.token_of(headers)
        if token is None or not BearerAuth.well_formed(token):
            return unauthorized("Malformed Authorization header; expected 'Bearer <token>'")
        issued = self._issued.get(token)
        if issued is None and token.startswith(TOKEN_PREFIX):
            return unauthorized("The bearer token is not one this sandbox knows (it forgets its tokens when it "
                                "restarts); request a new one (POST /oauth2/token)")
        if issued is not None:
            clock = self.clock_of(issued.namespace)
            if clock is None or (clock is not issued.clock and (
                    issued.nsid is None or getattr(clock, "nsid", None) != issued.nsid)):  # deleted (maybe made again)
                return unauthorized(f"The bearer token was issued in namespace {issued.namespace!r}, which has "
                                    "been deleted since; request a new one")
            if clock() >= issued.expires_at:
                return unauthorized("The bearer token has expired; request a new one (POST /oauth2/token)")
            if issued.business_id is not None and business_id is not None and business_id.lower() != issued.business_id:
                return ApiError(404, f"Business {business_id} not found",
                                {"field": "businessId", "resource": "business", "id": business_id})
            return None
        if self.open:
            return None
        if not self.static.scopes:  # only --client: a token must be one the sandbox issued
            return unauthorized("The bearer token is not valid for this sandbox; request one (POST /oauth2/token)")
        return self.static.check(headers, business_id)

    def client_of(self, headers: Headers) -> Client:
        """The client a request's (already checked) bearer token stands for."""
        token = BearerAuth.token_of(headers) or ""
        issued = self._issued.get(token)
        if issued is not None:
            return issued.client
        # Not issued here: a configured --token, or any token in the open mode. Its id is keyed
        # from the token with this process's secret key: stable while the sandbox runs, and
        # useless for guessing the token (the id is journaled with /whoami's answers).
        name = OPEN_CLIENT_NAME if self.open else STATIC_CLIENT_NAME
        digest = hmac.new(self._key, token.encode(), hashlib.sha256).digest()
        return Client(str(uuid.UUID(bytes=digest[:16], version=4)), name)

    def scoped(self, headers: Headers) -> bool:
        """Whether the request's token reaches one business only (issued for it, or `--token T=B`)."""
        token = BearerAuth.token_of(headers) or ""
        issued = self._issued.get(token)
        if issued is not None:
            return issued.business_id is not None
        return not self.open and self.static.scope_of(token) not in (None, False)

    # ----------------------------------------------------------------- issuing

    def authenticate_client(self, headers: Headers, form_client_id: str | None) -> Client:
        """The client of a token request's HTTP Basic credentials; OAuthError invalid_client."""
        scheme, _, encoded = (headers.get("authorization") or "").strip().partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise OAuthError("invalid_client", "Client authentication failed: send the client id and secret "
                                               "with HTTP Basic (Authorization: Basic base64(id:secret))")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise OAuthError("invalid_client", "Client authentication failed: the Basic credentials are not "
                                               "base64 of id:secret") from None
        client_id, colon, secret = decoded.partition(":")
        if not colon or not client_id or not secret:
            raise OAuthError("invalid_client", "Client authentication failed: the Basic credentials need a "
                                               "client id and a secret")
        if len(client_id) > MAX_CREDENTIAL or len(secret) > MAX_CREDENTIAL:
            raise OAuthError("invalid_client", f"Client authentication failed: a client id or secret of more "
                                               f"than {MAX_CREDENTIAL} characters")
        # RFC 6749 (2.3.1) form-encodes the id and secret before Basic; most clients do not: both
        # readings are taken.
        readings = [(client_id, secret), (unquote_plus(client_id), unquote_plus(secret))]
        if not self.open:  # --client or --token set: only the configured clients get tokens
            found = None
            for candidate, candidate_secret in readings:
                known = self.clients.get(candidate)
                # Compared in constant time whether or not the client exists.
                matches = hmac.compare_digest(candidate_secret.encode(), (known or secrets.token_hex(16)).encode())
                if known is not None and matches and found is None:
                    found = candidate
            if found is None:
                raise OAuthError("invalid_client", "Client authentication failed: unknown client or wrong secret")
            client_id = found
        if form_client_id is not None and form_client_id not in (client_id, unquote_plus(client_id)):
            raise OAuthError("invalid_client", "Client authentication failed: client_id in the body is not the "
                                               "client of the Basic credentials")
        return Client(client_id, client_id)

    def issue(self, client: Client, namespace: str, lifetime: int, business_id: str | None = None) -> str:
        """A new token, expiring `lifetime` seconds from now on `namespace`'s clock."""
        clock = self.clock_of(namespace)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        issued = Issued(client, namespace, clock, clock() + timedelta(seconds=lifetime), business_id,
                        getattr(clock, "nsid", None))
        self._issued.put(token, issued, lifetime)
        return token


class TokenBook:
    """Issued tokens in this process, the most recent MAX_TOKENS (forgotten on restart)."""

    def __init__(self) -> None:
        self._issued: OrderedDict[str, Issued] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str) -> Issued | None:
        return self._issued.get(token)

    def put(self, token: str, issued: Issued, lifetime: int) -> None:
        with self._lock:
            self._issued[token] = issued
            while len(self._issued) > MAX_TOKENS:
                self._issued.popitem(last=False)


def check_scope(scope: str | None) -> None:
    """OAuthError invalid_scope unless every requested scope is one the sandbox grants."""
    if scope is None:
        return
    asked = scope.split()
    unknown = [s for s in asked if s not in SCOPES]
    if unknown or not asked:
        raise OAuthError("invalid_scope", f"Scope {scope!r} is not granted here; ask for "
                                          f"{' '.join(sorted(SCOPES))} (Layer's sandbox scope) or none")


def token_answer(token: str, lifetime: int) -> dict:
    """Layer's AuthToken, as its authorization server and auth-token routes send it: no envelope."""
    return {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}
