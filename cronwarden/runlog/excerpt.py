"""The beginning of a run's output, for an alert to quote."""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

from cronwarden.runlog.layout import index_path
from cronwarden.runlog.reader import iter_raw


def read_head(logs_dir: Path, run_id: str, limit: int) -> bytes:
    """Up to ``limit`` bytes from the start of a run's stored output (as the raw log
    download gives it: streams interleaved, secret_env values already ``***``), plus
    one byte more when there is more, so the caller can tell a cut from a whole.
    Empty when the run has no log (it never started, or retention removed it)."""
    wanted = limit + 1
    parts: list[bytes] = []
    chunks = iter_raw(index_path(logs_dir, run_id))
    try:
        for chunk in chunks:
            parts.append(chunk[:wanted])
            wanted -= len(parts[-1])
            if wanted <= 0:
                break
    finally:
        if isinstance(chunks, Generator):  # stopped early: close its files now
            chunks.close()
    return b"".join(parts)
