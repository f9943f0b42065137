"""Bearer-token authentication and scopes.

With no ``[[daemon.tokens]]`` the API is open, which config validation only allows on
loopback TCP and the 0600 unix socket.  Once tokens exist, every TCP request needs
``Authorization: Bearer <token>`` whose SHA-256 matches a configured digest (compared
in constant time); GET /health stays open for probes (and GET /metrics with
``metrics_open``), and the unix socket stays trusted (its file mode already limits who
can connect).

Scopes nest: ``admin`` includes ``trigger``, which includes ``read``.  Reading is every
GET; ``trigger`` starts, reruns and stops runs; ``admin`` reloads and pauses/resumes tasks.
"""

from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from cronwarden.config import DaemonConfig
from cronwarden.errors import Forbidden, Unauthorized

_RANK = {"read": 1, "trigger": 2, "admin": 3}
_OPEN = {("GET", "/health")}


def required_scope(request: web.Request, metrics_open: bool = False) -> str | None:
    """The scope a request needs; None for the open probe (and /metrics if so configured)."""
    if (request.method, request.path) in _OPEN:
        return None
    if metrics_open and request.method == "GET" and request.path == "/metrics":
        return None
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    path = request.path
    if path.startswith("/api/runs/") and path.endswith(("/stop", "/rerun")):
        return "trigger"
    if path.startswith("/api/tasks/") and path.endswith("/runs"):
        return "trigger"
    return "admin"


def authorize(request: web.Request, daemon: DaemonConfig) -> str | None:
    """The name of the token that allows the request (None when none is needed)."""
    tokens = daemon.tokens
    if not tokens or _on_unix_socket(request):
        return None
    scope = required_scope(request, daemon.metrics_open)
    if scope is None:
        return None
    header = request.headers.get("Authorization", "")
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        raise Unauthorized("this API needs a token: send Authorization: Bearer <token>")
    digest = hashlib.sha256(secret.strip().encode()).hexdigest()
    token = next((t for t in tokens if hmac.compare_digest(t.sha256, digest)), None)
    if token is None:
        raise Unauthorized("the token is not known to this daemon")
    granted = max(_RANK[s] for s in token.scopes)
    if granted < _RANK[scope]:
        raise Forbidden(
            f"token {token.name!r} has scopes {', '.join(token.scopes)}; "
            f"{request.method} {request.path} needs {scope!r}"
        )
    return token.name


def _on_unix_socket(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and isinstance(transport.get_extra_info("sockname"), str)
