"""Capturing one run's output into its log (layout.py), within the run's cap.

The cap counts output bytes kept (after masking; marker lines come on top):

* ``drop_new`` keeps the first ``max_size`` bytes, in whole lines; ``kill`` does too and
  asks for the run to be killed (it then ends as log_overflow);
* ``drop_old`` keeps the newest ``max_size`` bytes, from a line start.  Its output is
  written in segments of an eighth of the cap (at least 64 KiB); once the newest
  ``max_size`` bytes begin past the oldest segment, that segment is deleted.  Nothing is
  copied, and its files never hold more than the cap plus one segment (plus the block
  being written).

A marker line (stream ``cronwarden``) says how many lines and bytes were dropped: at
the end of a drop_new/kill log; at the start of a drop_old log, from its index header.

A daemon that restarts while a run goes on finds the log its previous life was
writing.  ``LogWriter.resume`` goes on writing it when the run's output pipes are back:
the output the index never named is cut, a note line marks the restart, and numbering,
the cap and the segments continue.  ``append_note`` only adds that note (when the pipes
are not back).  Both open, measure and cut the old log one way (``_open_existing``).

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
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

from cronwarden.runlog.layout import (
    DROP_MARKER,
    HEADER,
    MARKER,
    STREAM_CODES,
    UNTERMINATED,
    Entry,
    Header,
    IndexReader,
    SegmentFiles,
    data_path,
    drop_marker,
    entry_position,
    legacy_path,
)
from cronwarden.runlog.legacy import append_legacy_note
from cronwarden.runlog.masking import NO_SECRETS, SecretMasker
from cronwarden.runlog.summary import LogSummary

MAX_LINE_BYTES = 64 * 1024  # longer lines are cut into pieces of this size
# One index entry covers at most this much output, so finding a line inside an entry
# never splits more than this.
MAX_ENTRY_BYTES = 128 * 1024
BUSY_WINDOW_MS = 10
TRICKLE_WINDOW_MS = 250
TRICKLE_ENTRY_BYTES = 4096
SEGMENTS_PER_CAP = 8  # a drop_old log passes its cap by at most an eighth on disk
MIN_SEGMENT_BYTES = 64 * 1024
COMPACT_INDEX_AFTER = 1024  # dead entries an index may hold before it is rewritten
_RDWR_FLAGS = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC

LogMode = Literal["drop_old", "drop_new", "kill"]


class _NotResumable(Exception):
    """The log cannot go on (``LogWriter.resume`` then returns None)."""


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
        on_written: Callable[[int], None] | None = None,
    ) -> None:
        self.path = path  # the index; the data file sits beside it
        self._max = max_size
        self._mode = mode
        self._now = now
        self._masker = masker
        self._on_full = on_full
        self._on_disk_full = on_disk_full
        self._on_written = on_written
        self._partial: dict[int, bytes] = {}
        self._n = 0  # lines numbered so far, dropped ones included
        self._fed: int | None = 0  # output bytes the run wrote (None: not known)
        self._kept = 0  # output bytes stored (drop_new, kill: nothing is dropped later)
        self._dropped_lines = 0
        self._dropped_bytes = 0
        self._full = False
        self.error: str | None = None  # set once writing failed (the disk is full)
        # Files are created at the first line: a run that prints nothing leaves none
        # (and a burst of silent runs costs no file creations).
        segment = max(max_size // SEGMENTS_PER_CAP, MIN_SEGMENT_BYTES) if mode == "drop_old" else 0
        self._header = Header(segment_bytes=segment, cap=max_size)
        self._files: SegmentFiles | None = None
        self._index_fd = -1
        self._data_end = 0
        self._entries = 0
        self._last: Entry | None = None  # the newest entry, which may still grow

    # -- the writer's interface ------------------------------------------------

    def feed(self, stream: str, data: bytes) -> None:
        """Take a chunk of raw output; complete lines are stored, the rest waits.

        Never raises: if the disk is full, output from then on is counted as dropped
        (the process keeps being read, so it is never blocked on a full pipe).
        """
        if self._fed is not None:
            self._fed += len(data)
        if self.error is not None:
            self._dropped_lines += data.count(b"\n")
            self._dropped_bytes += len(data)
            return
        try:
            self._feed(STREAM_CODES[stream], data)
        except OSError as exc:
            self._cannot_write(exc)
        if self._on_written is not None:
            self._on_written(self._kept_bytes())

    def finish(self) -> LogSummary:
        """Store partial lines, trim and mark what was dropped, close the files."""
        if self.error is None:
            try:
                return replace(self._finish(), output_bytes=self._fed)
            except OSError as exc:
                self._cannot_write(exc)
        return LogSummary(
            size=self._kept_bytes(), truncated=True, error=self.error, output_bytes=self._fed
        )

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
        if self._mode == "drop_old":
            self._append(code, raw, first_n, count, flags, ts)
            # Once the newest cap bytes start past the oldest segment, it can go.
            segment = self._header.segment_bytes
            if self._data_end - self._max >= (self._header.live_from // segment + 1) * segment:
                self._drop_before(self._data_end - self._max)
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
            if self._data_end - self._header.live_from > self._max:
                self._drop_before(self._data_end - self._max)
            self._close()
            return LogSummary(size=self._kept_bytes(), truncated=self._header.dropped_bytes > 0)
        if self._dropped_lines:
            marker = drop_marker(
                self._max, self._dropped_lines, self._dropped_bytes, "after this line"
            )
            self._n += 1
            self._append(MARKER, marker, self._n, 1, DROP_MARKER, ts)
        self._close()
        return LogSummary(size=self._kept_bytes(), truncated=self._dropped_lines > 0)

    def _kept_bytes(self) -> int:
        if self._mode == "drop_old":
            return self._data_end - self._header.live_from
        return self._kept

    def _drop_before(self, offset: int) -> None:
        """drop_old: drop the output before the first line starting at or after
        ``offset``, and the segments that held only that."""
        assert self._files is not None
        index = IndexReader(self._index_fd)
        position = index.first_ending_after(offset)
        live_from, live_first_n = self._data_end, self._n + 1
        for entry in index.entries(position):
            if entry.offset >= offset:
                live_from, live_first_n = entry.offset, entry.first_n
                break
            if not entry.flags & UNTERMINATED:
                data = self._files.read(entry.offset, entry.length)
                start = data.find(b"\n", offset - entry.offset - 1) + 1
                if 0 < start < entry.length:
                    live_from = entry.offset + start
                    live_first_n = entry.first_n + data.count(b"\n", 0, start)
                    break
            position += 1
        header = self._header
        header.live_from, header.live_first_n = live_from, live_first_n
        header.dropped_bytes, header.dropped_ts_ms = live_from, self._ts()
        os.pwrite(self._index_fd, header.pack(), 0)  # the commit point: then delete
        self._files.drop_before(live_from)
        if position > COMPACT_INDEX_AFTER and position > self._entries - position:
            self._index_fd = _compacted_index(self.path, self._index_fd, header, position)
            self._entries -= position

    # -- files -----------------------------------------------------------------

    def _append(self, code: int, raw: bytes, first_n: int, count: int, flags: int, ts: int) -> None:
        if self._files is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._files = SegmentFiles(self.path, self._header.segment_bytes, writable=True)
        offset = self._data_end
        self._files.write(offset, raw)  # the data first: an index never names missing bytes
        if self._index_fd < 0:
            self._index_fd = os.open(self.path, _RDWR_FLAGS, 0o600)
            _write_all(self._index_fd, self._header.pack())
        self._data_end += len(raw)
        if code != MARKER:  # marker lines come on top of the cap
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

    def _close(self) -> None:
        if self._files is not None:
            self._files.close()
            self._files = None
        if self._index_fd >= 0:
            os.close(self._index_fd)
            self._index_fd = -1

    def _cannot_write(self, exc: OSError) -> None:
        self.error = f"its output could not be stored: {exc.strerror or exc} in {self.path.parent}"
        with contextlib.suppress(OSError):
            self._close()
        if self._on_disk_full is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            self._on_disk_full(self.error)

    def _ts(self) -> int:
        return int(self._now().timestamp() * 1000)

    # -- a log a previous daemon life was writing -------------------------------

    @classmethod
    def resume(
        cls,
        path: Path,
        *,
        max_size: int,
        mode: LogMode,
        now: Callable[[], datetime],
        note: str,
        masker: SecretMasker = NO_SECRETS,
        on_full: Callable[[], None] | None = None,
        on_disk_full: Callable[[str], None] | None = None,
        on_written: Callable[[int], None] | None = None,
    ) -> LogWriter | None:
        """A writer going on with the log a previous daemon life was writing, after
        ``[cronwarden] note``, for a daemon that got the run's output pipes back (the
        module's docstring says how).  None when the log cannot go on: a legacy log
        (only ever read) or a one-file log asked to go on as drop_old; ``append_note``
        still notes those.  CorruptLog and OSError go up as from ``append_note``; a full
        disk while the note is written leaves the writer in its error state.
        """
        try:
            log = _open_to_resume(path, mode)
        except _NotResumable:
            return None
        writer = cls(
            path,
            max_size=max_size,
            mode=mode,
            now=now,
            masker=masker,
            on_full=on_full,
            on_disk_full=on_disk_full,
            on_written=on_written,
        )
        writer._fed = None  # what it wrote before the restart is not known
        if log is not None:
            writer._adopt(log)
        try:
            writer._note(note)
        except OSError as exc:
            writer._cannot_write(exc)
        return writer

    def _adopt(self, log: _ExistingLog) -> None:
        """Take over an open, cut log: its files, header, numbering and bytes kept.  Its
        layout stays (offsets depend on its segment size); the cap is this writer's."""
        log.header.cap = self._max
        self._header, self._files, self._index_fd = log.header, log.files, log.index_fd
        self._data_end, self._entries = log.end, log.entries
        self._n, self._kept = log.last_n, log.size

    def _note(self, text: str) -> None:
        """Append a ``[cronwarden] text`` line in an entry of its own (on top of the cap)."""
        self._n += 1
        self._append(MARKER, f"[cronwarden] {text}\n".encode(), self._n, 1, 0, self._ts())


