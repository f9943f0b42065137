"""Reading a run's log: pages of numbered lines, or the raw output."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from cronwarden.runlog.layout import MARKER, STREAM_CODES, STREAMS, Header, OpenLog, legacy_path
from cronwarden.runlog.legacy import legacy_raw, read_legacy_page
from cronwarden.runlog.summary import LogLine, LogPage
from cronwarden.support.timefmt import iso_z

# A page stops early (has_more) past this much text: 10,000 lines of 64 KiB would be
# 640 MB in one response.
PAGE_TEXT_BUDGET = 4 << 20
RAW_CHUNK = 256 * 1024


def read_log_page(
    path: Path, *, after: int = 0, limit: int = 1000, stream: str | None = None
) -> LogPage:
    """Lines numbered above ``after`` (optionally of one stream), at most ``limit``."""
    try:
        log = OpenLog(path)
    except FileNotFoundError:
        legacy = legacy_path(path)
        if legacy.exists():
            return read_legacy_page(legacy, after=after, limit=limit, stream=stream)
        return LogPage(lines=[], next_after=after, has_more=False)
    code = None if stream is None else STREAM_CODES[stream]
    lines: list[LogLine] = []
    budget = PAGE_TEXT_BUDGET
    with log:
        marker = _drop_marker(log.header)
        if marker is not None and marker.n > after and code is None:
            lines.append(marker)
        for entry in log.index.entries(log.index.first_after(after)):
            if code is not None and entry.stream != code:
                continue
            ts = _iso(entry.ts_ms)
            name = STREAMS[entry.stream]
            first_n, data = log.read(entry)
            for k, raw in enumerate(entry.lines(data)):
                n = first_n + k
                if n <= after:
                    continue
                if len(lines) == limit or budget <= 0:
                    return LogPage(lines=lines, next_after=lines[-1].n, has_more=True)
                lines.append(LogLine(n=n, ts=ts, stream=name, text=raw.decode(errors="replace")))
                budget -= len(raw)
    return LogPage(lines=lines, next_after=lines[-1].n if lines else after, has_more=False)


def iter_raw(path: Path) -> Iterator[bytes]:
    """The output as it came, streams interleaved, marker lines included."""
    try:
        log = OpenLog(path)
    except FileNotFoundError:
        legacy = legacy_path(path)
        if legacy.exists():
            yield from legacy_raw(legacy)
        return
    with log:
        if log.header.dropped_bytes:
            yield log.header.marker()
        position, end = log.header.live_from, log.index.indexed_end()
        while position < end:
            try:
                chunk = log.data.read(position, min(RAW_CHUNK, end - position))
            except FileNotFoundError:  # a drop_old run dropped it while this was read
                return
            if not chunk:
                return
            yield chunk
            position += len(chunk)


def _drop_marker(header: Header) -> LogLine | None:
    """The line that says what a drop_old cap dropped, before the oldest line kept."""
    if not header.dropped_bytes:
        return None
    return LogLine(
        n=header.live_first_n - 1,
        ts=_iso(header.dropped_ts_ms),
        stream=STREAMS[MARKER],
        text=header.marker().decode().removesuffix("\n"),
    )


def _iso(ts_ms: int) -> str:
    seconds, ms = divmod(ts_ms, 1000)
    return iso_z(datetime.fromtimestamp(seconds, UTC).replace(microsecond=ms * 1000))
