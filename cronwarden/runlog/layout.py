"""How one run's log lies on disk: the output bytes, and a small index beside them.

Per run, under ``data_dir/logs``:

* ``RUN.out`` holds the output as it came (secret values masked), the two streams
  interleaved block by block, plus the marker line of a drop_new/kill cap.  A drop_old
  log is cut into segments of an eighth of its cap (``RUN.out``, ``RUN.out.1``, ...),
  so dropping its oldest output is deleting its oldest segment: no copy, and disk use
  never passes the cap by more than a segment.
* ``RUN.idx`` is a header (segment size, cap, where the kept output begins, what was
  dropped), then one fixed-size entry per block of lines: where the block lies in the
  output (a byte offset counted from the run's first byte, across segments), the
  number of its first line, how many lines, arrival time, stream and flags.

Why not a JSON object per line: a 2-byte line cost 60 bytes and a JSON encode.  Here
a block of lines from one stream that arrive close together costs one 34-byte entry,
so the index stays a small fraction of the output, and a page is found by a binary
search over entries ordered by line number.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"CWLOG\x00\x02\n"
# magic, segment size (0: one data file), cap, first kept byte, its line number,
# bytes dropped before it, when the oldest output was last dropped (ms)
HEADER = struct.Struct("<8sQQQQQq")
ENTRY = struct.Struct("<QIQIqBB")  # offset, length, first_n, count, ts_ms, stream, flags

STREAMS = ("stdout", "stderr", "cronwarden")
STDOUT, STDERR, MARKER = 0, 1, 2
STREAM_CODES = {name: code for code, name in enumerate(STREAMS)}

UNTERMINATED = 1  # the entry is one piece of an overlong line: no newline at its end
DROP_MARKER = 2  # a marker line saying what the cap dropped

_BATCH = 512  # entries read per pread when walking the index


class CorruptLog(Exception):
    """An index file that is not one of ours (or a torn header)."""


@dataclass(slots=True)
class Entry:
    offset: int  # of the block's first byte in the data file
    length: int  # bytes, newlines included
    first_n: int
    count: int  # lines in the block
    ts_ms: int  # arrival of the block's first byte, ms since the epoch
    stream: int
    flags: int = 0

    @property
    def last_n(self) -> int:
        return self.first_n + self.count - 1

    @property
    def end(self) -> int:
        return self.offset + self.length

    def pack(self) -> bytes:
        return ENTRY.pack(
            self.offset,
            self.length,
            self.first_n,
            self.count,
            self.ts_ms,
            self.stream,
            self.flags,
        )

    def lines(self, data: bytes) -> list[bytes]:
        """The block's lines, without their newlines."""
        if self.flags & UNTERMINATED:
            return [data]
        return data[:-1].split(b"\n") if data else []


INDEX_SUFFIX = ".idx"
LEGACY_SUFFIX = ".log"  # where cronwarden before the indexed format kept a run's log


def index_path(logs_dir: Path, run_id: str) -> Path:
    return logs_dir / f"{run_id}{INDEX_SUFFIX}"


def data_suffix(segment: int) -> str:
    return ".out" if segment == 0 else f".out.{segment}"


def data_path(index: Path, segment: int) -> Path:
    return index.with_suffix(data_suffix(segment))


def legacy_path(index: Path) -> Path:
    """Where cronwarden before the indexed format kept the same run's log (JSON lines)."""
    return index.with_suffix(LEGACY_SUFFIX)


def entry_position(i: int) -> int:
    return HEADER.size + i * ENTRY.size


@dataclass(slots=True)
class Header:
    segment_bytes: int = 0
    cap: int = 0
    live_from: int = 0  # output before this offset was dropped (drop_old)
    live_first_n: int = 1  # the number of the line starting at live_from
    dropped_bytes: int = 0
    dropped_ts_ms: int = 0

    def pack(self) -> bytes:
        return HEADER.pack(
            MAGIC,
            self.segment_bytes,
            self.cap,
            self.live_from,
            self.live_first_n,
            self.dropped_bytes,
            self.dropped_ts_ms,
        )

    @property
    def dropped_lines(self) -> int:
        return self.live_first_n - 1

    def marker(self) -> bytes:
        return drop_marker(self.cap, self.dropped_lines, self.dropped_bytes, "before this line")


def drop_marker(cap: int, lines: int, size: int, where: str) -> bytes:
    return (
        f"[cronwarden] log cap of {cap} bytes reached: dropped {lines} lines ({size} bytes) "
        f"{where}\n"
    ).encode()


