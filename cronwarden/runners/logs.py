"""Per-run log files: one JSON object per line, ``{"n", "ts", "stream", "text"}``.

Why JSON lines: each output line keeps its sequence number, arrival time and stream
(which a plain interleaved file loses), invalid UTF-8 survives as replacement
characters, and a reader can page by ``n`` without an index.

The cap counts raw output bytes (what the process wrote, newlines included):
* ``drop_new`` keeps the first ``max_size`` bytes; ``kill`` does too and asks the run to
  be killed (it then ends as log_overflow);
* ``drop_old`` keeps the last ``max_size`` bytes.  Output goes to a current segment;
  when that holds ``max_size`` bytes the previous segment is deleted and the current
  one becomes it, so disk use stays under twice the cap and memory stays flat.  At the
  end the older segment is trimmed from the front.
A marker line (stream ``cronwarden``) says how many lines and bytes were dropped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

from cronwarden.timefmt import iso_z

MAX_LINE_BYTES = 64 * 1024
MARKER_STREAM = "cronwarden"
LogMode = Literal["drop_old", "drop_new", "kill"]


@dataclass(frozen=True)
class LogLine:
    n: int
    ts: str
    stream: str
    text: str


@dataclass(frozen=True)
class LogSummary:
    size: int  # raw output bytes kept
    truncated: bool
    error: str | None = None  # why the log could not be written in full (a full disk)


def log_path(logs_dir: Path, run_id: str) -> Path:
    return logs_dir / f"{run_id}.log"


class LogWriter:
    """Splits a run's output into lines and appends them to its log file, within the cap."""

    def __init__(
        self,
        path: Path,
        *,
        max_size: int,
        mode: LogMode,
        now: Callable[[], datetime],
        on_full: Callable[[], None] | None = None,
        on_disk_full: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self._older = path.with_name(path.name + ".1")
        self._max = max_size
        self._mode = mode
        self._now = now
        self._on_full = on_full
        self._partial: dict[str, bytes] = {}
        self._n = 0
        self._kept = 0  # raw bytes kept in the current segment
        self._older_kept = 0
        self._dropped_lines = 0
        self._dropped_bytes = 0
        self._full = False
        self._on_disk_full = on_disk_full
        self.error: str | None = None  # set once writing failed (the disk is full)
        # Opened at the first line: a run that prints nothing leaves no file behind
        # (and a burst of silent runs costs no file creations).
        self._opened: IO[str] | None = None

    @property
    def _file(self) -> IO[str]:
        if self._opened is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._opened = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
        return self._opened

    def _close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def feed(self, stream: str, data: bytes) -> None:
        """Take a chunk of raw output; complete lines are written, the rest waits.

        Never raises: if the disk is full, output from then on is counted as dropped
        (the process keeps being read, so it is never blocked on a full pipe).
        """
        if self.error is not None:
            self._dropped_lines += data.count(b"\n")
            self._dropped_bytes += len(data)
            return
        try:
            self._feed(stream, data)
        except OSError as exc:
            self._cannot_write(exc)

    def _feed(self, stream: str, data: bytes) -> None:
        buffered = self._partial.get(stream, b"") + data
        lines = buffered.split(b"\n")
        rest = lines.pop()
        pieces: list[tuple[bytes, int]] = []  # (text, raw size counted against the cap)
        for raw in lines:
            while len(raw) > MAX_LINE_BYTES:  # an overlong line is cut into pieces
                pieces.append((raw[:MAX_LINE_BYTES], MAX_LINE_BYTES))
                raw = raw[MAX_LINE_BYTES:]
            pieces.append((raw, len(raw) + 1))
        while len(rest) > MAX_LINE_BYTES:
            pieces.append((rest[:MAX_LINE_BYTES], MAX_LINE_BYTES))
            rest = rest[MAX_LINE_BYTES:]
        self._partial[stream] = rest
        if pieces:
            ts = iso_z(self._now())  # one arrival time per chunk: lines came together
            for raw, size in pieces:
                self._line(stream, raw, size, ts)
            self._file.flush()  # a daemon crash must not lose what the process said

    def finish(self) -> LogSummary:
        """Flush partial lines, trim and mark what was dropped, close the file."""
        if self.error is None:
            try:
                return self._finish()
            except OSError as exc:
                self._cannot_write(exc)
        with contextlib.suppress(OSError):
            self._close()
        return LogSummary(size=self._older_kept + self._kept, truncated=True, error=self.error)

    def _cannot_write(self, exc: OSError) -> None:
        self.error = f"its output could not be stored: {exc.strerror or exc} in {self.path.parent}"
        with contextlib.suppress(OSError):
            self._close()
        if self._on_disk_full is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            self._on_disk_full(self.error)

    def _finish(self) -> LogSummary:
        ts = iso_z(self._now())
        for stream, rest in self._partial.items():
            if rest:
                self._line(stream, rest, len(rest), ts)
        self._partial.clear()
        if self._mode == "drop_old" and self._older.exists():
            self._close()
            self._merge_segments(ts)
        else:
            if self._dropped_lines:
                self._write(self._n + 1, ts, MARKER_STREAM, self._marker("after this line"))
            self._close()
        return LogSummary(size=self._older_kept + self._kept, truncated=self._dropped_lines > 0)

    # -- internals -------------------------------------------------------------

    def _line(self, stream: str, raw: bytes, size: int, ts: str) -> None:
        self._n += 1
        if self._mode == "drop_old" and size <= self._max:
            if self._kept + size > self._max and self._kept > 0:
                self._rotate()
        elif self._older_kept + self._kept + size > self._max or size > self._max:
            self._dropped_lines += 1
            self._dropped_bytes += size
            if not self._full:
                self._full = True
                if self._on_full is not None:
                    self._on_full()
            return
        self._kept += size
        self._write(self._n, ts, stream, raw.decode("utf-8", errors="replace"))

    def _write(self, n: int, ts: str, stream: str, text: str) -> None:
        record = {"n": n, "ts": ts, "stream": stream, "text": text}
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def _rotate(self) -> None:
        self._close()
        if self._older.exists():
            self._dropped_lines += _count_lines(self._older)
            self._dropped_bytes += self._older_kept
        os.replace(self.path, self._older)
        self._older_kept = self._kept
        self._kept = 0

    def _merge_segments(self, ts: str) -> None:
        """Keep the newest ``max`` bytes: trim the older segment from the front."""
        budget = self._max - self._kept
        older = list(_read_records(self._older))
        keep_from = len(older)
        used = 0
        while keep_from > 0:
            size = _raw_size(older[keep_from - 1])
            if used + size > budget:
                break
            used += size
            keep_from -= 1
        self._dropped_lines += keep_from
        self._dropped_bytes += self._older_kept - used
        self._older_kept = used
        merged = self.path.with_name(self.path.name + ".tmp")
        with open(merged, "w", encoding="utf-8") as out:
            first_n = int(str(older[keep_from]["n"])) if keep_from < len(older) else None
            if self._dropped_lines:
                marker_n = (first_n if first_n is not None else _first_n(self.path, self._n)) - 1
                marker = {
                    "n": marker_n,
                    "ts": ts,
                    "stream": MARKER_STREAM,
                    "text": self._marker("before this line"),
                }
                out.write(json.dumps(marker) + "\n")
            for record in older[keep_from:]:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            with open(self.path, encoding="utf-8") as current:
                for line in current:
                    out.write(line)
        os.replace(merged, self.path)
        self._older.unlink()

    def _marker(self, where: str) -> str:
        return (
            f"[cronwarden] log cap of {self._max} bytes reached: dropped "
            f"{self._dropped_lines} lines ({self._dropped_bytes} bytes) {where}"
        )


def _read_records(path: Path) -> Iterator[dict[str, object]]:
    with open(path, encoding="utf-8", errors="replace") as file:
        for line in file:
            try:
                yield json.loads(line)
            except ValueError:  # a line torn by a crash mid-write
                continue


def summarize_log(path: Path) -> LogSummary:
    """Size and truncation of a log a previous daemon life left behind."""
    size, truncated = 0, False
    for file in (path.with_name(path.name + ".1"), path):
        if file.exists():
            for record in _read_records(file):
                if record.get("stream") == MARKER_STREAM:
                    truncated = True
                else:
                    size += _raw_size(record)
    return LogSummary(size=size, truncated=truncated)


def append_marker(path: Path, text: str, ts: str) -> None:
    """Add a cronwarden line after whatever a previous life wrote."""
    last = 0
    for file in (path.with_name(path.name + ".1"), path):
        if file.exists():
            for record in _read_records(file):
                last = max(last, int(str(record["n"])))
    with open(path, "a", encoding="utf-8") as out:
        record = {"n": last + 1, "ts": ts, "stream": MARKER_STREAM, "text": f"[cronwarden] {text}"}
        out.write(json.dumps(record) + "\n")


def _raw_size(record: dict[str, object]) -> int:
    return len(str(record["text"]).encode("utf-8")) + 1


def _count_lines(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in file)


def _first_n(path: Path, default: int) -> int:
    for record in _read_records(path):
        return int(str(record["n"]))
    return default + 1


@dataclass(frozen=True)
class LogPage:
    lines: list[LogLine]
    next_after: int
    has_more: bool


def read_log_page(
    path: Path, *, after: int = 0, limit: int = 1000, stream: str | None = None
) -> LogPage:
    """Lines with n > after (optionally of one stream), at most ``limit`` of them."""
    lines: list[LogLine] = []
    has_more = False
    files = [p for p in (path.with_name(path.name + ".1"), path) if p.exists()]
    for file in files:
        for record in _read_records(file):
            n = int(str(record["n"]))
            if n <= after or (stream is not None and record["stream"] != stream):
                continue
            if len(lines) == limit:
                has_more = True
                break
            lines.append(
                LogLine(
                    n=n,
                    ts=str(record["ts"]),
                    stream=str(record["stream"]),
                    text=str(record["text"]),
                )
            )
        if has_more:
            break
    next_after = lines[-1].n if lines else after
    return LogPage(lines=lines, next_after=next_after, has_more=has_more)
