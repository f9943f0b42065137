"""Replacing the values of a task's secret_env variables by ``***``.

Output reaches the log writer in read-sized chunks, so a secret can arrive split
across two of them.  The writer only ever stores whole lines, masked as a whole, and
when it must cut an overlong line into pieces it asks ``safe_cut`` where to cut so that
a piece never ends with the beginning of a secret whose rest is still to come.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MASK = b"***"
# Values this short would turn every log into asterisks and hide nothing worth hiding.
MIN_SECRET_BYTES = 3


class SecretMasker:
    def __init__(self, values: Iterable[str]) -> None:
        secrets: set[bytes] = set()
        for value in values:
            # A multi-line value reaches the log line by line: mask each of its lines.
            for part in value.splitlines() or [value]:
                raw = part.encode("utf-8", errors="surrogateescape")
                if len(raw) >= MIN_SECRET_BYTES and raw not in MASK:
                    secrets.add(raw)
        # Longest first: a secret containing another is masked whole.
        self._secrets = sorted(secrets, key=len, reverse=True)
        self._texts = [s.decode("utf-8", errors="replace") for s in self._secrets]

    @classmethod
    def for_environment(cls, env: Mapping[str, str], names: Iterable[str]) -> SecretMasker:
        return cls(env[name] for name in names if name in env)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def mask(self, data: bytes) -> bytes:
        for secret in self._secrets:
            if secret in data:
                data = data.replace(secret, MASK)
        return data

    def mask_text(self, text: str) -> str:
        for secret in self._texts:
            text = text.replace(secret, MASK.decode())
        return text

    def safe_cut(self, data: bytes, at: int) -> int:
        """Where to cut ``data`` near ``at`` so the first part does not end inside a
        secret; never before ``at // 2``."""
        floor = at // 2
        moved = True
        while moved:  # moving back for one secret may end the piece inside another
            moved = False
            for secret in self._secrets:
                for k in range(min(len(secret) - 1, at - floor), 0, -1):
                    if data.endswith(secret[:k], 0, at):
                        at -= k
                        moved = True
                        break
        return at


NO_SECRETS = SecretMasker(())
