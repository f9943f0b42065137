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
    shares = 0
    for name, digest in task_hashes:
        shares ^= config_share(key, name, digest)
    return config_hash_of(shares)


def config_share(key: bytes, name: str, digest: str) -> int:
    """One task's share of the config hash.  The shares are combined by XOR, so a
    reload changes the config hash by the shares of the tasks it changed, without a
    hash of every task kept for it (10,000 of them were a megabyte)."""
    mac = hmac.new(key, f"{name}={digest}".encode(), hashlib.sha256).digest()
    return int.from_bytes(mac, "big")


def config_hash_of(shares: int) -> str:
    return f"{shares:064x}"[:HASH_CHARS]


def _keyed(key: bytes, message: bytes) -> str:
    if len(key) < KEY_BYTES:
        raise ValueError(f"the hash key must be at least {KEY_BYTES} bytes")
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:HASH_CHARS]
