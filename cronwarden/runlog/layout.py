"""How one run's log lies on disk: the output bytes, and a small index beside them.

Per run, under ``data_dir/logs``:

* ``RUN.out`` holds the output as it came (secret values masked), the two streams
  interleaved block by block, plus cronwarden's own marker lines.  After the oldest
  output of a drop_old log has been cut away ``G`` times it is ``RUN.out.G`` instead.
* ``RUN.idx`` is a 16-byte header naming that generation ``G``, then one fixed-size
  entry per block of lines: where the block lies in the data file, the number of its
  first line, how many lines it holds, when it arrived, its stream, and flags.

Why not a JSON object per line: a 2-byte line cost 60 bytes and a JSON encode.  Here
a block of lines from one stream that arrive close together costs one 34-byte entry,
so the index stays a small fraction of the output, and a page is found by a binary
search over entries ordered by line number.  Swapping the index file (one rename) is
the commit point when a drop_old log is trimmed: a crash then never pairs an index
with the wrong data file.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"CWLOG\x00\x01\n"
HEADER = struct.Struct("<8sI4x")  # magic, data file generation
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


def index_path(logs_dir: Path, run_id: str) -> Path:
    return logs_dir / f"{run_id}.idx"


def data_path(index: Path, generation: int) -> Path:
    suffix = ".out" if generation == 0 else f".out.{generation}"
    return index.with_suffix(suffix)


def legacy_path(index: Path) -> Path:
    """Where cronwarden before the indexed format kept the same run's log (JSON lines)."""
    return index.with_suffix(".log")


def header(generation: int) -> bytes:
    return HEADER.pack(MAGIC, generation)


def entry_position(i: int) -> int:
    return HEADER.size + i * ENTRY.size


class IndexReader:
    """Random access to an open index file's entries (pread: no shared file position)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        head = os.pread(fd, HEADER.size, 0)
        self.generation, self.count = 0, 0
        if len(head) < HEADER.size:  # created, then a crash before its header: empty
            return
        magic, self.generation = HEADER.unpack(head)
        if magic != MAGIC:
            raise CorruptLog(f"log index fd {fd} is not a cronwarden log index")
        # A torn last entry (a crash mid-write) is ignored.
        self.count = (os.fstat(fd).st_size - HEADER.size) // ENTRY.size

    def entry(self, i: int) -> Entry:
        return Entry(*ENTRY.unpack(os.pread(self.fd, ENTRY.size, entry_position(i))))

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[Entry]:
        stop = self.count if stop is None else stop
        for first in range(start, stop, _BATCH):
            n = min(_BATCH, stop - first)
            buf = os.pread(self.fd, n * ENTRY.size, entry_position(first))
            for fields in ENTRY.iter_unpack(buf[: len(buf) - len(buf) % ENTRY.size]):
                yield Entry(*fields)

    def entries_backwards(self) -> Iterator[tuple[int, Entry]]:
        """(position, entry) from the last entry to the first."""
        for last in range(self.count, 0, -_BATCH):
            first = max(0, last - _BATCH)
            buf = os.pread(self.fd, (last - first) * ENTRY.size, entry_position(first))
            batch = [Entry(*fields) for fields in ENTRY.iter_unpack(buf)]
            for k in range(len(batch) - 1, -1, -1):
                yield first + k, batch[k]

    def first_after(self, n: int) -> int:
        """Position of the first entry holding a line numbered above ``n``."""
        low, high = 0, self.count
        while low < high:
            mid = (low + high) // 2
            if self.entry(mid).last_n > n:
                high = mid
            else:
                low = mid + 1
        return low

    def indexed_end(self) -> int:
        """Bytes of the data file the index accounts for (anything after is a torn write)."""
        return self.entry(self.count - 1).end if self.count else 0


class OpenLog:
    """A run's index and data file, opened together (one generation, consistent even if
    the writer trims the log while a reader holds them)."""

    def __init__(self, index: Path) -> None:
        self.index_fd = os.open(index, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.index = IndexReader(self.index_fd)
            self.data_fd = os.open(
                data_path(index, self.index.generation), os.O_RDONLY | os.O_CLOEXEC
            )
        except BaseException:
            os.close(self.index_fd)
            raise

    def read(self, entry: Entry) -> bytes:
        return os.pread(self.data_fd, entry.length, entry.offset)

    def close(self) -> None:
        os.close(self.data_fd)
        os.close(self.index_fd)

    def __enter__(self) -> OpenLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
