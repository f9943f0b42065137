"""Which definition a run ran with, as a hash a reader of the API cannot test guesses
against.

Every byte of a task's definition is public (``?definition=true``) except the values
of its ``secret_env`` names, so a plain hash of the definition let anyone who could read
a run confirm a guessed secret offline.  The hash is therefore an HMAC under a key of
the installation: 32 random bytes made on the first start and kept in the store (the
SQLite file in data_dir, or the PostgreSQL database every node of a fleet shares, so
the nodes' hashes stay comparable).  The secret values stay in the hashed text: a
changed secret is a changed definition, and the hash says so.  Runs recorded before
the key existed keep the plain hash they were recorded with.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the store imports new_key without the config's models
    from cronwarden.config import TaskConfig

KEY_BYTES = 32
HASH_CHARS = 16  # hex characters kept: a run row shows it, a collision is harmless


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def task_hash(key: bytes, task: TaskConfig) -> str:
    """The keyed hash of ``task``'s definition (every key but its name, so a task
    renamed with nothing else changed keeps its hash)."""
    payload = task.model_dump(mode="json", exclude={"name"})
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return _keyed(key, canonical.encode())


def config_hash(key: bytes, task_hashes: Iterable[tuple[str, str]]) -> str:
    """One hash of a whole task table from its (name, task_hash) pairs, in any order:
    nodes sharing a database compare it to find one that runs another config."""
    lines = "".join(f"{name}={digest}\n" for name, digest in sorted(task_hashes))
    return _keyed(key, lines.encode())


def _keyed(key: bytes, message: bytes) -> str:
    if len(key) < KEY_BYTES:
        raise ValueError(f"the hash key must be at least {KEY_BYTES} bytes")
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:HASH_CHARS]
