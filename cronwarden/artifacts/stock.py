"""What a run left in its directory, taken stock of once its process is gone (whatever
ended it), and what of it is kept.

Kept: regular files, in directories nested up to ``MAX_DEPTH`` deep, each named by its
path relative to the run's directory ('/' between directories), up to
``max_artifacts_size`` in all: files are taken in name order (depth first) and one that
no longer fits is dropped, while a smaller one after it may still fit.  Dropped, with
the reason: symbolic links (never followed: a run could point one at /etc/shadow),
fifos, sockets and devices, directories nested deeper, names that are not UTF-8 text,
files past the cap.  What is dropped is deleted, so the directory holds what its
listing says, and a directory left with nothing kept is removed.

A listing holds at most ``MAX_ENTRIES`` entries: a run that leaves more has the rest
deleted, and its last entry says how many went unlisted.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cronwarden.artifacts.layout import remove_tree
from cronwarden.support.text import printable
from cronwarden.support.units import format_size

MAX_DEPTH = 8  # directories within the run's own
MAX_ENTRIES = 10_000
_CHUNK = 1 << 20
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of a run's listing."""

    name: str  # relative to the run's directory, '/' between directories
    size: int | None  # bytes; None for what is not a regular file
    sha256: str | None = None  # hex, of a kept file
    dropped: str | None = None  # why it is not kept (None: kept)

    @property
    def kept(self) -> bool:
        return self.dropped is None


def take_stock(directory: Path, max_size: int) -> list[Entry]:
    """Every entry the run left, kept or dropped; what is not kept is deleted.  A
    directory that is not there (the run never started) has none."""
    try:
        fd = os.open(directory, _DIRECTORY_FLAGS)
    except FileNotFoundError:
        return []
    tally = _Tally(max_size)
    try:
        _walk(fd, "", 1, tally)
    finally:
        os.close(fd)
    entries = tally.listing()
    if not any(entry.kept for entry in entries):
        remove_tree(directory)
    return entries


def runs_past_keep(kept_sizes: Sequence[tuple[str, int]], keep: int) -> list[str]:
    """The runs whose artifacts go so that a task keeps within ``keep`` bytes: the
    oldest first.  ``kept_sizes`` is (run id, bytes kept) per run, newest first."""
    total = 0
    for i, (_, size) in enumerate(kept_sizes):
        total += size
        if total > keep:
            return [run_id for run_id, _ in kept_sizes[i:]]
    return []


def refusal(name: str, mode: int, depth: int) -> str | None:
    """Why an entry is not kept (None: a file to keep, or a directory to look into)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not UTF-8 text"
    if stat.S_ISLNK(mode):
        return "a symbolic link: only regular files are kept, and links are never followed"
    if stat.S_ISDIR(mode):
        return None if depth <= MAX_DEPTH else f"a directory nested deeper than {MAX_DEPTH} levels"
    if not stat.S_ISREG(mode):
        return "not a regular file (a fifo, socket or device)"
    return None


@dataclass
class _Tally:
    cap: int
    entries: list[Entry] = field(default_factory=list)
    used: int = 0
    unlisted: int = 0
    first_unlisted: str = ""

    def listing(self) -> list[Entry]:
        if not self.unlisted:
            return self.entries
        why = (
            f"a run lists at most {MAX_ENTRIES} entries: this one and {self.unlisted - 1} "
            "more after it were deleted unlisted"
        )
        return [*self.entries, Entry(self.first_unlisted, None, dropped=why)]

    def full(self, name: str) -> bool:
        """Whether the listing is full (``name`` is then counted, to be deleted)."""
        if len(self.entries) < MAX_ENTRIES:
            return False
        if not self.unlisted:
            self.first_unlisted = name
        self.unlisted += 1
        return True

    def file(self, dir_fd: int, base: str, name: str, size: int) -> bool:
        """Keep the file if it fits; False: it was dropped (the caller deletes it)."""
        left = self.cap - self.used
        if size <= left:
            try:
                digest, read = _digest(dir_fd, base, left)
            except OSError as exc:  # replaced since by what is not a file
                self.drop(name, None, f"it could not be read: {exc.strerror or exc}")
                return False
            if read <= left:
                self.entries.append(Entry(name, read, sha256=digest))
                self.used += read
                return True
            size = read  # it grew since (a process still writing)
        why = (
            f"past max_artifacts_size ({format_size(self.cap)}): it has {size} bytes, "
            f"{left} were left"
        )
        self.drop(name, size, why)
        return False

    def drop(self, name: str, size: int | None, why: str) -> None:
        self.entries.append(Entry(printable(name), size, dropped=why))


def _walk(dir_fd: int, prefix: str, depth: int, tally: _Tally) -> None:
    with os.scandir(dir_fd) as scan:
        found = sorted(scan, key=lambda entry: entry.name)
    for entry in found:
        base, name = entry.name, prefix + entry.name
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if tally.full(printable(name)):
            _delete(dir_fd, base)
            continue
        why = refusal(name, info.st_mode, depth)
        if why is None and stat.S_ISDIR(info.st_mode):
            try:
                inner = os.open(base, _DIRECTORY_FLAGS, dir_fd=dir_fd)
            except OSError as exc:  # replaced since by what is not a directory
                tally.drop(name, None, f"it could not be read: {exc.strerror or exc}")
                _delete(dir_fd, base)
                continue
            try:
                _walk(inner, name + "/", depth + 1, tally)
            finally:
                os.close(inner)
        elif why is None:
            if not tally.file(dir_fd, base, name, info.st_size):
                _delete(dir_fd, base)
        else:
            tally.drop(name, info.st_size if stat.S_ISREG(info.st_mode) else None, why)
            _delete(dir_fd, base)


def _digest(dir_fd: int, base: str, limit: int) -> tuple[str, int]:
    """sha256 and size of a file, read no further than ``limit`` + 1 bytes."""
    fd = os.open(base, _FILE_FLAGS, dir_fd=dir_fd)
    digest = hashlib.sha256()
    read = 0
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "no longer a regular file")
        while read <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - read))
            if not chunk:
                break
            digest.update(chunk)
            read += len(chunk)
    finally:
        os.close(fd)
    return digest.hexdigest(), read


def _delete(dir_fd: int, base: str) -> None:
    """Delete an entry of the directory ``dir_fd``: a file, link or device as itself
    (a link's target is never touched), a directory with all it holds."""
    with contextlib.suppress(FileNotFoundError):
        try:
            os.unlink(base, dir_fd=dir_fd)
        except IsADirectoryError:
            shutil.rmtree(base, dir_fd=dir_fd)
