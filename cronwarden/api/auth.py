"""Bearer-token authentication and scopes.

With no ``[[daemon.tokens]]`` the API is open, which config validation only allows on
loopback TCP and the 0600 unix socket.  Once tokens exist, every TCP request needs
``Authorization: Bearer <token>`` whose SHA-256 matches a configured digest (compared
in constant time); GET /health stays open for probes (and GET /metrics with
``metrics_open``), and the unix socket stays trusted (its file mode already limits who
can connect).

Scopes nest: ``admin`` includes ``trigger``, which includes ``read``.  Reading is every
GET; ``trigger`` starts, reruns and stops runs; ``admin`` reloads and pauses/resumes tasks.

A run's report (``PATCH /api/runs/{id}``) is the exception both ways: it takes no daemon
token, only the run's own token, which its handler checks (api/reports.py), on every
transport, open loopback included (a local process must not forge a job's result);
and a run's token is refused everywhere else, whatever the daemon's tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from cronwarden.config import DaemonConfig, TokenConfig
from cronwarden.errors import Forbidden, Unauthorized
from cronwarden.run_tokens import TOKEN_VARIABLE, run_of_token

_RANK = {"read": 1, "trigger": 2, "admin": 3}
_OPEN = {("GET", "/health")}
# The dashboard's files hold no data (it reads everything through the API), so a
# browser can load the page that then asks for a token.
_OPEN_PREFIXES = ("/ui/",)


def required_scope(request: web.Request, metrics_open: bool = False) -> str | None:
    """The scope a request needs; None for the open probe (and /metrics if so configured)."""
    return scope_for(request.method, request.path, metrics_open)


def scope_for(method: str, path: str, metrics_open: bool = False) -> str | None:
    """The scope a request of ``method`` to ``path`` needs (the CLI reads it to say
    which scope a refused token lacks)."""
    if (method, path) in _OPEN:
        return None
    if method in ("GET", "HEAD") and (path == "/" or path.startswith(_OPEN_PREFIXES)):
        return None
    if metrics_open and method == "GET" and path == "/metrics":
        return None
    if method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    if path.startswith("/api/runs/") and path.endswith(("/stop", "/rerun")):
        return "trigger"
    if path.startswith("/api/tasks/") and path.endswith("/runs"):
        return "trigger"
    return "admin"


Scope = Literal["read", "trigger", "admin"]


@dataclass(frozen=True)
class Access:
    """Who is asking and what they may do: the token's name (None when the API needs
    none here) and its widest scope."""

    token: str | None
    scope: Scope


_UNLIMITED = Access(None, "admin")
_ANONYMOUS = Access(None, "read")  # an open route asked for without a token
_REPORT = re.compile(r"/api/runs/[^/]+")


def is_report(request: web.Request) -> bool:
    """``PATCH /api/runs/{id}``: a job reporting on its run."""
    return request.method == "PATCH" and _REPORT.fullmatch(request.path) is not None


def bearer(request: web.Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, if the request sends one."""
    kind, _, secret = request.headers.get("Authorization", "").partition(" ")
    return secret.strip() if kind.lower() == "bearer" and secret.strip() else None


def authorize(request: web.Request, daemon: DaemonConfig) -> Access:
    """What the request's credentials allow; raises when they do not allow the request."""
    if is_report(request):
        return _ANONYMOUS  # its handler asks for the run's own token, and nothing else
    tokens = daemon.tokens
    secret = bearer(request)
    if secret is not None and run_of_token(secret) is not None and not _known(secret, tokens):
        raise Forbidden(
            f"a run's token ({TOKEN_VARIABLE}) is good for one thing only: its job "
            "reporting on its own run (PATCH /api/runs/<its run id>, cronwarden report)"
        )
    if not tokens or _on_unix_socket(request):
        return _UNLIMITED
    scope = required_scope(request, daemon.metrics_open)
    if scope is None:
        return _ANONYMOUS
    if secret is None:
        raise Unauthorized("this API needs a token: send Authorization: Bearer <token>")
    token = _known(secret, tokens)
    if token is None:
        raise Unauthorized("the token is not known to this daemon")
    widest = max(token.scopes, key=_RANK.__getitem__)
    if _RANK[widest] < _RANK[scope]:
        raise Forbidden(
            f"token {token.name!r} has scopes {', '.join(token.scopes)}; "
            f"{request.method} {request.path} needs {scope!r}"
        )
    return Access(token.name, widest)


def _known(secret: str, tokens: Sequence[TokenConfig]) -> TokenConfig | None:
    """The configured token ``secret`` is, compared by digest in constant time.  A
    header that is not UTF-8 arrives as lone surrogates: hashed as its bytes, it matches
    no token (401) instead of failing to encode."""
    digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()
    return next((t for t in tokens if hmac.compare_digest(t.sha256, digest)), None)


def _on_unix_socket(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and isinstance(transport.get_extra_info("sockname"), str)
