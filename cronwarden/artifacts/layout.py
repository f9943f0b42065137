"""Where a run's artifacts lie: ``data_dir/artifacts/<run id>/``, one directory per run,
made empty just before its process starts, owned by the user the run runs as, 0700.

A run as another user (``user = "nobody"`` under a root daemon) must reach its own
directory through data_dir, which is private (0700).  So before such a run, data_dir
and ``data_dir/artifacts`` are opened to 0711: others may pass through them to a path
they already know, but list nothing.  That exposes no other run's files, nor anything
else of the daemon's: every other entry of data_dir stays 0700 (directories) or 0600
(files), and each run's directory is 0700, owned by that run's user, so a user reaches
only the directories of its own runs.  A daemon whose tasks never switch user keeps
both at 0700.

Every walk here stays inside the directory it was given: directories are opened with
O_NOFOLLOW and deletions go through ``shutil.rmtree`` (which never follows a link), as
a run's user may have left symbolic links pointing anywhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

ROOT_NAME = "artifacts"
PRIVATE = 0o700
PASSABLE = 0o711  # searchable by others, listable by none
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def artifacts_root(data_dir: Path) -> Path:
    return data_dir / ROOT_NAME


def run_dir(root: Path, run_id: str) -> Path:
    return root / run_id


def is_passable(data_dir: Path) -> bool:
    """Whether runs of other users were given a way in (so data_dir must stay 0711)."""
    try:
        mode = artifacts_root(data_dir).lstat().st_mode
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(mode) and stat.S_IMODE(mode) == PASSABLE


def make_run_dir(root: Path, run_id: str, uid: int | None, gid: int | None) -> Path:
    """The run's empty directory, owned by ``uid``/``gid`` (None: the daemon's), 0700.
    Raises OSError (the caller says the run could not start)."""
    if uid is not None and uid != os.geteuid():
        root.mkdir(mode=PRIVATE, exist_ok=True)
        for passage in (root.parent, root):
            if stat.S_IMODE(passage.stat().st_mode) != PASSABLE:
                passage.chmod(PASSABLE)
    path = run_dir(root, run_id)
    try:
        path.mkdir(mode=PRIVATE)
    except FileNotFoundError:  # the first run's: the root is made once, not each run
        root.mkdir(mode=PRIVATE, exist_ok=True)
        path.mkdir(mode=PRIVATE)
    except FileExistsError:  # made by a daemon life that crashed before the spawn
        remove_tree(path)
        path.mkdir(mode=PRIVATE)
    if uid is not None or gid is not None:
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    path.chmod(PRIVATE)  # whatever the umask
    return path


def gone_if_empty(path: Path) -> bool:
    """Remove a run's directory if it is empty; whether nothing is there now.  A
    filesystem call that may wait for its journal: not in the event loop."""
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:  # not empty
        return False
    return True


def remove_tree(path: Path) -> tuple[int, int]:
    """Delete a run's directory (or one nested in it) and all it holds; returns the
    (files, bytes) removed.  A missing one is nothing to do."""
    files = size = 0
    for entry in _walk_files(path):
        files, size = files + 1, size + entry.st_size
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink() or not path.is_dir():
            path.unlink()
        else:
            shutil.rmtree(path)
    return files, size


def _walk_files(path: Path) -> Iterator[os.stat_result]:
    """The stat of each regular file under ``path``, links not followed."""
    try:
        fd = os.open(path, _DIRECTORY_FLAGS)
    except OSError:
        return
    try:
        for _, _, names, dir_fd in os.fwalk(dir_fd=fd):
            for name in names:
                with contextlib.suppress(OSError):
                    found = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    if stat.S_ISREG(found.st_mode):
                        yield found
    finally:
        os.close(fd)


def run_ids_on_disk(root: Path) -> list[str]:
    """The runs that have a directory here."""
    try:
        with os.scandir(root) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def open_artifact(directory: Path, name: str) -> int:
    """A read-only fd of the kept file ``name`` (a relative path with '/') inside a run's
    directory, reached one component at a time without following any link.  Raises
    FileNotFoundError when it is not a regular file there (any more)."""
    parts = name.split("/")
    try:
        fd = os.open(directory, _DIRECTORY_FLAGS)
    except OSError as exc:
        raise FileNotFoundError(name) from exc
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
        file_fd = os.open(
            parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd
        )
    except OSError as exc:
        raise FileNotFoundError(name) from exc
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(file_fd).st_mode):
        os.close(file_fd)
        raise FileNotFoundError(name)
    return file_fd
