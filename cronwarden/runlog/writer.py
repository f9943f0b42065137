"""Capturing one run's output into its log (layout.py), within the run's cap.

The cap counts output bytes kept (after masking; marker lines come on top):

* ``drop_new`` keeps the first ``max_size`` bytes, in whole lines; ``kill`` does too and
  asks for the run to be killed (it then ends as log_overflow);
* ``drop_old`` keeps the newest.  While the run writes, its log may grow a quarter
  past the cap (at least 64 KiB) before the oldest whole lines are cut away, by copying
  the rest into the next generation of the data file (in the kernel, no Python loop);
  the finished log holds at most the cap.

A marker line (stream ``cronwarden``) says how many lines and bytes were dropped.

Capture costs per chunk, not per line: a chunk's complete lines are found with one
``rfind`` per 64 KiB, masked with one ``replace`` per secret, written with one
``write``, and indexed by extending the current index entry in place.  Lines of one
stream that arrive within 10 ms share an entry (within 250 ms while the entry is under
4 KiB), so a line's timestamp is when its block arrived.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal

from cronwarden.runlog.layout import (
    DROP_MARKER,
    MARKER,
    STREAM_CODES,
    UNTERMINATED,
    Entry,
    IndexReader,
    data_path,
    entry_position,
    header,
    legacy_path,
)
from cronwarden.runlog.legacy import append_legacy_note
from cronwarden.runlog.masking import NO_SECRETS, SecretMasker
from cronwarden.runlog.model import LogSummary

MAX_LINE_BYTES = 64 * 1024  # longer lines are cut into pieces of this size
# One index entry covers at most this much output, so finding a line inside an entry
# never splits more than this.
MAX_ENTRY_BYTES = 128 * 1024
BUSY_WINDOW_MS = 10
TRICKLE_WINDOW_MS = 250
TRICKLE_ENTRY_BYTES = 4096
MIN_TRIM_SLACK = 64 * 1024
_RDWR_FLAGS = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC

LogMode = Literal["drop_old", "drop_new", "kill"]


class LogWriter:
    """Splits a run's output into lines and appends them to its log, within the cap."""

    def __init__(
        self,
        path: Path,
        *,
        max_size: int,
        mode: LogMode,
        now: Callable[[], datetime],
        masker: SecretMasker = NO_SECRETS,
        on_full: Callable[[], None] | None = None,
        on_disk_full: Callable[[str], None] | None = None,
        on_written: Callable[[], None] | None = None,
    ) -> None:
        self.path = path  # the index; the data file sits beside it
        self._max = max_size
        self._mode = mode
        self._slack = max(max_size // 4, MIN_TRIM_SLACK)
        self._now = now
        self._masker = masker
        self._on_full = on_full
        self._on_disk_full = on_disk_full
        self._on_written = on_written
        self._partial: dict[int, bytes] = {}
        self._n = 0  # lines numbered so far, dropped ones included
        self._total = 0  # output bytes seen
        self._kept = 0  # output bytes in the data file
        self._dropped_lines = 0
        self._dropped_bytes = 0
        self._full = False
        self.error: str | None = None  # set once writing failed (the disk is full)
        # Files are created at the first line: a run that prints nothing leaves none
        # (and a burst of silent runs costs no file creations).
        self._data_fd: int | None = None
        self._index_fd = -1
        self._generation = 0
        self._data_end = 0
        self._entries = 0
        self._last: Entry | None = None  # the newest entry, which may still grow

    # -- the writer's interface ------------------------------------------------

    def feed(self, stream: str, data: bytes) -> None:
        """Take a chunk of raw output; complete lines are stored, the rest waits.

        Never raises: if the disk is full, output from then on is counted as dropped
        (the process keeps being read, so it is never blocked on a full pipe).
        """
        if self.error is not None:
            self._dropped_lines += data.count(b"\n")
            self._dropped_bytes += len(data)
            return
        try:
            self._feed(STREAM_CODES[stream], data)
        except OSError as exc:
            self._cannot_write(exc)
        if self._on_written is not None:
            self._on_written()

    def finish(self) -> LogSummary:
        """Store partial lines, trim and mark what was dropped, close the files."""
        if self.error is None:
            try:
                return self._finish()
            except OSError as exc:
                self._cannot_write(exc)
        return LogSummary(size=self._kept, truncated=True, error=self.error)

    # -- splitting chunks into lines -------------------------------------------

    def _feed(self, code: int, chunk: bytes) -> None:
        data = self._partial.pop(code, b"") + chunk
        if self._masker:
            data = self._masker.mask(data)
        ts = self._ts()
        lines_end = data.rfind(b"\n") + 1
        start = pos = 0
        while pos < lines_end:
            newline = data.rfind(b"\n", pos, pos + MAX_LINE_BYTES + 1)
            if newline >= 0:  # every line from pos to here fits the limit
                pos = newline + 1
                continue
            self._lines(code, data, start, pos, ts)
            end = data.index(b"\n", pos)
            while end - pos > MAX_LINE_BYTES:  # an overlong line is cut, not dropped
                self._store(code, data[pos : pos + MAX_LINE_BYTES], 1, UNTERMINATED, ts)
                pos += MAX_LINE_BYTES
            start = pos
        self._lines(code, data, start, lines_end, ts)
        rest = data[lines_end:]
        while len(rest) > MAX_LINE_BYTES:
            cut = self._masker.safe_cut(rest, MAX_LINE_BYTES)
            self._store(code, rest[:cut], 1, UNTERMINATED, ts)
            rest = rest[cut:]
        if rest:
            self._partial[code] = rest

    def _lines(self, code: int, data: bytes, start: int, end: int, ts: int) -> None:
        """Store whole lines ``data[start:end]``, at most MAX_ENTRY_BYTES per entry."""
        while start < end:
            stop = end
            if end - start > MAX_ENTRY_BYTES:
                stop = data.rfind(b"\n", start, start + MAX_ENTRY_BYTES) + 1
            block = data[start:stop]
            self._store(code, block, block.count(b"\n"), 0, ts)
            start = stop

    # -- the cap ---------------------------------------------------------------

    def _store(self, code: int, raw: bytes, count: int, flags: int, ts: int) -> None:
        first_n = self._n + 1
        self._n += count
        self._total += len(raw)
        if self._mode == "drop_old":
            self._append(code, raw, first_n, count, flags, ts)
            if self._kept > self._max + self._slack:
                self._trim(self._max)
            return
        room = self._max - self._kept
        if not self._full and len(raw) <= room:
            self._append(code, raw, first_n, count, flags, ts)
            return
        keep = 0 if self._full or flags & UNTERMINATED else raw.rfind(b"\n", 0, room) + 1
        kept_lines = raw.count(b"\n", 0, keep)
        if keep:
            self._append(code, raw[:keep], first_n, kept_lines, flags, ts)
        self._dropped_lines += count - kept_lines
        self._dropped_bytes += len(raw) - keep
        if not self._full:
            self._full = True
            if self._on_full is not None:
                self._on_full()

    def _finish(self) -> LogSummary:
        ts = self._ts()
        for code, rest in list(self._partial.items()):
            self._store(code, rest, 1, UNTERMINATED, ts)
        self._partial.clear()
        if self._mode == "drop_old":
            if self._kept > self._max:
                self._trim(self._max)
        elif self._dropped_lines:
            marker = self._marker("after this line")
            self._n += 1
            self._append(MARKER, marker, self._n, 1, DROP_MARKER, ts)
        self._close()
        return LogSummary(size=self._kept, truncated=self._dropped_lines > 0)

    def _marker(self, where: str) -> bytes:
        return (
            f"[cronwarden] log cap of {self._max} bytes reached: dropped "
            f"{self._dropped_lines} lines ({self._dropped_bytes} bytes) {where}\n"
        ).encode()

    # -- files -----------------------------------------------------------------

    def _append(self, code: int, raw: bytes, first_n: int, count: int, flags: int, ts: int) -> None:
        if self._data_fd is None:
            self._create()
            assert self._data_fd is not None
        _write_all(self._data_fd, raw)
        offset = self._data_end
        self._data_end += len(raw)
        if not flags & DROP_MARKER:
            self._kept += len(raw)
        last = self._last
        if (
            last is not None
            and flags == last.flags == 0
            and last.stream == code
            and last.end == offset
            and last.last_n + 1 == first_n
            and last.length + len(raw) <= MAX_ENTRY_BYTES
            and _same_block(last, ts)
        ):
            last.length += len(raw)
            last.count += count
            os.pwrite(self._index_fd, last.pack(), entry_position(self._entries - 1))
            return
        last = Entry(offset, len(raw), first_n, count, ts, code, flags)
        os.pwrite(self._index_fd, last.pack(), entry_position(self._entries))
        self._entries += 1
        self._last = last

    def _create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The data file first: an index never names a data file that does not exist.
        self._data_fd = os.open(data_path(self.path, 0), _RDWR_FLAGS, 0o600)
        self._index_fd = os.open(self.path, _RDWR_FLAGS, 0o600)
        _write_all(self._index_fd, header(0))

    def _trim(self, target: int) -> None:
        """Keep the newest whole lines within ``target`` bytes, in the next generation."""
        assert self._data_fd is not None
        index = IndexReader(self._index_fd)
        head: Entry | None = None  # an entry cut at a line boundary, kept from its middle
        first_whole = index.count  # position of the oldest entry kept whole
        budget = target
        for position, entry in index.entries_backwards():
            if entry.flags & DROP_MARKER:
                continue
            if entry.length <= budget:
                budget -= entry.length
                first_whole = position
                continue
            if not entry.flags & UNTERMINATED:
                data = os.pread(self._data_fd, entry.length, entry.offset)
                head = _tail_within(entry, data, budget)
            break
        oldest = head or (index.entry(first_whole) if first_whole < index.count else None)
        kept_from = oldest.offset if oldest is not None else self._data_end
        first_kept_n = oldest.first_n if oldest is not None else self._n + 1
        kept = self._data_end - kept_from
        self._dropped_lines = first_kept_n - 1
        self._dropped_bytes = self._total - kept
        marker = self._marker("before this line")
        generation = self._generation + 1
        new_data = data_path(self.path, generation)
        staged = self.path.with_suffix(".idx.tmp")
        data_fd = os.open(new_data, _RDWR_FLAGS, 0o600)
        index_fd = -1
        try:
            _write_all(data_fd, marker)
            _copy(self._data_fd, data_fd, kept_from, kept)
            index_fd = os.open(staged, _RDWR_FLAGS, 0o600)
            shift = len(marker) - kept_from
            lead = Entry(0, len(marker), first_kept_n - 1, 1, self._ts(), MARKER, DROP_MARKER)
            moved = itertools.chain([head] if head is not None else [], index.entries(first_whole))
            count = _write_index(index_fd, generation, lead, moved, shift)
            os.replace(staged, self.path)  # the commit point
        except BaseException:
            for fd, path in ((data_fd, new_data), (index_fd, staged)):
                if fd >= 0:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        os.close(self._index_fd)
        os.close(self._data_fd)
        with contextlib.suppress(FileNotFoundError):
            data_path(self.path, self._generation).unlink()
        self._index_fd, self._data_fd, self._generation = index_fd, data_fd, generation
        self._data_end = len(marker) + kept
        self._kept = kept
        self._entries = count
        self._last = None

    def _close(self) -> None:
        if self._data_fd is not None:
            os.close(self._data_fd)
            os.close(self._index_fd)
            self._data_fd = None

    def _cannot_write(self, exc: OSError) -> None:
        self.error = f"its output could not be stored: {exc.strerror or exc} in {self.path.parent}"
        with contextlib.suppress(OSError):
            self._close()
        if self._on_disk_full is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            self._on_disk_full(self.error)

    def _ts(self) -> int:
        return int(self._now().timestamp() * 1000)


def append_note(path: Path, text: str, now: datetime) -> LogSummary:
    """Add a cronwarden line to a log a previous daemon life was writing, and measure
    what it holds.  Output that reached the data file but not the index (a crash between
    the two writes) is cut off, so the log stays consistent."""
    if not path.exists():
        legacy = legacy_path(path)
        if legacy.exists():
            return append_legacy_note(legacy, text, now)
        return LogSummary(size=0, truncated=False)
    index_fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        index = IndexReader(index_fd)
        data_fd = os.open(data_path(path, index.generation), os.O_RDWR | os.O_CLOEXEC)
        try:
            end = index.indexed_end()
            size, truncated, last_n = 0, False, 0
            for entry in index.entries():
                last_n = entry.last_n
                truncated = truncated or bool(entry.flags & DROP_MARKER)
                size += 0 if entry.stream == MARKER else entry.length
            note = f"[cronwarden] {text}\n".encode()
            os.ftruncate(data_fd, end)
            os.pwrite(data_fd, note, end)
            entry = Entry(end, len(note), last_n + 1, 1, int(now.timestamp() * 1000), MARKER)
            os.pwrite(index_fd, entry.pack(), entry_position(index.count))
        finally:
            os.close(data_fd)
    finally:
        os.close(index_fd)
    return LogSummary(size=size, truncated=truncated)


def _same_block(last: Entry, ts: int) -> bool:
    age = ts - last.ts_ms
    return age < BUSY_WINDOW_MS or (age < TRICKLE_WINDOW_MS and last.length < TRICKLE_ENTRY_BYTES)


def _tail_within(entry: Entry, data: bytes, budget: int) -> Entry | None:
    """The part of a block of whole lines from the first line that starts within the
    last ``budget`` bytes; None if no line does."""
    start = data.find(b"\n", entry.length - budget - 1) + 1
    if not 0 < start < entry.length:
        return None
    dropped = data.count(b"\n", 0, start)
    return Entry(
        entry.offset + start,
        entry.length - start,
        entry.first_n + dropped,
        entry.count - dropped,
        entry.ts_ms,
        entry.stream,
        entry.flags,
    )


def _write_index(
    fd: int, generation: int, lead: Entry, entries: Iterable[Entry], shift: int
) -> int:
    """Write a whole index: header, ``lead`` as is, then ``entries`` moved by ``shift``."""
    buffer = bytearray(header(generation) + lead.pack())
    count = 1
    for entry in entries:
        entry.offset += shift
        buffer += entry.pack()
        count += 1
        if len(buffer) >= 1 << 16:
            _write_all(fd, buffer)
            buffer.clear()
    _write_all(fd, buffer)
    return count


def _copy(source: int, target: int, offset: int, size: int) -> None:
    """Append ``size`` bytes of ``source`` from ``offset`` to ``target``, in the kernel."""
    while size > 0:
        try:
            moved = os.copy_file_range(source, target, size, offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            moved = os.write(target, os.pread(source, min(size, 1 << 20), offset))
        if moved == 0:
            raise OSError(errno.EIO, "the log's data file is shorter than its index says")
        offset += moved
        size -= moved


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
