"""Logs written before the indexed format: one JSON object per line in ``RUN.log``
(and an older drop_old segment in ``RUN.log.1``).

They are read as they are, never rewritten: converting every old log at start-up would
delay READY by the size of the history, and such logs only shrink away with retention.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from cronwarden.runlog.summary import LogLine, LogPage, LogSummary
from cronwarden.support.timefmt import iso_z

MARKER_STREAM = "cronwarden"


def _files(path: Path) -> list[Path]:
    return [p for p in (path.with_name(path.name + ".1"), path) if p.exists()]


def _records(path: Path) -> Iterator[LogLine]:
    for file in _files(path):
        with open(file, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                try:
                    record = json.loads(line)
                    yield LogLine(
                        n=int(record["n"]),
                        ts=str(record["ts"]),
                        stream=str(record["stream"]),
                        text=str(record["text"]),
                    )
                except (ValueError, KeyError, TypeError):  # a line torn by a crash mid-write
                    continue


def read_legacy_page(path: Path, *, after: int, limit: int, stream: str | None) -> LogPage:
    lines: list[LogLine] = []
    for line in _records(path):
        if line.n <= after or (stream is not None and line.stream != stream):
            continue
        if len(lines) == limit:
            return LogPage(lines=lines, next_after=lines[-1].n, has_more=True)
        lines.append(line)
    return LogPage(lines=lines, next_after=lines[-1].n if lines else after, has_more=False)


def legacy_raw(path: Path) -> Iterator[bytes]:
    """The output as text lines, streams interleaved (what the old format kept of it)."""
    for line in _records(path):
        yield (line.text + "\n").encode()


def append_legacy_note(path: Path, text: str, now: datetime) -> LogSummary:
    size, truncated, last = 0, False, 0
    for line in _records(path):
        last = max(last, line.n)
        if line.stream == MARKER_STREAM:
            truncated = True
        else:
            size += len(line.text.encode()) + 1
    note = f"[cronwarden] {text}"
    record = {"n": last + 1, "ts": iso_z(now), "stream": MARKER_STREAM, "text": note}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    return LogSummary(size=size, truncated=truncated)
