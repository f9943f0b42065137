"""A run's report token: what lets the job of one run, and nothing else, report its
stage, progress and output (``PATCH /api/runs/{id}``, ``cronwarden report``).

Each run gets a fresh token in its environment (``CRONWARDEN_RUN_TOKEN``, beside
``CRONWARDEN_URL``, the daemon's API as the job reaches it); only its SHA-256 is kept,
on the run's row, so any node sharing the database can check it.  A random 256-bit
secret cannot be guessed, so a plain hash is enough here (no salt, no slow hash).

The token names its run: ``cwr_<run id>_<secret>``.  That is how a request tells
another run's token (403) from a wrong one (401) with one read of that run, and how
any other endpoint recognises a run's token to refuse it, with no index over every
run's hash.  The secret alone decides; the run id in it is no secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

from cronwarden.config import Listen

TOKEN_VARIABLE = "CRONWARDEN_RUN_TOKEN"
URL_VARIABLE = "CRONWARDEN_URL"
PREFIX = "cwr_"
_ID_LENGTH = 36  # a run id: a UUID in its canonical text


def new_token(run_id: str) -> str:
    """A fresh token for the run ``run_id``."""
    return f"{PREFIX}{run_id}_{secrets.token_urlsafe(32)}"


def token_digest(token: str) -> str:
    """What the run's row keeps: the hex SHA-256 of the token.  Any text hashes (a
    header's bytes that are not UTF-8 arrive as lone surrogates): it matches no token."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def token_matches(token: str, digest: str | None) -> bool:
    """Whether ``token`` is the one whose digest a run keeps (compared in constant time);
    never for a run that keeps none."""
    return digest is not None and hmac.compare_digest(token_digest(token), digest)


def run_of_token(token: str) -> str | None:
    """The run a token is shaped for (None: it is not shaped as a run's token at all).
    Only ``token_matches`` says whether it is that run's."""
    end = len(PREFIX) + _ID_LENGTH
    if not token.startswith(PREFIX) or token[end : end + 1] != "_" or len(token) <= end + 1:
        return None
    run_id = token[len(PREFIX) : end]
    try:
        return run_id if str(uuid.UUID(run_id)) == run_id else None
    except ValueError:
        return None


def api_url_for_runs(listen: Listen) -> str:
    """The daemon's API as a run on this host reaches it: the unix socket, or the TCP
    listen address, with loopback for a listener on every interface (``0.0.0.0``:
    127.0.0.1; ``::``: [::1], as that listener takes IPv6 only)."""
    if listen.unix_path is not None:
        return f"unix:{listen.unix_path}"
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(listen.host or "", listen.host or "")
    return f"http://[{host}]:{listen.port}" if ":" in host else f"http://{host}:{listen.port}"