@dataclass(slots=True)
class _ExistingLog:
    """A log a previous daemon life was writing, open and cut back to what its index
    names, with what it holds measured."""

    index_fd: int
    files: SegmentFiles  # writable
    header: Header
    entries: int  # whole entries in the index (a torn last one is written over)
    end: int  # output bytes the index names: the next byte goes here
    last_n: int  # the number of its last line
    size: int  # output bytes kept, marker lines not counted
    truncated: bool  # the cap has dropped output already

    def close(self) -> None:
        self.files.close()
        os.close(self.index_fd)


def _open_existing(path: Path) -> _ExistingLog:
    """Open an existing log's index and data for writing, measure it, and cut what the
    index does not name: output written just before a crash between the data write and
    the index write, which must not be shown, nor sit before what comes next."""
    index_fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        index = IndexReader(index_fd)
        header = index.header
        size, truncated, last_n = 0, header.dropped_bytes > 0, header.live_first_n - 1
        for entry in index.entries(index.first_after(0)):
            last_n = entry.last_n
            truncated = truncated or bool(entry.flags & DROP_MARKER)
            if entry.stream != MARKER:
                size += entry.end - max(entry.offset, header.live_from)
        end = index.indexed_end()
        files = SegmentFiles(path, header.segment_bytes, writable=True)
        try:
            _cut(files, end)
        except BaseException:
            files.close()
            raise
    except BaseException:
        os.close(index_fd)
        raise
    return _ExistingLog(index_fd, files, header, index.count, end, last_n, size, truncated)