class IndexReader:
    """Random access to an open index file's entries (pread: no shared file position)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        head = os.pread(fd, HEADER.size, 0)
        self.header, self.count = Header(), 0
        if len(head) < HEADER.size:  # created, then a crash before its header: empty
            return
        magic, *fields = HEADER.unpack(head)
        if magic != MAGIC:
            raise CorruptLog(f"log index fd {fd} is not a cronwarden log index")
        self.header = Header(*fields)
        # A torn last entry (a crash mid-write) is ignored.
        self.count = (os.fstat(fd).st_size - HEADER.size) // ENTRY.size

    def entry(self, i: int) -> Entry:
        return Entry(*ENTRY.unpack(os.pread(self.fd, ENTRY.size, entry_position(i))))

    def entries(self, start: int = 0) -> Iterator[Entry]:
        for first in range(start, self.count, _BATCH):
            n = min(_BATCH, self.count - first)
            buf = os.pread(self.fd, n * ENTRY.size, entry_position(first))
            for fields in ENTRY.iter_unpack(buf[: len(buf) - len(buf) % ENTRY.size]):
                yield Entry(*fields)

    def first_after(self, n: int) -> int:
        """Position of the first live entry holding a line numbered above ``n``."""
        return max(
            self._search(lambda e: e.last_n > n), self.first_ending_after(self.header.live_from)
        )

    def first_ending_after(self, offset: int) -> int:
        """Position of the first entry whose bytes go past ``offset``."""
        return self._search(lambda e: e.end > offset)

    def _search(self, reached: Callable[[Entry], bool]) -> int:
        """The first position where ``reached`` holds (it holds from there on)."""
        low, high = 0, self.count
        while low < high:
            mid = (low + high) // 2
            if reached(self.entry(mid)):
                high = mid
            else:
                low = mid + 1
        return low

    def indexed_end(self) -> int:
        """Output bytes the index accounts for (anything after is a torn write)."""
        return self.entry(self.count - 1).end if self.count else 0


class SegmentFiles:
    """A log's output bytes: one range of offsets, over one file or several segments."""

    def __init__(self, index: Path, segment_bytes: int, *, writable: bool = False) -> None:
        self.index = index
        self.segment_bytes = segment_bytes
        self._writable = writable
        self._fds: dict[int, int] = {}

    def segment_of(self, offset: int) -> int:
        return offset // self.segment_bytes if self.segment_bytes else 0

    def _fd(self, segment: int) -> int:
        fd = self._fds.get(segment)
        if fd is None:
            if self._writable and len(self._fds) >= 2:  # a writer needs the newest two
                os.close(self._fds.pop(min(self._fds)))
            flags = os.O_RDWR | os.O_CREAT if self._writable else os.O_RDONLY
            fd = self._fds[segment] = os.open(
                data_path(self.index, segment), flags | os.O_CLOEXEC, 0o600
            )
        return fd

    def _spans(self, offset: int, length: int) -> Iterator[tuple[int, int, int]]:
        """(segment, offset in it, length) of each piece of a range."""
        while length > 0:
            segment = self.segment_of(offset)
            within = offset - segment * self.segment_bytes
            size = min(length, self.segment_bytes - within) if self.segment_bytes else length
            yield segment, within, size
            offset += size
            length -= size

    def read(self, offset: int, length: int) -> bytes:
        parts = [os.pread(self._fd(s), size, at) for s, at, size in self._spans(offset, length)]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def write(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        for segment, at, size in self._spans(offset, len(data)):
            piece, view = view[:size], view[size:]
            fd = self._fd(segment)
            while piece:
                written = os.pwrite(fd, piece, at)
                piece, at = piece[written:], at + written

    def truncate(self, end: int) -> None:
        """Cut everything from ``end`` on (a write torn by a crash)."""
        segment = self.segment_of(end)
        os.ftruncate(self._fd(segment), end - segment * self.segment_bytes)

    def drop_before(self, offset: int) -> None:
        """Delete the segments that end at or before ``offset``."""
        for segment in range(self.segment_of(offset) - 1, -1, -1):
            fd = self._fds.pop(segment, None)
            if fd is not None:
                os.close(fd)
            try:
                data_path(self.index, segment).unlink()
            except FileNotFoundError:
                return  # older ones went before

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


class OpenLog:
    """A run's index, with its output read through it."""

    def __init__(self, index: Path) -> None:
        self.index_fd = os.open(index, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.index = IndexReader(self.index_fd)
        except BaseException:
            os.close(self.index_fd)
            raise
        self.header = self.index.header
        self.data = SegmentFiles(index, self.header.segment_bytes)

    def read(self, entry: Entry) -> tuple[int, bytes]:
        """The first line number and the bytes of the entry's live part."""
        start = max(entry.offset, self.header.live_from)
        first_n = entry.first_n if start == entry.offset else self.header.live_first_n
        return first_n, self.data.read(start, entry.end - start)

    def close(self) -> None:
        self.data.close()
        os.close(self.index_fd)

    def __enter__(self) -> OpenLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def remove_log(logs_dir: Path, run_id: str) -> tuple[int, int]:
    """Delete every file of a run's log; returns (files, bytes) removed.

    The index says how far the output reached, hence which segments can exist; a
    write torn by a crash may have gone one block further.  The index goes last, so
    an interrupted removal can be repeated.  Plain ``os`` calls on str paths:
    retention calls this for every run it deletes, and through pathlib a run without
    a log cost 56 µs, most of it not the system calls.
    """
    stem = os.path.join(logs_dir, run_id)
    index = stem + INDEX_SUFFIX
    last_segment = 0
    try:
        fd = os.open(index, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        pass
    else:
        try:
            reader = IndexReader(fd)
            segments = SegmentFiles(Path(index), reader.header.segment_bytes)
            last_segment = segments.segment_of(reader.indexed_end() + MAX_TORN_BYTES)
        except CorruptLog:
            last_segment = 0
        finally:
            os.close(fd)
    data = [stem + data_suffix(segment) for segment in range(last_segment + 1)]
    files = size = 0
    for path in [*data, stem + LEGACY_SUFFIX, index]:
        try:
            size += os.stat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            continue
        files += 1
    return files, size


MAX_TORN_BYTES = 256 * 1024  # more than a block the writer appends at once