def _cut(files: SegmentFiles, end: int) -> None:
    """Cut the output from ``end`` on, with the segments a torn write went on into."""
    files.truncate(end)
    if not files.segment_bytes:
        return
    for segment in itertools.count(files.segment_of(end) + 1):
        try:
            data_path(files.index, segment).unlink()
        except FileNotFoundError:
            return  # past the last one it reached


def append_note(path: Path, text: str, now: datetime) -> LogSummary:
    """Add a cronwarden line to a log a previous daemon life was writing, and measure
    what it held before.  For a run whose output can no longer be read (the restarted
    daemon has not got its pipes): the log is closed with a word on why it ends."""
    if not path.exists():
        legacy = legacy_path(path)
        if legacy.exists():
            return append_legacy_note(legacy, text, now)
        return LogSummary(size=0, truncated=False)
    log = _open_existing(path)
    header = log.header
    mode: LogMode = "drop_old" if header.segment_bytes else "drop_new"
    writer = LogWriter(path, max_size=header.cap, mode=mode, now=lambda: now)
    writer._adopt(log)
    try:
        writer._note(text)
    finally:
        writer._close()
    return LogSummary(size=log.size, truncated=log.truncated)


def _open_to_resume(path: Path, mode: LogMode) -> _ExistingLog | None:
    """The log to go on with, open and cut; None if there is none yet (any output a
    crash left before its index was made is cut).  _NotResumable if it cannot go on."""
    if not path.exists() and legacy_path(path).exists():
        raise _NotResumable(f"{legacy_path(path)} is a legacy log: it is only read")
    if not path.exists() or path.stat().st_size < HEADER.size:
        with contextlib.suppress(FileNotFoundError):
            os.truncate(data_path(path, 0), 0)
        return None
    log = _open_existing(path)
    if mode == "drop_old" and not log.header.segment_bytes:
        log.close()
        raise _NotResumable(f"{path} is one file: it cannot go on as drop_old")
    return log


def _compacted_index(path: Path, index_fd: int, header: Header, dead: int) -> int:
    """Put a copy of the index without its ``dead`` oldest entries (all dropped output)
    in place of the open one, which is closed; returns the copy's fd."""
    index = IndexReader(index_fd)
    staged = path.with_suffix(".idx.tmp")
    fd = os.open(staged, _RDWR_FLAGS, 0o600)
    try:
        buffer = bytearray(header.pack())
        for entry in index.entries(dead):
            buffer += entry.pack()
        _write_all(fd, buffer)
        os.replace(staged, path)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            staged.unlink()
        raise
    os.close(index_fd)
    return fd


def _same_block(last: Entry, ts: int) -> bool:
    age = ts - last.ts_ms
    return age < BUSY_WINDOW_MS or (age < TRICKLE_WINDOW_MS and last.length < TRICKLE_ENTRY_BYTES)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
